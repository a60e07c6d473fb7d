import pytest
import torch
from conftest import relative_error

from neurofwp.errors import OutOfRangeError, ShapeError, UnknownNameError
from neurofwp.tensor import FastWeightLayer


@pytest.mark.parametrize("rule", ["delta", "hebbian"])
@pytest.mark.parametrize("feature_map", ["dpfp", "identity", "elu+1", "favor+"])
@pytest.mark.parametrize("gated", [False, True], ids=["plain", "gated"])
def test_layer_modes_and_streaming_agree(rule, feature_map, gated):
    torch.manual_seed(0)
    layer = FastWeightLayer(24, num_heads=3, rule=rule, feature_map=feature_map, gated=gated, chunk_size=8).double()
    x = torch.randn(2, 30, 24, dtype=torch.float64)
    y, state = layer(x, return_state=True)
    assert y.shape == (2, 30, 24)
    assert state.shape == (2, 3, layer.fast_dim, 8)
    layer.mode = "recurrent"
    assert relative_error(layer(x), y) < 1e-12
    streamed, s = [], None
    for t in range(30):
        out, s = layer.step(x[:, t], s)
        streamed.append(out)
    assert relative_error(torch.stack(streamed, 1), y) < 1e-12


def test_learned_beta_is_dynamic_and_trained():
    """β_t = σ(w_βᵀ x_t) varies with the input and receives gradient through the delta rule."""
    torch.manual_seed(1)
    layer = FastWeightLayer(16, num_heads=2, rule="delta", feature_map="dpfp")
    x = torch.randn(3, 12, 16)
    beta = layer.program(x)["beta"]
    assert beta.shape == (3, 12, 2)
    assert beta.std() > 0 and ((beta > 0) & (beta < 1)).all()
    layer(x).pow(2).sum().backward()
    assert layer.beta_proj.weight.grad.abs().sum() > 0


def test_constant_beta_layer_has_no_beta_projection():
    layer = FastWeightLayer(8, num_heads=2, learned_beta=False, beta=0.5)
    assert layer.beta_proj is None
    assert torch.all(layer.program(torch.randn(1, 3, 8))["beta"] == 0.5)


def test_layer_learns_an_associative_recall_task():
    """A one-layer delta FWP trained for a few hundred steps recalls the value stored under a queried key."""
    torch.manual_seed(0)
    n_keys, d = 6, 16
    layer = FastWeightLayer(
        d, num_heads=1, head_dim=8, value_dim=8, rule="delta", feature_map="dpfp", feature_map_options={"nu": 2}
    )
    embed = torch.nn.Embedding(2 * n_keys, d)
    readout = torch.nn.Linear(d, n_keys)
    params = [*layer.parameters(), *embed.parameters(), *readout.parameters()]
    opt = torch.optim.Adam(params, lr=3e-3)

    def batch(size=32):
        keys = torch.stack([torch.randperm(n_keys) for _ in range(size)])
        values = torch.randint(0, n_keys, (size, n_keys))
        pairs = embed(keys) + embed(values + n_keys)
        probe = torch.randint(0, n_keys, (size,))
        query = embed(keys.gather(1, probe[:, None]))
        target = values.gather(1, probe[:, None])[:, 0]
        return torch.cat([pairs, query], 1), target

    for _ in range(400):
        x, target = batch()
        loss = torch.nn.functional.cross_entropy(readout(layer(x)[:, -1]), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, target = batch(512)
    accuracy = (readout(layer(x)[:, -1]).argmax(-1) == target).float().mean()
    assert accuracy > 0.8  # chance is 1/6


def test_layer_errors():
    with pytest.raises(UnknownNameError, match="rule"):
        FastWeightLayer(8, rule="oja")
    with pytest.raises(UnknownNameError, match="feature map"):
        FastWeightLayer(8, feature_map="cosine")
    layer = FastWeightLayer(8, num_heads=2)
    with pytest.raises(ShapeError, match="d_model=8"):
        layer(torch.randn(2, 5, 9))


def test_heads_must_divide_d_model():
    """d_model=10 with 4 heads used to give head size 2 silently (10 // 4), dropping 2 inputs' worth."""
    with pytest.raises(OutOfRangeError, match=r"d_model must be divisible by num_heads.*d_model=10 and num_heads=4"):
        FastWeightLayer(d_model=10, num_heads=4)
    layer = FastWeightLayer(d_model=10, num_heads=4, head_dim=3)  # an explicit head size needs no divisibility
    assert layer(torch.randn(1, 5, 10)).shape == (1, 5, 10)
    with pytest.raises(OutOfRangeError, match="head_dim must be an int >= 1"):
        FastWeightLayer(d_model=8, num_heads=2, head_dim=0)


@pytest.mark.parametrize(
    "feature_map, key_norm",
    [("dpfp", None), ("elu+1", None), ("favor+", None), ("identity", None), ("identity", "sum"), ("dpfp", "l2")],
)
@pytest.mark.parametrize("learned_beta", [True, False])
def test_layer_keys_meet_the_delta_stability_condition(feature_map, key_norm, learned_beta):
    """β‖k‖² ≤ 2 by construction, for every feature map, including a signed map with key_norm="sum"
    (which used to divide by the signed sum, clamped to the smallest float when ≤ 0: infinite keys)."""
    torch.manual_seed(0)
    layer = FastWeightLayer(
        16, num_heads=2, feature_map=feature_map, key_norm=key_norm, learned_beta=learned_beta, beta=2.0
    ).double()
    x = 3.0 * torch.randn(4, 200, 16, dtype=torch.float64)
    with torch.no_grad():
        program = layer.program(x)
    load = program["beta"] * program["k"].square().sum(-1)
    assert float(load.max()) <= 2.0 * (1 + 1e-12)
    y = layer(x)
    assert bool(torch.isfinite(y).all())

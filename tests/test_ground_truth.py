"""Ground-truth recordings: the GLM neuron's weights follow the torch backend, the LIF's the Brian2 backend,
inputs have the asked-for statistics, the files read back, and nothing global is touched."""

import numpy as np
import pytest
import torch
import xarray as xr

from neurofwp.errors import OutOfRangeError, ShapeError
from neurofwp.networks import ground_truth as gt
from neurofwp.plasticity import torch_backend
from neurofwp.protocols import Protocol
from neurofwp.recordings import load_npz, load_nwb

DURATION_S = 20.0


@pytest.fixture(scope="module")
def inputs():
    return gt.poisson_inputs(5, DURATION_S, 15.0, seed=3)


def torch_change(rule, parameters, pre_s, post_s, grid_ms=None) -> float:
    """The total weight change of one synapse under ``rule`` from 1 for these spikes, by the torch backend
    (clock-driven rules: times on the Euler grid)."""
    pre_ms, post_ms = pre_s * 1000, post_s * 1000
    if grid_ms is not None:
        pre_ms, post_ms = np.rint(pre_ms / grid_ms) * grid_ms, np.rint(post_ms / grid_ms) * grid_ms
    protocol = Protocol("ground truth", tuple(pre_ms), tuple(post_ms), 1e-3, 1)
    return float(torch_backend.simulate(rule, [protocol], parameters, dt_ms=grid_ms or 0.1)[0, 0]) - 1.0


@pytest.mark.parametrize(
    "rule, parameters",
    [
        ("stdp", {"A_plus": 0.01, "A_minus": 0.02}),
        ("stdp-nearest", {"A_plus": 0.02, "A_minus": 0.03}),
        ("triplet", {"A3_plus": 0.002, "A2_minus": 0.01}),
        ("delta", {"eta": 0.1}),
    ],
)
def test_glm_weights_follow_the_torch_backend_on_its_own_spikes(inputs, rule, parameters):
    """w_i = w0_i m_i: m_i at the end equals the torch backend's run from 1 over the same pre and post
    spikes (the delta rule: per-synapse prediction, spikes on the 0.1 ms Euler grid), to round-off."""
    w0 = np.linspace(0.2, 0.8, len(inputs))
    # no input in the last second: the backend's drift after the last event (to the traces' end) is then nil
    inputs = [t[t < DURATION_S - 1.0] for t in inputs]
    result = gt.glm_neuron(rule, inputs, DURATION_S, parameters=parameters, baseline_hz=20.0, initial_weight=w0, seed=1)
    post = result.recording.spike_times_s
    assert len(post) > 200
    final = result.truth.final_weight.values
    grid = 0.1 if rule == "delta" else None
    for i, name in enumerate(gt.input_names(len(inputs))):
        pre = result.recording.input_spike_times_s[name]
        assert final[i] / w0[i] - 1.0 == pytest.approx(torch_change(rule, parameters, pre, post, grid), abs=1e-9)


def test_static_glm_fires_at_the_model_rate():
    """Static weights: the counts match the intensity of the GLM's formula computed here directly,
    in the bins shortly after input spikes and elsewhere (within 4 standard errors)."""
    trains = gt.poisson_inputs(2, 200.0, 20.0, seed=0)
    w0, tau = np.array([1.5, -1.0]), 5.0
    result = gt.glm_neuron(None, trains, 200.0, baseline_hz=20.0, initial_weight=w0, coupling_tau_ms=tau, seed=0)
    assert np.all(result.truth.weight.values == w0)
    n_bins = 200_000
    eta = np.full(n_bins, np.log(20.0e-3))
    for weight, train in zip(w0, trains, strict=True):
        first = np.floor(train * 1000).astype(int) + 1
        for lag in range(60):  # e^-12: the rest is negligible
            bins = first + lag
            inside = bins < n_bins
            np.add.at(eta, bins[inside], weight * np.exp(-(bins[inside] - train[inside] * 1000) / tau))
    counts = np.histogram(result.recording.spike_times_s, np.arange(n_bins + 1) * 1e-3)[0]
    for part in (eta > np.log(20e-3) + 0.3, eta < np.log(20e-3) - 0.3, np.abs(eta - np.log(20e-3)) <= 0.3):
        expected = np.exp(eta[part]).sum()
        assert abs(counts[part].sum() - expected) < 4 * np.sqrt(expected)


def test_a_stimulus_drives_the_cell_by_its_gain():
    """A square-wave stimulus of gain g: without inputs the rate is the baseline times e^{+g} in the up half,
    e^{-g} in the down half (counts within 4 standard errors); the recording carries the stimulus."""
    duration, gain = 100.0, 0.8
    stimulus = gt.square_wave(duration, 10.0)
    quiet = [np.empty(0)]  # one input that never fires
    result = gt.glm_neuron(None, quiet, duration, baseline_hz=20.0, stimulus=stimulus, stimulus_gain=gain, seed=3)
    spikes = result.recording.spike_times_s
    up = (spikes % 10.0) < 5.0
    for count, sign in ((up.sum(), 1.0), ((~up).sum(), -1.0)):
        expected = 20.0 * np.exp(sign * gain) * duration / 2
        assert abs(count - expected) < 4 * np.sqrt(expected)
    assert result.recording.stimulus.shape == (100_000, 1) and result.recording.stimulus_rate_hz == 1000.0
    with pytest.raises(OutOfRangeError, match="covers 50 s"):
        gt.glm_neuron(None, quiet, duration, stimulus=stimulus[:50_000])


def test_alternating_inputs_switch_in_antiphase():
    trains = gt.alternating_inputs(4, 200.0, 5.0, 35.0, 10.0, seed=1)
    for index, train in enumerate(trains):
        first_half = (train % 10.0) < 5.0
        high, low = (
            (first_half.sum(), (~first_half).sum()) if index % 2 == 0 else ((~first_half).sum(), first_half.sum())
        )
        for count, rate in ((high, 35.0), (low, 5.0)):
            assert abs(count - rate * 100.0) < 4 * np.sqrt(rate * 100.0)


def test_bernoulli_glm_fires_at_most_once_per_bin():
    trains = gt.poisson_inputs(2, 20.0, 20.0, seed=0)
    result = gt.glm_neuron("stdp", trains, 20.0, baseline_hz=50.0, likelihood="bernoulli", seed=0)
    bins = np.floor(result.recording.spike_times_s * 1000)
    assert len(bins) > 500 and len(np.unique(bins)) == len(bins)


def test_seeded_and_leaves_global_random_state_alone(inputs):
    np.random.seed(11)
    torch.manual_seed(11)
    numpy_state, torch_state = np.random.get_state()[1].copy(), torch.get_rng_state().clone()
    first = gt.glm_neuron("stdp", inputs, DURATION_S, seed=5)
    again = gt.glm_neuron("stdp", inputs, DURATION_S, seed=5)
    other = gt.glm_neuron("stdp", inputs, DURATION_S, seed=6)
    assert np.array_equal(first.recording.spike_times_s, again.recording.spike_times_s)
    assert not np.array_equal(first.recording.spike_times_s, other.recording.spike_times_s)
    assert np.array_equal(np.random.get_state()[1], numpy_state) and torch.equal(torch.get_rng_state(), torch_state)


def test_correlated_inputs_share_spikes():
    """Shared spikes: the count correlation (10 ms bins) of two inputs is close to ``correlation``."""
    trains = gt.poisson_inputs(2, 300.0, 20.0, correlation=0.3, seed=0)
    counts = [np.histogram(t, np.arange(30_001) * 0.01)[0] for t in trains]
    assert np.corrcoef(*counts)[0, 1] == pytest.approx(0.3, abs=0.05)
    assert len(trains[0]) / 300 == pytest.approx(20.0, rel=0.05)
    independent = gt.poisson_inputs(2, 300.0, 20.0, seed=0)
    assert abs(np.corrcoef(*[np.histogram(t, np.arange(30_001) * 0.01)[0] for t in independent])[0, 1]) < 0.03
    modulated = gt.poisson_inputs(2, 300.0, 20.0, rate_sd=0.5, rate_tau_ms=100.0, seed=0)
    assert np.corrcoef(*[np.histogram(t, np.arange(3001) * 0.1)[0] for t in modulated])[0, 1] > 0.2


def test_a_driven_cell_keeps_its_stimulus_in_both_files(tmp_path, inputs):
    drive = gt.square_wave(DURATION_S, 1.0)
    result = gt.glm_neuron("stdp", inputs, DURATION_S, seed=0, stimulus=drive)
    for recording in (load_npz(gt.write_npz(result, tmp_path / "driven.npz")),
                      load_nwb(gt.write_nwb(result, tmp_path / "driven.nwb"), gt.POST_ID)):  # fmt: skip
        assert np.array_equal(recording.stimulus[:, 0], drive) and recording.stimulus_rate_hz == 1000.0


def test_files_read_back(tmp_path, inputs):
    result = gt.glm_neuron("stdp", inputs, DURATION_S, seed=0)
    npz = load_npz(gt.write_npz(result, tmp_path / "truth.npz"))
    nwb = load_nwb(gt.write_nwb(result, tmp_path / "truth.nwb"), gt.POST_ID)
    truth = xr.load_dataset(gt.write_truth(result, tmp_path / "truth.nc"))
    for recording in (npz, nwb):
        assert np.array_equal(recording.spike_times_s, result.recording.spike_times_s)
        assert recording.input_spike_times_s.keys() == result.recording.input_spike_times_s.keys()
        for name, times in result.recording.input_spike_times_s.items():
            assert np.array_equal(recording.input_spike_times_s[name], times)
    assert npz.duration_s == DURATION_S and npz.stimulus is None and nwb.stimulus is None
    assert truth.weight.dims == ("time", "synapse") and truth.time.attrs["units"] == "s"
    assert float(truth.true_value.sel(parameter="A_plus")) == truth.attrs["param_A_plus"] == 0.01


def test_runaway_weights_stop_with_a_clear_error(inputs):
    with pytest.raises(OutOfRangeError, match="ran away"):
        gt.glm_neuron("stdp", inputs, DURATION_S, parameters={"A_plus": 0.5, "A_minus": 0.0}, baseline_hz=20.0)


def test_bad_arguments_are_refused(inputs):
    with pytest.raises(ShapeError, match="initial_weight"):
        gt.glm_neuron("stdp", inputs, DURATION_S, initial_weight=[1.0, 2.0])
    with pytest.raises(OutOfRangeError, match="lie in"):
        gt.glm_neuron("stdp", inputs, 1.0)
    with pytest.raises(OutOfRangeError, match="correlation"):
        gt.poisson_inputs(2, 1.0, correlation=1.5)
    with pytest.raises(ShapeError, match="no inputs"):
        gt.glm_neuron("stdp", [], 1.0)


def test_lif_weights_follow_the_torch_backend(inputs):
    """Brian2's LIF neuron: pair STDP away from the clipping bounds changes each weight as the torch
    backend does over the same spikes (times on Brian2's 0.1 ms grid; measured difference < 1e-12)."""
    trains = gt.poisson_inputs(20, 5.0, 20.0, seed=2)
    parameters = {"A_plus": 0.001, "A_minus": 0.001}
    result = gt.lif_neuron("stdp", trains, 5.0, parameters=parameters, initial_weight=0.25,
                           config=gt.LIFConfig(w_max=1.0))  # fmt: skip
    post = result.recording.spike_times_s
    assert 20 < len(post) < 2000
    final = result.truth.final_weight.values
    for i, name in enumerate(gt.input_names(3)):
        pre = result.recording.input_spike_times_s[name]
        assert final[i] - 0.25 == pytest.approx(torch_change("stdp", parameters, pre, post), abs=1e-9)

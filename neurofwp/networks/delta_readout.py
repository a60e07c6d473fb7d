r"""A spiking delta-rule readout learns key → value associations under a teacher.

``n_inputs`` Poisson neurons fire at the rates of one of ``P`` key patterns
:math:`r_p` (Hz) at a time, each shown for ``present_ms``, in a cycle. ``n_outputs``
readout neurons are driven by a teacher: during learning they spike as Poisson processes
at the value pattern's rates :math:`\rho_p`. Every synapse follows the ``delta`` rule of
:mod:`neurofwp.plasticity.rules`, with the prediction summed over the readout neuron's
synapses (a Brian2 ``(summed)`` variable):

.. math::

    \frac{dw_{ij}}{dt} = \eta \Big(S_j(t) - \sum_k w_{kj} \frac{x_k(t)}{\tau}\Big) x_i(t).

This is the fast-weight delta rule with key = presynaptic traces, value = teacher
spikes. Averaged over Poisson spiking (:math:`E[x_i] = r_i\tau`,
:math:`E[x_i x_k] = r_i r_k \tau^2 + \delta_{ik} r_i \tau/2`) its fixed point is

.. math::

    W^* = \Big(\sum_p r_p r_p^\top + \tfrac{1}{2\tau} \mathrm{diag}\big(\textstyle\sum_p r_p\big)\Big)^{-1}
          \sum_p r_p \rho_p^\top,

the least-squares solution of :math:`W^\top r_p = \rho_p` that the tensor delta rule
finds, shrunk by a ridge term from the spiking noise. :func:`tensor_solution` runs the
tensor :func:`~neurofwp.tensor.delta_rule` on the same rates for the comparison.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import xarray as xr

import neurofwp
from neurofwp.plasticity.brian2_backend import model_equations, pathway_code
from neurofwp.plasticity.rules import get_rule
from neurofwp.tensor import delta_rule


@dataclass(frozen=True)
class DeltaReadoutConfig:
    """Sizes, rates (Hz), times (ms) and the learning rate ``eta`` of the readout network."""

    n_inputs: int = 16
    n_outputs: int = 2
    n_patterns: int = 3
    input_rate_hz: tuple[float, float] = (10.0, 60.0)
    target_rate_hz: tuple[float, float] = (5.0, 40.0)
    present_ms: float = 500.0  # 25 trace time constants: the traces settle early in each presentation
    eta: float = 0.002
    tau_ms: float = 20.0
    tau_m_ms: float = 10.0  # readout membrane time constant
    refractory_ms: float = 2.0
    dt_ms: float = 0.5


def teacher_current(rate_hz: np.ndarray, tau_m_ms: float, refractory_ms: float) -> np.ndarray:
    """Constant input (threshold 1) that makes ``tau_m dv/dt = I - v`` fire at ``rate_hz`` (reset 0)."""
    interval_ms = 1000.0 / np.asarray(rate_hz) - refractory_ms
    if np.any(interval_ms <= 0):
        raise ValueError("target rates must stay below 1 / refractory period")
    return 1.0 / (1.0 - np.exp(-interval_ms / tau_m_ms))


def patterns(config: DeltaReadoutConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Key rates ``[P, n_inputs]`` and value rates ``[P, n_outputs]`` (Hz), drawn uniformly."""
    rng = np.random.default_rng(seed)
    keys = rng.uniform(*config.input_rate_hz, (config.n_patterns, config.n_inputs))
    values = rng.uniform(*config.target_rate_hz, (config.n_patterns, config.n_outputs))
    return keys, values


def expected_fixed_point(keys: np.ndarray, values: np.ndarray, tau_ms: float) -> np.ndarray:
    """The ridge-shrunk least-squares weights that the spiking rule converges to on average."""
    gram = keys.T @ keys + np.diag(keys.sum(axis=0)) / (2 * tau_ms / 1000.0)
    return np.linalg.solve(gram, keys.T @ values)


def tensor_solution(keys: np.ndarray, values: np.ndarray, sweeps: int = 200, beta: float = 0.5) -> np.ndarray:
    """Weights the tensor delta rule learns by cycling the same (rate) associations from zero.

    Keys are scaled to unit length (and the values with them) so that ``beta`` < 2 is stable;
    the fixed point ``Wᵀ r_p = ρ_p`` does not depend on that scale.
    """
    norms = np.linalg.norm(keys, axis=1, keepdims=True)
    k = torch.as_tensor(np.tile(keys / norms, (sweeps, 1)), dtype=torch.float64)[None, :, None, :]
    v = torch.as_tensor(np.tile(values / norms, (sweeps, 1)), dtype=torch.float64)[None, :, None, :]
    b = torch.full(k.shape[:3], beta, dtype=torch.float64)
    _, state = delta_rule(k, k, v, b, output_final_state=True)
    assert state is not None  # output_final_state=True
    return state[0, 0].numpy()


def simulate(duration_s: float = 60.0, *, seed: int = 0, config: DeltaReadoutConfig | None = None) -> xr.Dataset:
    """Train the readout with Brian2; learned weights beside the tensor rule's and the expected ones."""
    import brian2 as b2

    config = config or DeltaReadoutConfig()
    rule = get_rule("delta")
    keys, values = patterns(config, seed)
    b2.seed(seed)
    clock = b2.Clock(dt=config.dt_ms * b2.ms)
    n_slots = int(np.ceil(duration_s * 1000 / config.present_ms))
    order = np.arange(n_slots) % config.n_patterns
    input_rates = b2.TimedArray(keys[order] * b2.Hz, dt=config.present_ms * b2.ms)
    current = teacher_current(values[order], config.tau_m_ms, config.refractory_ms)
    teacher = b2.TimedArray(current, dt=config.present_ms * b2.ms)
    inputs = b2.NeuronGroup(
        config.n_inputs,
        "",
        threshold="rand() < input_rates(t, i) * dt",
        clock=clock,
        namespace={"input_rates": input_rates},
    )
    readout = b2.NeuronGroup(
        config.n_outputs,
        """dv/dt = (teacher(t, i) - v) / tau_m : 1 (unless refractory)
           prediction : Hz""",
        threshold="v > 1",
        reset="v = 0",
        refractory=config.refractory_ms * b2.ms,
        method="exact",
        clock=clock,
        namespace={"teacher": teacher, "tau_m": config.tau_m_ms * b2.ms},
    )
    synapses = b2.Synapses(
        inputs,
        readout,
        model=model_equations(rule, summed_on_post=True),
        on_pre=pathway_code(rule, "pre"),
        on_post=pathway_code(rule, "post"),
        method="euler",
        clock=clock,
    )
    synapses.connect()
    synapses.eta = config.eta
    synapses.tau_plus = config.tau_ms * b2.ms
    synapses.w = 0.0
    spikes = b2.SpikeMonitor(readout)
    network = b2.Network(inputs, readout, synapses, spikes)
    network.run(duration_s * b2.second)
    fired = np.bincount(np.asarray(spikes.i[:]), minlength=config.n_outputs) / duration_s
    learned = np.zeros((config.n_inputs, config.n_outputs))
    learned[np.asarray(synapses.i[:]), np.asarray(synapses.j[:])] = np.asarray(synapses.w[:])
    expected = expected_fixed_point(keys, values, config.tau_ms)
    tensor = tensor_solution(keys, values)
    weights = np.stack([learned, expected, tensor])
    return xr.Dataset(
        {
            "weight": (("source", "input", "output"), weights, {"units": "1"}),
            "key_rate": (("pattern", "input"), keys, {"units": "Hz"}),
            "value_rate": (("pattern", "output"), values, {"units": "Hz"}),
            "readout_rate": ("output", fired, {"units": "Hz", "long_name": "mean readout rate under the teacher"}),
            "predicted_rate": (
                ("source", "pattern", "output"),
                np.einsum("sio,pi->spo", weights, keys),
                {"units": "Hz", "long_name": "readout prediction W^T r_p"},
            ),
        },
        coords={"source": ["spiking", "expected", "tensor-delta"]},
        attrs={
            "duration_s": duration_s,
            "seed": seed,
            "rule": "delta",
            "neurofwp_version": neurofwp.__version__,
            **{f"config_{k}": str(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()},
        },
    )

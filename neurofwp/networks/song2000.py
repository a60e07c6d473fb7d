r"""Song, Miller & Abbott (2000): competitive Hebbian learning through STDP.

1000 Poisson inputs at 15 Hz drive one conductance-based leaky integrate-and-fire neuron
through excitatory synapses whose weights follow pair-based STDP (the ``stdp`` rule of
:mod:`neurofwp.plasticity.rules`, all-to-all, weights clipped to ``[0, g_max]``):

.. math::

    \tau_m \frac{dv}{dt} = g_e (E_e - v) + E_l - v, \qquad \tau_e \frac{dg_e}{dt} = -g_e,

a presynaptic spike adds ``w`` to :math:`g_e`; ``v > v_t`` fires and resets to ``v_r``.
Parameters as in Brian2's STDP example: :math:`\tau_\pm = 20` ms,
:math:`A_+ = 0.01\,g_{max}`, :math:`A_- = 1.05\,A_+`, :math:`g_{max} = 0.01`. The known
result: the weight distribution becomes bimodal, most weights near 0 or near
:math:`g_{max}`, and the output rate settles.
"""

from __future__ import annotations

import ctypes
import os
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import xarray as xr

import neurofwp
from neurofwp.errors import NeurofwpError, OutOfRangeError
from neurofwp.io import atomic_path, check_writable, differing_keys
from neurofwp.plasticity.brian2_backend import model_equations, pathway_code
from neurofwp.plasticity.rules import get_rule


@dataclass(frozen=True)
class Song2000Config:
    n_inputs: int = 1000
    input_rate_hz: float = 15.0
    tau_m_ms: float = 10.0
    tau_e_ms: float = 5.0
    E_e_mV: float = 0.0
    E_l_mV: float = -74.0
    v_t_mV: float = -54.0
    v_r_mV: float = -60.0
    g_max: float = 0.01
    tau_stdp_ms: float = 20.0
    A_plus_per_gmax: float = 0.01
    depression_ratio: float = 1.05
    dt_ms: float = 0.1
    record_every_s: float = 1.0


#: The conductance-based LIF neuron (module docstring); constants from :func:`lif_namespace`.
LIF_EQUATIONS = "dv/dt = (ge * (E_e - v) + E_l - v) / tau_m : volt\ndge/dt = -ge / tau_e : 1\n"


def lif_namespace(config) -> dict:
    """The Brian2 constants of :data:`LIF_EQUATIONS`, with units, from a config's ``*_mV`` / ``*_ms`` fields."""
    import brian2 as b2

    return {
        "E_e": config.E_e_mV * b2.mV,
        "E_l": config.E_l_mV * b2.mV,
        "tau_m": config.tau_m_ms * b2.ms,
        "tau_e": config.tau_e_ms * b2.ms,
        "v_t": config.v_t_mV * b2.mV,
        "v_r": config.v_r_mV * b2.mV,
    }


def build(config: Song2000Config, seed: int):
    """The Brian2 objects of the network (inputs, neuron, synapses, monitors)."""
    import brian2 as b2

    rule = get_rule("stdp")
    b2.seed(seed)
    np.random.seed(seed)
    clock = b2.Clock(dt=config.dt_ms * b2.ms, name="song2000_clock")
    inputs = b2.PoissonGroup(config.n_inputs, rates=config.input_rate_hz * b2.Hz, clock=clock, name="song2000_inputs")
    neuron = b2.NeuronGroup(
        1, LIF_EQUATIONS, threshold="v > v_t", reset="v = v_r", method="euler", clock=clock, name="song2000_neuron",
        namespace=lif_namespace(config),
    )  # fmt: skip
    neuron.v = config.v_r_mV * b2.mV
    synapses = b2.Synapses(
        inputs, neuron, model=model_equations(rule),
        on_pre="ge += w\n" + pathway_code(rule, "pre", w_max="g_max"),
        on_post=pathway_code(rule, "post", w_max="g_max"),
        namespace={"g_max": config.g_max}, clock=clock, name="song2000_synapses",
    )  # fmt: skip
    synapses.connect()
    a_plus = config.A_plus_per_gmax * config.g_max
    synapses.A_plus = a_plus
    synapses.A_minus = config.depression_ratio * a_plus
    synapses.tau_plus = synapses.tau_minus = config.tau_stdp_ms * b2.ms
    synapses.w = np.random.rand(config.n_inputs) * config.g_max
    step = max(1, int(round(config.record_every_s * 1000 / config.dt_ms)))
    weights = b2.StateMonitor(synapses, "w", record=True, dt=step * clock.dt, name="song2000_weights")
    spikes = b2.SpikeMonitor(neuron, name="song2000_spikes")
    # Fixed names: a checkpoint is restored by object name (see simulate).
    network = b2.Network(inputs, neuron, synapses, weights, spikes, name="song2000_network")
    return network, synapses, weights, spikes


def simulate(
    duration_s: float = 100.0,
    *,
    seed: int = 0,
    config: Song2000Config | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every_s: float = 10.0,
    show_progress: bool = True,
) -> xr.Dataset:
    """Run the network; weights over time, output rate per recording bin and the final weights as a Dataset.

    With ``checkpoint`` (a file path) the complete state (variables, monitors, random
    number generators) is stored there every ``checkpoint_every_s`` simulated seconds
    with Brian2's ``Network.store``, written to a temporary file and renamed, so a kill
    never leaves a broken checkpoint. If the file exists, the run resumes from it: the
    result equals an uninterrupted run. A checkpoint made with another configuration or
    seed is refused; a longer ``duration_s`` extends a finished run.
    """
    import brian2 as b2
    from tqdm.auto import tqdm

    config = config or Song2000Config()
    if not duration_s > 0:
        raise OutOfRangeError(f"duration must be > 0 s, got {duration_s}")
    if not checkpoint_every_s > 0:
        raise OutOfRangeError(f"checkpoint interval must be > 0 s, got {checkpoint_every_s}")
    identity = {"network": "song2000", "seed": seed, **asdict(config)}
    snapshot, start_s = None, 0.0
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        if checkpoint.exists():
            snapshot = _read_checkpoint(checkpoint, identity)
            start_s = snapshot["reached_s"]
            if start_s > duration_s + 1e-9:
                raise OutOfRangeError(
                    f"checkpoint {checkpoint} is at {start_s:g} s, beyond the requested duration {duration_s:g} s"
                )
        else:
            check_writable(checkpoint)
    network, synapses, weights, spikes = build(config, seed)
    if snapshot is not None:
        _restore(network, snapshot)
    step_s = checkpoint_every_s if checkpoint is not None else duration_s
    with tqdm(total=round(duration_s, 3), initial=round(start_s, 3), unit="s sim", desc="song2000",
              disable=not show_progress) as bar:  # fmt: skip
        now = start_s
        if now >= duration_s - 1e-9:
            network.run(0 * b2.second)  # already there (a finished checkpoint): prepare the objects only
        while now < duration_s - 1e-9:
            segment = min(step_s, duration_s - now)
            origin = now

            def report(elapsed, completed, start, duration, origin=origin, segment=segment):
                bar.n = round(origin + float(completed) * segment, 3)
                bar.refresh()

            network.run(segment * b2.second, report=report, report_period=1 * b2.second)
            now = float(network.t / b2.second)
            if checkpoint is not None:
                _store(network, checkpoint, identity)
    times = np.asarray(weights.t / b2.second)
    edges = np.append(times, duration_s) if len(times) else np.array([0.0, duration_s])
    counts, _ = np.histogram(np.asarray(spikes.t / b2.second), bins=edges)
    widths = np.diff(edges)
    final = np.asarray(synapses.w[:])
    attrs = {
        "network": "song2000",
        "duration_s": duration_s,
        "seed": seed,
        "rule": "stdp",
        "neurofwp_version": neurofwp.__version__,
        "reference": "Song, Miller & Abbott (2000) Nat Neurosci 3:919",
        **{f"config_{k}": v for k, v in asdict(config).items()},
    }
    return xr.Dataset(
        {
            "weight": (
                ("time", "synapse"),
                np.asarray(weights.w).T / config.g_max,
                {"units": "1", "long_name": "synaptic weight / g_max"},
            ),
            "rate": (
                "time",
                counts / np.where(widths > 0, widths, 1.0),
                {"units": "Hz", "long_name": "output firing rate in the bin starting at time"},
            ),
            "final_weight": ("synapse", final / config.g_max, {"units": "1", "long_name": "final weight / g_max"}),
        },
        coords={"time": ("time", times, {"units": "s"}), "synapse": np.arange(config.n_inputs)},
        attrs=attrs,
    )


class CheckpointError(NeurofwpError, ValueError):
    """A checkpoint file is unreadable or belongs to another configuration or seed."""


def _buffer_size() -> int:
    from brian2.codegen.generators import cython_generator

    return int(getattr(cython_generator, "_BUFFER_SIZE", 20000))


def _random_buffers() -> dict:
    """Copies of Brian2's pending Cython random-number buffers (the device keeps only raw pointers to them)."""
    import brian2 as b2

    device, saved = b2.get_device(), {}
    for kind in ("rand", "randn"):
        pointer, index = int(getattr(device, f"{kind}_buffer")[0]), int(getattr(device, f"{kind}_buffer_index")[0])
        if pointer and index:
            values = np.ctypeslib.as_array((ctypes.c_double * _buffer_size()).from_address(pointer)).copy()
            saved[kind] = (index, values)
    return saved


def _set_random_buffers(saved: dict) -> None:
    """Put pending random numbers back as fresh ``malloc`` buffers (Brian2 ``free``s and refills them itself)."""
    import brian2 as b2

    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    device = b2.get_device()
    for kind in ("rand", "randn"):
        pointers, indices = getattr(device, f"{kind}_buffer"), getattr(device, f"{kind}_buffer_index")
        if pointers[0]:
            libc.free(ctypes.c_void_p(int(pointers[0])))
        pointers[0], indices[0] = 0, 0
        if kind in saved:
            index, values = saved[kind]
            buffer = libc.malloc(values.nbytes)
            ctypes.memmove(buffer, values.ctypes.data, values.nbytes)
            pointers[0], indices[0] = buffer, index


def _store(network, path: Path, identity: dict) -> None:
    """Store the network, its random state and pending random numbers in one file, atomically.

    Brian2's own random-state snapshot holds pointers that are only valid inside the
    process that made it; the pending numbers themselves are saved instead, so a run
    resumed in a new process draws exactly the numbers the uninterrupted run would.
    """
    network.store("checkpoint")
    snapshot = {
        "identity": identity,
        "state": network._stored_state.pop("checkpoint"),
        "numpy_random_state": np.random.get_state(),
        "random_buffers": _random_buffers(),
    }
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            pickle.dump(snapshot, handle, protocol=pickle.HIGHEST_PROTOCOL)


def _read_checkpoint(path: Path, identity: dict) -> dict:
    """Load a checkpoint and check that it belongs to this configuration and seed."""
    try:
        with open(path, "rb") as handle:
            snapshot = pickle.load(handle)
        stored, reached = snapshot["identity"], float(snapshot["state"]["0_t"])
    except Exception as error:  # not a checkpoint (truncated, another format): a clear message, not a crash
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(error).__name__}: {error})") from None
    if stored != identity:
        changed = differing_keys(stored, identity)
        raise CheckpointError(
            f"checkpoint {path} was made with another configuration (differs in: {', '.join(changed)})"
        )
    snapshot["reached_s"] = reached
    return snapshot


def _restore(network, snapshot: dict) -> None:
    """Put the network, numpy's random state and the pending random numbers back as they were stored."""
    network._stored_state["checkpoint"] = snapshot["state"]
    try:
        network.restore("checkpoint")
    finally:
        network._stored_state.pop("checkpoint", None)
    np.random.set_state(snapshot["numpy_random_state"])
    _set_random_buffers(snapshot["random_buffers"])


def bimodality(final_weight: np.ndarray, edge: float = 0.2) -> float:
    """Fraction of weights within ``edge`` (as a fraction of g_max) of either bound."""
    final_weight = np.asarray(final_weight)
    return float(np.mean((final_weight < edge) | (final_weight > 1 - edge)))


def figure(result: xr.Dataset, path_stem: str) -> list[str]:
    """Final weight histogram, weights over time and output rate; saved as PNG and SVG."""
    import seaborn as sns

    from neurofwp import plotting

    with plotting.style():
        fig = plotting.figure(11, 3.2)
        axes = fig.subplots(1, 3)
        sns.histplot(x=result.final_weight.values, bins=40, ax=axes[0], color="C0")
        axes[0].set(xlabel="final weight / g_max", ylabel="synapses", title="weight distribution")
        frame = result.weight.isel(synapse=slice(0, None, 25)).to_dataframe().reset_index()
        sns.lineplot(frame, x="time", y="weight", units="synapse", estimator=None, lw=0.5, alpha=0.5, ax=axes[1])
        axes[1].set(xlabel="time (s)", ylabel="weight / g_max", title="every 25th synapse")
        sns.lineplot(x=result.time.values, y=result.rate.values, ax=axes[2], color="C3")
        axes[2].set(xlabel="time (s)", ylabel="output rate (Hz)", title="postsynaptic rate")
        sns.despine(fig)
    return [str(path) for path in plotting.save(fig, path_stem)]

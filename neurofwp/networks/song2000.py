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

from dataclasses import asdict, dataclass

import numpy as np
import xarray as xr

import neurofwp
from neurofwp.errors import OutOfRangeError
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


def build(config: Song2000Config, seed: int):
    """The Brian2 objects of the network (inputs, neuron, synapses, monitors)."""
    import brian2 as b2

    rule = get_rule("stdp")
    b2.seed(seed)
    np.random.seed(seed)
    clock = b2.Clock(dt=config.dt_ms * b2.ms)
    inputs = b2.PoissonGroup(config.n_inputs, rates=config.input_rate_hz * b2.Hz, clock=clock)
    neuron = b2.NeuronGroup(
        1,
        """dv/dt = (ge * (E_e - v) + E_l - v) / tau_m : volt
           dge/dt = -ge / tau_e : 1""",
        threshold="v > v_t", reset="v = v_r", method="euler", clock=clock,
        namespace={"E_e": config.E_e_mV * b2.mV, "E_l": config.E_l_mV * b2.mV, "tau_m": config.tau_m_ms * b2.ms,
                   "tau_e": config.tau_e_ms * b2.ms, "v_t": config.v_t_mV * b2.mV, "v_r": config.v_r_mV * b2.mV},
    )  # fmt: skip
    neuron.v = config.v_r_mV * b2.mV
    synapses = b2.Synapses(
        inputs, neuron, model=model_equations(rule),
        on_pre="ge += w\n" + pathway_code(rule, "pre", w_max="g_max"),
        on_post=pathway_code(rule, "post", w_max="g_max"),
        namespace={"g_max": config.g_max}, clock=clock,
    )  # fmt: skip
    synapses.connect()
    a_plus = config.A_plus_per_gmax * config.g_max
    synapses.A_plus = a_plus
    synapses.A_minus = config.depression_ratio * a_plus
    synapses.tau_plus = synapses.tau_minus = config.tau_stdp_ms * b2.ms
    synapses.w = np.random.rand(config.n_inputs) * config.g_max
    step = max(1, int(round(config.record_every_s * 1000 / config.dt_ms)))
    weights = b2.StateMonitor(synapses, "w", record=True, dt=step * clock.dt)
    spikes = b2.SpikeMonitor(neuron)
    return b2.Network(inputs, neuron, synapses, weights, spikes), synapses, weights, spikes


def simulate(
    duration_s: float = 100.0, *, seed: int = 0, config: Song2000Config | None = None, show_progress: bool = True
) -> xr.Dataset:
    """Run the network; weights over time, output rate per recording bin and the final weights as a Dataset."""
    import brian2 as b2
    from tqdm.auto import tqdm

    config = config or Song2000Config()
    if not duration_s > 0:
        raise OutOfRangeError(f"duration must be > 0 s, got {duration_s}")
    network, synapses, weights, spikes = build(config, seed)
    with tqdm(total=round(duration_s, 3), unit="s sim", desc="song2000", disable=not show_progress) as bar:

        def report(elapsed, completed, start, duration):
            bar.n = round(float(completed) * duration_s, 3)
            bar.refresh()

        network.run(duration_s * b2.second, report=report, report_period=1 * b2.second)
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


def bimodality(final_weight: np.ndarray, edge: float = 0.2) -> float:
    """Fraction of weights within ``edge`` (as a fraction of g_max) of either bound."""
    final_weight = np.asarray(final_weight)
    return float(np.mean((final_weight < edge) | (final_weight > 1 - edge)))


def figure(result: xr.Dataset, path_stem: str) -> list[str]:
    """Final weight histogram, weights over time and output rate; saved as PNG and SVG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="ticks", context="paper")
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    sns.histplot(x=result.final_weight.values, bins=40, ax=axes[0], color="C0")
    axes[0].set(xlabel="final weight / g_max", ylabel="synapses", title="weight distribution")
    frame = result.weight.isel(synapse=slice(0, None, 25)).to_dataframe().reset_index()
    sns.lineplot(frame, x="time", y="weight", units="synapse", estimator=None, lw=0.5, alpha=0.5, ax=axes[1])
    axes[1].set(xlabel="time (s)", ylabel="weight / g_max", title="every 25th synapse")
    sns.lineplot(x=result.time.values, y=result.rate.values, ax=axes[2], color="C3")
    axes[2].set(xlabel="time (s)", ylabel="output rate (Hz)", title="postsynaptic rate")
    sns.despine(fig)
    fig.tight_layout()
    paths = [f"{path_stem}.png", f"{path_stem}.svg"]
    for path in paths:
        fig.savefig(path, dpi=150)
    plt.close(fig)
    return paths

"""``neurofwp infer-rule``: which plasticity rule, if any, explains a recorded connection (a thin layer on
:func:`neurofwp.recordings.plastic.infer_rules`)."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from neurofwp.cli import _parameters
from neurofwp.io import OutputPathError

RESULT = "inference.nc"


def _ids(text: str | None) -> list[str] | None:
    if text is None:
        return None
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise click.BadParameter(f"{text!r} names no unit; give ids separated by commas, e.g. 2,3,5")
    return items


def _folder(path: str) -> Path:
    """The ``--out`` folder, checked but not created (nothing is written before the fit succeeds)."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise OutputPathError(f"output path {folder} exists and is not a folder")
    parent = folder.parent if str(folder.parent) else Path(".")
    if not parent.is_dir():
        raise OutputPathError(f"output folder {parent} does not exist")
    return folder


@click.command(name="infer-rule")
@click.argument("recording")
@click.option("--post", default=None, help="NWB: id of the postsynaptic unit (default: the first)")
@click.option(
    "--pre", default=None, help="presynaptic units, comma-separated (NWB: ids; NPZ: input names); default: all others"
)
@click.option(
    "--rule", "rules", multiple=True, required=True, help="a built-in rule or a rule file (.toml); repeat for several"
)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="results", show_default=True)
@click.option("--bin-ms", default=1.0, show_default=True, help="GLM bin width")
@click.option("--history-lags", default=5, show_default=True, help="bins of postsynaptic spike history")
@click.option("--coupling-tau-ms", default=5.0, show_default=True, help="time constant of the coupling kernel")
@click.option("--likelihood", type=click.Choice(["poisson", "bernoulli"]), default="poisson", show_default=True)
@click.option("--starts", default=3, show_default=True, help="rule-parameter starts per rule")
@click.option("--held-out", default=0.2, show_default=True, help="fraction of the recording held out")
@click.option(
    "--held-out-blocks",
    default=1,
    show_default=True,
    help="held-out blocks spread through the recording (the end of each of this many equal segments); 1: the end",
)
@click.option(
    "--dt-ms",
    default=0.1,
    show_default=True,
    help="time step of the per-event path (rules whose spike updates read w); "
    "clock-driven rules are solved exactly between events",
)
@click.option(
    "--fix",
    "fixes",
    multiple=True,
    metavar="NAME=VALUE",
    help="hold a parameter fixed in every rule that has it (repeatable; default: the rules' free parameters fitted)",
)
@click.option("--seed", default=0, show_default=True)
@click.option("--progress/--no-progress", default=True, show_default=True)
def infer_rule_command(
    recording, post, pre, rules, out_dir, bin_ms, history_lags, coupling_tau_ms, likelihood, starts, held_out,
    held_out_blocks, dt_ms, fixes, seed, progress,
) -> None:  # fmt: skip
    """Fit point-process GLMs whose couplings evolve under each --rule, and the static GLM, to the spikes of
    RECORDING (.nwb: a Units table; .npz: spike_times_s is postsynaptic, input_spike_times_s__<name> presynaptic);
    compare them on held-out time; write OUT/inference.nc and figures."""
    from neurofwp import recordings
    from neurofwp.io import save_netcdf
    from neurofwp.plasticity import resolve_rule
    from neurofwp.recordings import plastic
    from neurofwp.recordings.figures import figures

    folder = _folder(out_dir)
    resolved = [resolve_rule(rule) for rule in rules]
    values = _parameters(fixes, "--fix")
    for name in values:
        if not any(name in rule.parameter_names for rule in resolved):
            raise click.BadParameter(
                f"no rule among {', '.join(r.name for r in resolved)} has {name!r}", param_hint="--fix"
            )
    fixed = {rule.name: {n: v for n, v in values.items() if n in rule.parameter_names} for rule in resolved}
    loaded = recordings.load(recording, post, _ids(pre))
    result = plastic.infer_rules(
        loaded, resolved, bin_ms=bin_ms, history_lags=history_lags, coupling_tau_ms=coupling_tau_ms,
        likelihood=likelihood, fixed=fixed, starts=starts, held_out=held_out,
        held_out_blocks=held_out_blocks, dt_ms=dt_ms, seed=seed, show_progress=progress,
    )  # fmt: skip
    folder.mkdir(exist_ok=True)
    target = save_netcdf(result, folder / RESULT)
    drawn = figures(result, folder)
    click.echo(
        f"{result.attrs['source']}: {len(loaded.spike_times_s)} postsynaptic spikes in {loaded.duration_s:g} s, "
        f"{len(result.input)} presynaptic units, {bin_ms:g} ms bins, held out: {_intervals(result)}"
    )
    for model in result.model.values:
        row = result.sel(model=model)
        line = f"  {model:<16} held-out {float(row.bits_per_spike):8.4f} bits/spike"
        if model != plastic.STATIC:
            statistic, dof, p_value = float(row.lr_statistic), int(row.lr_dof), float(row.lr_p_value)
            line += f"   LR vs static {statistic:8.2f} (dof {dof}, p = {p_value:.3g})"
        click.echo(line)
    click.echo(f"saved {target}, {', '.join(str(p) for p in drawn)}")


def _intervals(result) -> str:
    blocks = np.reshape(result.attrs["held_out_intervals_s"], (-1, 2))
    return ", ".join(f"{start:g}-{end:g} s" for start, end in blocks)

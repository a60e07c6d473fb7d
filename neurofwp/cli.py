"""The ``neurofwp`` command line: parse, call the library, print, exit 2 on a neurofwp error."""

from __future__ import annotations

import math
import sys

import click
import numpy as np

from neurofwp.errors import NeurofwpError

#: Exit status after an interrupt (128 + SIGINT, as shells report it).
INTERRUPTED_STATUS = 130


class _Group(click.Group):
    """Turn a :class:`NeurofwpError` into one line on stderr and exit status 2; an interrupt into one line and 130.

    Commands defined beside the library code they drive (``name -> module``) are imported only
    when named or listed, so that ``neurofwp --help`` stays fast."""

    LAZY = {"infer-rule": "neurofwp.recordings.command:infer_rule_command"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.LAZY})

    def get_command(self, ctx: click.Context, name: str):
        if name in self.LAZY and name not in self.commands:
            import importlib

            module, _, attribute = self.LAZY[name].partition(":")
            self.add_command(getattr(importlib.import_module(module), attribute), name)
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as interrupt:
            # A sweep says what it kept (SweepInterrupted); other commands write their outputs only at the end.
            click.echo(f"neurofwp: {interrupt or 'interrupted'}", err=True)
            sys.exit(INTERRUPTED_STATUS)
        except NeurofwpError as error:
            click.echo(f"neurofwp: error: {error}", err=True)
            sys.exit(2)
        except click.UsageError as error:  # bad option values, unknown commands: the same one-line form
            click.echo(f"neurofwp: error: {error.format_message()}", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(package_name="neurofwp")
def main() -> None:
    """Fast weight programmers and synaptic plasticity."""


def _int_list(text: str) -> list[int]:
    """``"8,16,32"`` or ``"8:256:8"`` (start:stop:step, stop included)."""
    try:
        if ":" in text:
            start, stop, step = (int(x) for x in text.split(":"))
            return list(range(start, stop + 1, step))
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"expected a list like 8,16,32 or a range start:stop:step, got {text!r}") from None


def demo_header(seeds: int) -> str:
    """What the demo's numbers mean: the scale of E(S) is open above, not 0 to 1."""
    return (
        "relative retrieval error E(S) = sum|S^T phi(k_i) - v_i|^2 / sum|v_i|^2, "
        f"mean over {seeds} seed{'s' if seeds != 1 else ''}\n"
        "scale: 0 = perfect recall; 1 = as far off as recalling nothing (a zero output); above 1 = cross-talk between "
        "stored pairs makes the recall worse than nothing (Hebbian: about (S - 1)/Dk); Dk = fast-weight key size"
    )


@main.command()
@click.option(
    "--pairs",
    "pairs_text",
    default="8,16,32,48,64,96,128,192,256",
    show_default=True,
    help="numbers of stored key/value pairs S (list a,b,c or range start:stop:step)",
)
@click.option("--d-key", default=64, show_default=True, help="raw key size D (the fast weights are D × D for identity)")
@click.option("--seeds", default=3, show_default=True, help="independent draws averaged")
@click.option("--seed", default=0, show_default=True, help="first seed")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="also save the result to this netCDF file")
@click.option("--progress/--no-progress", default=True, show_default=True)
def demo(pairs_text: str, d_key: int, seeds: int, seed: int, out: str | None, progress: bool) -> None:
    """Store S random key/value pairs with each rule and print the retrieval error as S grows past D."""
    from neurofwp.analysis.capacity import retrieval_curve
    from neurofwp.io import check_writable, save_netcdf

    if out is not None:
        check_writable(out)
    curve = retrieval_curve(
        _int_list(pairs_text), d_key=d_key, d_value=d_key, seeds=range(seed, seed + seeds), show_progress=progress
    )
    mean = curve.mean("seed")
    columns = [(r, m) for r in curve.rule.values for m in curve.feature_map.values]
    d_fast = dict(zip(curve.feature_map.values, curve.d_fast.values, strict=True))
    click.echo(demo_header(seeds))
    header = "S".rjust(6) + "".join(f"{r}/{m} (Dk={d_fast[m]})".rjust(26) for r, m in columns)
    click.echo(header)
    for s in curve.n_pairs.values:
        row = "".join(f"{float(mean.sel(rule=r, feature_map=m, n_pairs=s)):26.3f}" for r, m in columns)
        click.echo(f"{int(s):6d}{row}")
    if out is not None:
        click.echo(f"saved {save_netcdf(curve, out)}")


def _parallel(command):
    """``--workers`` (default: one per core) and ``--scheduler`` for sweep-shaped commands."""
    import os

    command = click.option(
        "--scheduler", default=None, help="dask.distributed scheduler: tcp://HOST:PORT, or local:N to start one"
    )(command)
    return click.option(
        "--workers",
        default=os.cpu_count() or 1,
        show_default="one per core",
        type=click.IntRange(min=1),
        help="local worker processes (1: run in this process)",
    )(command)


def _output_folder(path: str):
    """The ``--out`` folder, created if missing; its parent must exist (a typo should not build a tree)."""
    from pathlib import Path

    from neurofwp.io import OutputPathError

    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise OutputPathError(f"output path {folder} exists and is not a folder")
    parent = folder.parent if str(folder.parent) else Path(".")
    if not parent.is_dir():
        raise OutputPathError(f"output folder {parent} does not exist")
    folder.mkdir(exist_ok=True)
    return folder


def _bounds(items: tuple[str, ...]) -> dict[str, tuple[float, float]]:
    """``--bound NAME=LOW:HIGH`` options as name -> (low, high)."""
    bounds = {}
    for item in items:
        name, _, span = item.partition("=")
        try:
            low, high = (float(x) for x in span.split(":"))
        except ValueError:
            raise click.BadParameter(f"expected NAME=LOW:HIGH, got {item!r}", param_hint="--bound") from None
        bounds[name.strip()] = (low, high)
    return bounds


def _parameters(items: tuple[str, ...], option: str = "--param") -> dict[str, float]:
    """``NAME=VALUE`` items of ``option`` as numbers by name."""
    values = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint=option)
        try:
            values[name.strip()] = float(text)
        except ValueError:
            raise click.BadParameter(f"{name.strip()}: {text!r} is not a number", param_hint=option) from None
    return values


def _protocols(source: str):
    """A bundled dataset name or a CSV path, as a ProtocolTable: predict and fit record its name and citation."""
    import warnings

    from neurofwp import data

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = data.resolve(source)
    for warning in caught:  # e.g. extra columns kept as metadata: one line each, like the errors
        click.echo(f"neurofwp: warning: {warning.message}", err=True)
    return table


class _RulesAndDataCommand(click.Command):
    """A command taking RULE and DATA: its help lists the rule names and the bundled datasets."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from neurofwp import data
        from neurofwp.plasticity.rules import RULES

        with formatter.section("Rules"):
            formatter.write_dl([(name, rule.summary) for name, rule in RULES.items()])
        with formatter.section("Bundled datasets (or give a protocol CSV path)"):
            formatter.write_dl([(name, data.description(name)) for name in data.list()])
        super().format_epilog(ctx, formatter)


def _echo_table(result) -> None:
    """The model beside the data, a line per protocol (weight changes) or per train and kind (responses)."""
    if "amplitude_model" in result:
        click.echo("responses per presynaptic spike, model then data" + (" (+- sem)" if "sem" in result else ""))
        for name in result.protocol.values:
            row = result.sel(protocol=name)
            count = int(row.pre_spike_time_ms.notnull().sum())

            def numbers(values, count=count) -> str:
                return " ".join("   -  " if np.isnan(v) else f"{v:6.3f}" for v in values[:count])

            click.echo(f"{str(name):<24}model {numbers(row.amplitude_model.values)}")
            if bool(row.amplitude.notnull().any()):
                click.echo(f"{'':<24}data  {numbers(row.amplitude.values)}")
        return
    has_data = "dw_percent" in result
    click.echo(f"{'protocol':<24}{'model %':>10}" + (f"{'data %':>10}{'sem %':>10}" if has_data else ""))
    for name in result.protocol.values:
        row = result.sel(protocol=name)
        line = f"{str(name):<24}{float(row.dw_percent_model):>10.2f}"
        if has_data:
            sem = float(row.sem_percent) if "sem_percent" in result else float("nan")
            line += f"{float(row.dw_percent):>10.2f}{sem:>10.2f}"
        click.echo(line)


@main.command(cls=_RulesAndDataCommand)
@click.argument("rule")
@click.argument("data_csv", metavar="DATA")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="rule parameter (repeatable)")
@click.option("--backend", type=click.Choice(["torch", "brian2"]), default="torch", show_default=True)
@click.option("--dt-ms", default=0.1, show_default=True, help="time step of clock-driven rules (delta)")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="write the result as netCDF")
def predict(rule: str, data_csv: str, params: tuple[str, ...], backend: str, dt_ms: float, out: str | None) -> None:
    """Simulate every protocol of DATA (a CSV file or a bundled dataset name) with RULE."""
    from neurofwp import plasticity
    from neurofwp.io import check_writable, save_netcdf

    rule_def = plasticity.get_rule(rule)
    values = rule_def.resolve(_parameters(params))
    if out is not None:
        check_writable(out)
    result = plasticity.predict(rule_def, _protocols(data_csv), values, backend=backend, dt_ms=dt_ms)
    click.echo(f"rule {rule_def.name} ({backend}): " + ", ".join(f"{k}={v:g}" for k, v in values.items()))
    _echo_table(result)
    if "E" in result.attrs:
        click.echo(f"E = {result.attrs['E']:.4f}   ({result.attrs['E_definition']})")
    if out is not None:
        click.echo(f"saved {save_netcdf(result, out)}")


@main.command(name="fit", cls=_RulesAndDataCommand)
@click.argument("rule")
@click.argument("data_csv", metavar="DATA")
@click.option("--free", multiple=True, metavar="NAME", help="parameter to fit (repeatable; default: the rule's)")
@click.option("--fix", "fixes", multiple=True, metavar="NAME=VALUE", help="hold a parameter fixed (repeatable)")
@click.option("--bound", "bound_items", multiple=True, metavar="NAME=LOW:HIGH", help="override a bound (repeatable)")
@click.option("--backend", type=click.Choice(["torch", "brian2"]), default="torch", show_default=True)
@click.option("--starts", default=4, show_default=True, help="random starts")
@click.option("--seed", default=0, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="write the fit as netCDF")
@_parallel
@click.option("--progress/--no-progress", default=True, show_default=True)
def fit_command(
    rule, data_csv, free, fixes, bound_items, backend, starts, seed, out, workers, scheduler, progress
) -> None:
    """Fit RULE's parameters to DATA (CSV file or bundled dataset) by minimising E."""
    from neurofwp import fit as fitting
    from neurofwp.io import check_writable, save_netcdf

    bounds = _bounds(bound_items)
    if out is not None:
        check_writable(out)
    result = fitting.fit(
        rule,
        _protocols(data_csv),
        free=list(free) or None,
        fixed=_parameters(fixes),
        bounds=bounds,
        backend=backend,
        starts=starts,
        seed=seed,
        workers=workers,
        scheduler=scheduler,
        show_progress=progress,
    )
    attrs = result.attrs
    click.echo(
        f"rule {attrs['rule']} ({backend}), {starts} start(s), seed {seed}, "
        f"{attrs['evaluations']} evaluations, {attrs['fit_seconds']:.1f} s"
    )
    for name in attrs["free"].split():
        low, high = attrs[f"bounds_{name}"]
        click.echo(f"  {name:<14} = {attrs['param_' + name]:<12.6g} free, bounds [{low:g}, {high:g}]")
    for name in attrs["fixed"].split():
        click.echo(f"  {name:<14} = {attrs['param_' + name]:<12.6g} fixed")
    _echo_table(result)
    click.echo(f"E = {attrs['E']:.4f}   ({attrs['E_definition']})")
    if out is not None:
        click.echo(f"saved {save_netcdf(result, out)}")


@main.command(name="posterior", cls=_RulesAndDataCommand)
@click.argument("rule")
@click.argument("data_csv", metavar="DATA")
@click.option("--simulations", default=10_000, show_default=True, help="simulated parameter sets (prior draws)")
@click.option("--seed", default=0, show_default=True)
@click.option("--free", multiple=True, metavar="NAME", help="parameter to infer (repeatable; default: the rule's)")
@click.option("--fix", "fixes", multiple=True, metavar="NAME=VALUE", help="hold a parameter fixed (repeatable)")
@click.option("--bound", "bound_items", multiple=True, metavar="NAME=LOW:HIGH", help="uniform prior range (repeatable)")
@click.option(
    "--noise",
    type=float,
    default=None,
    help="measurement SD for data without SEMs (units of the data) [default: the best fit's RMS residual]",
)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="output folder")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="local worker processes for the simulation batches (they take about 0.1 s per 1000 simulations here)",
)
@click.option("--scheduler", default=None, help="dask.distributed scheduler for the simulation batches")
@click.option("--progress/--no-progress", default=True, show_default=True)
def posterior_command(
    rule, data_csv, simulations, seed, free, fixes, bound_items, noise, out_dir, workers, scheduler, progress
) -> None:
    """Posterior of RULE's parameters given DATA by simulation-based inference (needs neurofwp[bayes]).

    Writes OUT/posterior.nc (samples, posterior predictive, calibration), the pair plot
    (posterior.png) and the data with the best fit and the posterior predictive band (data_<DATA>.png).
    The simulation batches are kept in OUT/cells_posterior: a rerun after an interruption continues."""
    from neurofwp import plotting
    from neurofwp.analysis import figures
    from neurofwp.analysis import posterior as inference
    from neurofwp.analysis.compare import _gather, _resolve, fit_cell
    from neurofwp.io import save_netcdf

    folder = _output_folder(out_dir)
    bounds, fixed = _bounds(bound_items), _parameters(fixes)
    rules, tables, infos = _resolve([rule], [data_csv])
    (rule_object,), (table,) = rules.values(), tables.values()
    coords = {"rule": rule_object.name, "dataset": table.name}
    names = list(free) or None
    cell = fit_cell(
        coords, rules=rules, tables=tables, starts=3, seed=seed, cv=False, free=names, fixed=fixed, bounds=bounds
    )
    source = "given"
    if noise is None:
        noise, source = inference.default_noise(table, cell["E"])
    result = inference.posterior(
        rule_object, table, simulations=simulations, seed=seed, noise=noise, noise_source=source,
        show_progress=progress, free=names, fixed=fixed, bounds=bounds, workers=workers, scheduler=scheduler,
        store=str(folder / "cells_posterior"),
    )  # fmt: skip
    comparison = _gather(rules, tables, infos, [coords], [cell])
    found = inference.summary(result, rule_object, table, cell["parameters"])
    comparison = inference.add_to_comparison(comparison, [coords], [found], simulations)
    path = save_netcdf(result, folder / "posterior.nc")
    drawn = inference.pair_figure(comparison, coords["rule"], coords["dataset"], folder / "posterior", samples=result)
    with plotting.style():
        drawn += figures.dataset_figure(comparison, table.name, folder)
    click.echo(
        f"rule {result.attrs['rule']}: {simulations} simulations ({result.attrs['seconds_simulating']:.1f} s), "
        f"training {result.attrs['seconds_training']:.1f} s; noise: {result.attrs['noise']}"
    )
    for name in result.parameter.values:
        low, median, high = np.quantile(result[name].values, [0.05, 0.5, 0.95])
        click.echo(
            f"  {name:<14} median {median:<10.4g} 90 % [{low:.4g}, {high:.4g}]   best fit "
            f"{cell['parameters'][str(name)]:.4g}; coverage of held-back simulations "
            f"{float(result.expected_coverage_90.sel(parameter=name)):.2f}"
        )
    click.echo(f"saved {path} and {', '.join(str(p) for p in drawn)}")


@main.command()
@click.option(
    "--rules",
    "rule_items",
    multiple=True,
    metavar="RULE",
    help="a built-in rule or a rule file (repeatable) [default: stdp, delta, stdp-modulated, stdp-gated, triplet]",
)
@click.option(
    "--data",
    "data_items",
    multiple=True,
    metavar="DATA",
    help="a bundled dataset or a protocol CSV (repeatable) [default: every bundled dataset]",
)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="results", show_default=True)
@click.option("--starts", default=3, show_default=True, help="random starts per fit")
@click.option("--seed", default=0, show_default=True)
@click.option("--cv/--no-cv", default=True, show_default=True, help="leave-one-protocol-out cross-validation")
@click.option(
    "--posterior",
    "posterior_simulations",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="also the posterior of every fitted cell by simulation-based inference with N simulations "
    "(needs neurofwp[bayes]; about 1-2 min per cell at N = 10000) [default: off]",
)
@_parallel
@click.option("--progress/--no-progress", default=True, show_default=True)
def compare(
    rule_items: tuple[str, ...],
    data_items: tuple[str, ...],
    out_dir: str,
    starts: int,
    seed: int,
    cv: bool,
    posterior_simulations: int | None,
    workers: int,
    scheduler: str | None,
    progress: bool,
) -> None:
    """Fit rules to datasets and compare them: E, AIC/BIC, cross-validation, intervals; results, figures, report."""

    from neurofwp.analysis import figures, report
    from neurofwp.analysis.compare import DEFAULT_RULES
    from neurofwp.analysis.compare import compare as run_comparison
    from neurofwp.io import check_writable, save_netcdf

    folder = _output_folder(out_dir)
    check_writable(folder / "comparison.nc")
    result = run_comparison(
        list(rule_items) or DEFAULT_RULES,
        list(data_items) or None,
        starts=starts,
        seed=seed,
        cross_validate=cv,
        posterior_simulations=posterior_simulations,
        store=str(folder / "cells_compare"),
        workers=workers,
        scheduler=scheduler,
        show_progress=progress,
    )
    save_netcdf(result, folder / "comparison.nc")
    drawn = figures.all_figures(result, folder)
    html_path, md_path = report.write(result, folder, drawn)
    names = list(result.dataset.values)
    width = max(len(n) for n in names) + 2
    click.echo(f"{'E (E_cv), ΔAIC':<44}" + "".join(f"{d:>{max(width, 24)}}" for d in names))
    delta = result.AIC - result.AIC.min("rule")
    for rule in result.rule.values:
        cells = []
        for d in names:
            e, e_cv, a = (float(result[v].sel(rule=rule, dataset=d)) for v in ("E", "E_cv", "AIC"))
            if math.isnan(e):  # the rule cannot explain this kind of data (not fitted)
                cells.append("–")
                continue
            cells.append(f"{e:.3g} ({e_cv:.3g}), {float(delta.sel(rule=rule, dataset=d)):+.1f}")
        label = str(result.rule_label.sel(rule=rule).values)
        click.echo(f"{label[:43]:<44}" + "".join(f"{c:>{max(width, 24)}}" for c in cells))
    click.echo(
        f"saved {folder / 'comparison.nc'}, {html_path}, {md_path} and "
        f"{sum(len(p) for p in drawn.values()) // 2} figures (PNG, SVG) in {folder}"
    )


@main.command(name="rules")
@click.argument("rule", required=False)
def rules_command(rule: str | None) -> None:
    """List the built-in rules, or show one rule (a name or a rule file): equations, parameters, reference."""
    from neurofwp.plasticity.rules import RULES, resolve_rule

    if rule is None:
        click.echo(f"{'name':<18}{'family':<14}{'label':<42}free parameters")
        for name, item in RULES.items():
            click.echo(f"{name:<18}{item.family:<14}{item.label[:41]:<42}{', '.join(item.free)}")
        click.echo("neurofwp rules NAME|FILE shows one rule; a rule file is as good as a built-in (docs/rules.md)")
        return
    item = resolve_rule(rule)
    click.echo(f"{item.name}: {item.label} (family: {item.family})")
    click.echo(item.summary)
    if item.reference:
        click.echo(f"reference: {item.reference}")
    click.echo("traces (d tr/dt = (rest - tr)/tau, rest 0 unless given; a spike adds 1, sets 1 when nearest-spike,")
    click.echo("        or sets its on_spike value, computed from the values before the spike):")
    for trace in item.traces:
        reset = " (nearest-spike)" if trace.reset else ""
        rest = f", rest {trace.rest}" if trace.rest != "0" else ""
        update = f", at a spike {trace.name} = {trace.on_spike}" if trace.on_spike else ""
        click.echo(f"  {trace.name:<10} tau = {trace.tau:<14} driven by {trace.source} spikes{reset}{rest}{update}")
    for name, expression in item.helpers:
        click.echo(f"  {name} = {expression}")
    for name, expression, unit in item.summed:
        click.echo(f"  {name} = sum over synapses of {expression} [{unit}]")
    if item.response is not None:
        click.echo(f"each presynaptic spike delivers (before its updates): {item.response}")
    click.echo(f"on a presynaptic spike:  w += {item.on_pre}")
    click.echo(f"on a postsynaptic spike: w += {item.on_post}")
    if item.drift:
        click.echo(f"between spikes:          dw/dt = {item.drift}")
    click.echo(f"{'parameter':<16}{'default':>10}  {'bounds':<20}{'unit':<6}{'free':<6}description")
    for parameter in item.parameters:
        low, high = parameter.bounds
        unit = ("ms" + ("≥0" if parameter.may_be_zero else "")) if parameter.is_time else "1"
        free = "yes" if parameter.name in item.free else ""
        click.echo(
            f"{parameter.name:<16}{parameter.default:>10.4g}  {f'[{low:g}, {high:g}]':<20}{unit:<6}{free:<6}"
            f"{parameter.description}"
        )


@main.command(name="data")
def data_command() -> None:
    """List the bundled datasets: name, protocols, preparation and citation (docs/data.md says how to add one)."""
    from neurofwp import data

    for row in data.summary():
        click.echo(f"{row.name}  ({row.protocols} protocols; {row.preparation})")
        click.echo(f"    {row.description}")
        click.echo(f"    {row.citation}")
    click.echo("every command that takes a bundled dataset takes the path of a protocol CSV too")


@main.command()
@click.option("--setting", type=click.Choice(["1", "2"]), required=True, help="1: capacity; 2: update rules")
@click.option(
    "--rules",
    "models_text",
    default=None,
    help="comma-separated models: softmax, or <map>-<rule>[@<dt>ms][+trained] with map linear|dpfp<nu>|favor<m>, "
    "rule sum|delta, a built-in spiking rule (stdp, triplet, ...) or rule:<name or rule file path> "
    "(docs/rate_reading.md; +trained: the slow network also trains the rule's parameters) "
    "[default: the paper's models of the setting]",
)
@click.option(
    "--S", "s_text", default=None, help="numbers of unique keys, a,b,c or start:stop:step [default: 20:600:20]"
)
@click.option("--quick", is_flag=True, help="a few models, S values and at most 2000 steps: minutes on a CPU")
@click.option("--max-steps", type=int, default=None, help="training step cap per cell [default: 100000]")
@click.option("--seed", default=0, show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="results", show_default=True)
@_parallel
@click.option("--device", default="cpu", show_default=True, help="torch device for training, e.g. cuda")
@click.option("--progress/--no-progress", default=True, show_default=True)
def retrieval(setting, models_text, s_text, quick, max_steps, seed, out_dir, workers, scheduler, device, progress):
    """Train the associative-retrieval models of Schlag et al. (2021) over S; resumable (finished cells are kept)."""
    import dataclasses

    from neurofwp import retrieval as rt
    from neurofwp.io import check_writable, save_netcdf
    from neurofwp.retrieval.figure import figure

    setting = int(setting)
    plan = rt.QUICK[setting] if quick else {"models": rt.SETTING_MODELS[setting], "S": None, "config": rt.TrainConfig()}
    models = [m.strip() for m in models_text.split(",") if m.strip()] if models_text else list(plan["models"])
    num_keys = _int_list(s_text) if s_text else list(plan["S"] or rt.DEFAULT_S[setting])
    config = plan["config"] if max_steps is None else dataclasses.replace(plan["config"], max_steps=max_steps)
    for name in models:  # names and sizes are checked before anything is written
        rt.parse_model(name)
    for size in num_keys:
        rt.RetrievalTask(setting, size)
    folder = _output_folder(out_dir)
    result_path = check_writable(folder / f"retrieval_setting{setting}.nc")
    result = rt.sweep(
        setting,
        models,
        num_keys,
        seed=seed,
        config=config,
        store=str(folder / f"cells_setting{setting}"),
        workers=workers,
        scheduler=scheduler,
        device=device,
        progress=progress,
    )
    save_netcdf(result, result_path)
    drawn = figure(result, folder / f"retrieval_setting{setting}", reference=rt.paper_reference(setting))
    click.echo("best evaluation loss (0.5 squared error; <= 0.001 counts as solved)")
    width = max(14, max(len(str(m)) for m in result.model.values) + 2)
    click.echo(f"{'S':>6}" + "".join(f"{m:>{width}}" for m in result.model.values))
    for s in result.S.values:
        row = "".join(f"{float(result.best_eval_loss.sel(model=m, S=s)):>{width}.4f}" for m in result.model.values)
        click.echo(f"{int(s):>6}{row}")
    for model in result.model.values:
        if rt.parse_model(str(model)).update == "rule" and "write_rule" in result:
            click.echo(f"{model}: {result.write_rule.sel(model=model).values}")
    click.echo(f"saved {result_path} and {', '.join(str(p) for p in drawn)}")


@main.command(name="sweep")
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="results", show_default=True)
@_parallel
@click.option("--progress/--no-progress", default=True, show_default=True)
def sweep_command(config_path: str, out_dir: str, workers: int, scheduler: str | None, progress: bool) -> None:
    """Run a sweep file (TOML: rules × parameter grids × datasets × seeds); resumable, one netCDF result."""
    from pathlib import Path

    from neurofwp import grid
    from neurofwp.io import check_writable, save_netcdf

    config = grid.load(config_path)
    stem = Path(config_path).stem
    folder = _output_folder(out_dir)
    target = check_writable(folder / f"{stem}.nc")
    counts = grid.describe(config)
    click.echo(", ".join(f"{v} {k}" for k, v in counts.items()))
    result = grid.run(
        config, store=str(folder / f"cells_{stem}"), workers=workers, scheduler=scheduler, progress=progress
    )
    save_netcdf(result, target)
    lowest = grid.best(result)  # rule, dataset, seed (fits) and the parameters that rule sweeps; {} if no E
    if lowest:
        at = ", ".join(f"{name}={value}" for name, value in lowest.items())
        click.echo(f"lowest E = {float(result.E.min()):.4g} at {at}")
    else:
        click.echo("no grid point has a value of E")
    click.echo(f"saved {target}")


@main.command(name="fit-recording")
@click.argument("source")
@click.option("--unit", default=None, help="NWB: id of the unit to predict (default: the first)")
@click.option("--bin-ms", default=2.0, show_default=True)
@click.option("--lags", default=16, show_default=True, help="bins of input history")
@click.option("--likelihood", type=click.Choice(["poisson", "bernoulli"]), default="poisson", show_default=True)
@click.option("--steps", default=300, show_default=True, help="Adam steps per model")
@click.option("--seed", default=0, show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="results", show_default=True)
@click.option("--progress/--no-progress", default=True, show_default=True)
def fit_recording_command(source, unit, bin_ms, lags, likelihood, steps, seed, out_dir, progress) -> None:
    """Predict a recorded neuron's spikes (SOURCE: .nwb, .npz, or grasshopper1/grasshopper2) with an LN model,
    a Hebbian and a delta-rule fast-weight model; report held-out bits per spike."""

    from neurofwp import recordings
    from neurofwp.io import RUN_ATTR, check_writable, refuse_other_run, save_netcdf

    recording = recordings.load(source, unit)
    folder = _output_folder(out_dir)
    # Named after what was recorded, so that fits of different neurons share an --out folder.
    target = check_writable(folder / f"recording_fit_{recording.name}.nc")
    settings = {"source": recording.source, "bin_ms": bin_ms, "lags": lags, "likelihood": likelihood}
    run = refuse_other_run(target, {**settings, "steps": steps, "seed": seed})
    result = recordings.fit_recording(
        recording, bin_ms=bin_ms, lags=lags, likelihood=likelihood, steps=steps, seed=seed, show_progress=progress
    )
    result.attrs[RUN_ATTR] = run
    save_netcdf(result, target)
    drawn = recordings.figure(result, str(target.with_suffix("")))
    click.echo(
        f"{recording.source}: {len(recording.spike_times_s)} spikes in {recording.duration_s:g} s, "
        f"{bin_ms:g} ms bins, {lags} lags, {likelihood} likelihood, held out after "
        f"{result.attrs['test_start_s']:g} s"
    )
    for model in result.model.values:
        click.echo(
            f"  {model:<12} held-out {float(result.bits_per_spike.sel(model=model)):7.3f} bits/spike"
            f"   (training {float(result.train_bits_per_spike.sel(model=model)):.3f})"
        )
    click.echo(f"saved {target}, {', '.join(drawn)}")


def _seconds(text: str) -> float:
    text = text.strip().lower()
    scale = 1.0
    for suffix, factor in (("ms", 1e-3), ("s", 1.0)):
        if text.endswith(suffix):
            text, scale = text[: -len(suffix)], factor
            break
    try:
        return float(text) * scale
    except ValueError:
        raise click.BadParameter(f"expected a duration such as 100s or 500ms, got {text!r}") from None


@main.command()
@click.argument("network", type=click.Choice(["song2000"]))
@click.option("--duration", default="100s", show_default=True, help="simulated time, e.g. 100s or 500ms")
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default="results",
    show_default=True,
    help="folder for NETWORK.nc and the figure",
)
@click.option(
    "--checkpoint-every",
    default=None,
    help="store the full state in OUT/NETWORK.checkpoint every so much simulated time (e.g. 10s); "
    "a rerun resumes from it",
)
@click.option("--progress/--no-progress", default=True, show_default=True)
def simulate(
    network: str, duration: str, seed: int, out_dir: str, checkpoint_every: str | None, progress: bool
) -> None:
    """Simulate a plastic spiking network (song2000: 1000 Poisson inputs, STDP, one LIF neuron)."""
    from pathlib import Path

    from neurofwp.io import RUN_ATTR, check_writable, refuse_other_run, save_netcdf
    from neurofwp.networks import song2000

    seconds = _seconds(duration)
    if not math.isfinite(seconds) or seconds <= 0:
        raise click.BadParameter(f"the duration must be > 0 and finite, got {duration!r}", param_hint="--duration")
    every = None if checkpoint_every is None else _seconds(checkpoint_every)
    if every is not None and (not math.isfinite(every) or every <= 0):
        raise click.BadParameter(
            f"the interval must be > 0 and finite, got {checkpoint_every!r}", param_hint="--checkpoint-every"
        )
    target = _output_folder(out_dir) / f"{network}.nc"
    check_writable(target)
    run = refuse_other_run(target, {"network": network, "duration_s": seconds, "seed": seed})
    checkpoint = {} if every is None else {"checkpoint": target.with_suffix(".checkpoint"), "checkpoint_every_s": every}
    result = song2000.simulate(seconds, seed=seed, show_progress=progress, **checkpoint)
    result.attrs[RUN_ATTR] = run
    save_netcdf(result, target)
    figures = song2000.figure(result, str(Path(out_dir) / network))
    bimodal = song2000.bimodality(result.final_weight.values)
    click.echo(
        f"{network}: {result.attrs['duration_s']:g} s "
        f"simulated, final output rate {float(result.rate[-1]):.1f} Hz, "
        f"{100 * bimodal:.0f}% of weights within 20% of a bound"
    )
    click.echo(f"saved {target}, {', '.join(figures)}")


if __name__ == "__main__":
    main()

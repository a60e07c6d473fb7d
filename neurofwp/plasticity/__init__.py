"""Spiking synaptic plasticity: rules defined once, simulated by a torch or a Brian2 backend.

A rule is a built-in name, the path of a rule file (TOML, see ``docs/rules.md``) or a
:class:`Rule`; :func:`resolve_rule` turns any of them into a :class:`Rule`.

>>> from neurofwp import data, plasticity
>>> result = plasticity.predict("triplet", data.protocols("sjostrom2001"))  # doctest: +SKIP
>>> result = plasticity.predict("my_rules/soft.toml", data.protocols("sjostrom2001"))  # doctest: +SKIP
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import xarray as xr

import neurofwp
from neurofwp.errors import DTypeError, OutOfRangeError, ShapeError, UnknownNameError
from neurofwp.plasticity.rules import (
    FAMILIES,
    RULES,
    Parameter,
    Rule,
    RuleError,
    RuleFileError,
    Trace,
    check_parameter_value,
    check_time_step,
    get_rule,
    load_rule,
    resolve_rule,
    rule_from_toml,
)
from neurofwp.protocols import (
    MissingSEMError,
    Protocol,
    ProtocolError,
    ProtocolTable,
    TrainProtocol,
    check_sem,
    is_train_table,
)

BACKENDS = ("torch", "brian2")

__all__ = [
    "BACKENDS", "FAMILIES", "RULES", "Parameter", "Rule", "RuleError", "RuleFileError", "Trace", "check_time_step",
    "get_rule", "load_rule", "resolve_rule", "rule_from_toml", "simulate", "simulate_responses", "predict",
]  # fmt: skip


def check_rule(rule: object) -> Rule:
    """``rule`` as a :class:`Rule` (see :func:`resolve_rule`): a built-in name, a rule file's path or a Rule."""
    return resolve_rule(rule)  # type: ignore[arg-type]  # anything else raises UnknownNameError


def check_protocols(protocols: object) -> list[Protocol]:
    """``protocols`` as a non-empty list of :class:`~neurofwp.protocols.Protocol`."""
    if isinstance(protocols, (str, bytes, Protocol, Mapping)) or not isinstance(protocols, Iterable):
        raise DTypeError(
            f"protocols must be a list of Protocol objects (see neurofwp.protocols), got {type(protocols).__name__}"
        )
    items = list(protocols)
    if not items:
        raise ProtocolError("no protocols to simulate")
    for index, item in enumerate(items):
        if not isinstance(item, Protocol):
            raise DTypeError(
                f"protocols[{index}] is a {type(item).__name__}, not a Protocol "
                "(build protocols with neurofwp.protocols.make_protocol or read_csv)"
            )
    return items


def check_dt(dt_ms: object) -> float:
    """The integration step in ms: a finite number > 0."""
    if isinstance(dt_ms, bool) or not isinstance(dt_ms, numbers.Real):
        raise DTypeError(f"dt_ms must be a number (ms), got {dt_ms!r}")
    dt_ms = float(dt_ms)
    if not (math.isfinite(dt_ms) and dt_ms > 0):
        raise OutOfRangeError(f"dt_ms must be a finite number > 0 ms, got {dt_ms}")
    return dt_ms


def check_parameters(rule: Rule, parameters: object) -> None:
    """Every parameter a known name with one value or a 1-d array of values, each finite (time constants > 0)."""
    if parameters is None:
        return
    if not isinstance(parameters, Mapping):
        raise DTypeError(f"parameters must be a mapping of name to value, got {type(parameters).__name__}")
    for name, value in parameters.items():
        parameter = rule.parameter(name)  # unknown names raise UnknownNameError
        if hasattr(value, "detach"):  # a tensor (possibly requiring gradients)
            value = value.detach().cpu().numpy()
        try:
            array = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise DTypeError(f"parameter {name} must be a number or a 1-d array of numbers, got {value!r}") from None
        if array.ndim > 1:
            raise ShapeError(f"parameter {name} must be a scalar or 1-d (one value per parameter set)")
        if array.size == 0:
            raise ShapeError(f"parameter {name} has no values")
        for item in array.ravel():
            check_parameter_value(parameter, float(item))


def simulate(
    rule: str | os.PathLike[str] | Rule,
    protocols: Sequence[Protocol],
    parameters: Mapping[str, object] | None = None,
    *,
    backend: str = "torch",
    dt_ms: float = 0.1,
    report=None,
) -> np.ndarray:
    """Final weight (starting from 1) for every protocol × parameter set, as a ``[P, M]`` numpy array.

    Bad input (an unknown rule, backend or parameter, a malformed value, no protocols) raises a
    :class:`~neurofwp.errors.NeurofwpError` before anything is simulated.
    """
    rule, protocols, dt_ms = _checked_run(rule, protocols, parameters, backend, dt_ms)
    if backend == "torch":
        from neurofwp.plasticity import torch_backend

        return torch_backend.simulate(rule, protocols, parameters, dt_ms=dt_ms).detach().cpu().numpy()
    from neurofwp.plasticity import brian2_backend

    return brian2_backend.simulate(rule, protocols, parameters, dt_ms=dt_ms, report=report)


def _checked_run(rule, protocols, parameters, backend: str, dt_ms) -> tuple[Rule, list[Protocol], float]:
    """The checks every simulation entry point makes before anything runs; the rule, protocols and dt_ms."""
    rule = check_rule(rule)
    if backend not in BACKENDS:
        raise UnknownNameError("backend", backend, BACKENDS)
    protocols = check_protocols(protocols)
    check_parameters(rule, parameters)
    dt_ms = check_dt(dt_ms)
    if rule.clock_driven:  # both backends integrate on the dt_ms grid: every event must lie on it
        from neurofwp.plasticity import torch_backend

        check_time_step(rule, dt_ms, parameters)
        torch_backend.event_table(protocols, dt_ms)
    return rule, protocols, dt_ms


def rule_is_from_file(rule: Rule) -> bool:
    """Whether ``rule`` was read from a user's file (not a built-in one)."""
    return bool(rule.source) and RULES.get(rule.name) is not rule


def source_attrs(protocols: object, dataset: str | None, citation: str | None) -> dict[str, str]:
    """The ``dataset`` and ``citation`` attrs of a result: the keywords, else those of a ProtocolTable."""
    if isinstance(protocols, ProtocolTable):
        dataset = protocols.name if dataset is None else dataset
        citation = protocols.citation if citation is None else citation
    for key, value in (("dataset", dataset), ("citation", citation)):
        if value is not None and not isinstance(value, str):
            raise DTypeError(f"{key} must be text, got {type(value).__name__}")
    attrs = {} if dataset is None else {"dataset": dataset}
    if citation:  # a CSV without a comment header has none
        attrs["citation"] = citation
    return attrs


def predict(
    rule: str | os.PathLike[str] | Rule,
    protocols: Sequence[Protocol],
    parameters: Mapping[str, float] | None = None,
    *,
    backend: str = "torch",
    dt_ms: float = 0.1,
    dataset: str | None = None,
    citation: str | None = None,
) -> xr.Dataset:
    """Simulate every protocol with one parameter set; the data's ``dw_percent``/``sem_percent`` beside the model's.

    ``dataset`` and ``citation`` name the data in the result's attrs; by default they are taken
    from ``protocols`` when it is a :class:`~neurofwp.protocols.ProtocolTable` (as
    :func:`neurofwp.data.resolve` returns). The attrs record the rule's name and its full
    definition as rule-file text (``rule_definition``), and ``rule_file`` for a user's file.
    Where some measured protocols have an SEM and others do not,
    :class:`~neurofwp.protocols.MissingSEMError` names the rows without one.
    """
    from neurofwp.data import to_dataset

    rule = check_rule(rule)
    source = source_attrs(protocols, dataset, citation)
    protocols = check_protocols(protocols)
    if parameters is not None and not isinstance(parameters, Mapping):
        raise DTypeError(f"parameters must be a mapping of name to value, got {type(parameters).__name__}")
    trains = is_train_table(protocols)
    weighted = False if trains else check_sem(protocols)  # before simulating: E must have one definition
    resolved = rule.resolve(parameters)
    if trains:
        result = _predict_trains(rule, protocols, resolved, backend, dt_ms)  # type: ignore[arg-type]
    else:
        weights = simulate(rule, protocols, resolved, backend=backend, dt_ms=dt_ms)[:, 0]
        result = to_dataset(list(protocols))
        result["dw_percent_model"] = (
            "protocol",
            100.0 * (weights - 1.0),
            {"units": "percent", "long_name": f"weight change predicted by {rule.name}"},
        )
    attrs: dict[str, object] = {
        "rule": rule.name,
        # the full definition, so that a result names exactly what produced it (a file may change later)
        "rule_definition": rule.to_toml(),
        "backend": backend,
        "neurofwp_version": neurofwp.__version__,
        **({"rule_file": rule.source} if rule_is_from_file(rule) else {}),
        **source,
        "parameter_names": " ".join(resolved),
    }
    if rule.clock_driven:
        attrs["dt_ms"] = dt_ms
    attrs.update({f"param_{name}": value for name, value in resolved.items()})
    if trains:
        attrs.update(result.attrs)
    elif "dw_percent" in result:
        attrs["E"] = error(result)
        attrs["E_definition"] = (
            "mean(((dw_percent - dw_percent_model) / sem_percent)^2)"
            if weighted
            else "mean((dw_percent - dw_percent_model)^2), percent^2 (the data have no SEM)"
        )
    result.attrs = attrs
    return result


def simulate_responses(
    rule: str | os.PathLike[str] | Rule,
    protocols: Sequence[Protocol],
    parameters: Mapping[str, object] | None = None,
    *,
    backend: str = "torch",
    dt_ms: float = 0.1,
    report=None,
) -> np.ndarray:
    """The efficacy (the rule's ``response``) of every presynaptic spike, ``[P, S, M]`` numpy, NaN-padded.

    Each response is read before the spike's own updates (short-term plasticity: ``A·u·R``).
    """
    rule, protocols, dt_ms = _checked_run(rule, protocols, parameters, backend, dt_ms)
    if backend == "torch":
        from neurofwp.plasticity import torch_backend

        return torch_backend.simulate_responses(rule, protocols, parameters, dt_ms=dt_ms).detach().cpu().numpy()
    from neurofwp.plasticity import brian2_backend

    return brian2_backend.simulate_responses(rule, protocols, parameters, dt_ms=dt_ms, report=report)


def _predict_trains(rule: Rule, protocols: Sequence[TrainProtocol], resolved, backend: str, dt_ms: float) -> xr.Dataset:
    """Train responses: data and model over ``(protocol, spike)``, E in attrs (:mod:`neurofwp.observations`)."""
    from neurofwp.observations import model_numpy, observations

    observed = observations(protocols)
    responses = simulate_responses(rule, protocols, resolved, backend=backend, dt_ms=dt_ms)[:, :, 0]
    spikes = responses.shape[1]

    def padded(values_of) -> np.ndarray:
        table = np.full((len(protocols), spikes), np.nan)
        for row, protocol in enumerate(protocols):
            values = values_of(protocol)
            if values is not None:
                table[row, : len(values)] = values
        return table

    model = responses / responses[:, :1] if observed.normalised else responses
    units = observed.units
    scale = "normalised to the first response" if observed.normalised else "absolute"
    result = xr.Dataset(
        {
            "pre_spike_time_ms": (("protocol", "spike"), padded(lambda p: p.pre_times_ms), {"units": "ms"}),
            "amplitude": (
                ("protocol", "spike"),
                padded(lambda p: p.amplitude),
                {"units": units, "long_name": f"measured response ({scale})"},
            ),
            "amplitude_model": (
                ("protocol", "spike"),
                model,
                {"units": units, "long_name": f"response predicted by {rule.name} ({scale})"},
            ),
        },
        coords={"protocol": [p.name for p in protocols], "spike": np.arange(1, spikes + 1)},
    )
    if observed.has_sem:
        result["sem"] = (("protocol", "spike"), padded(lambda p: p.sem), {"units": units, "long_name": "SEM"})
    predicted = model_numpy(rule, protocols, observed, responses[:, :, None])[:, 0]
    error_ = float(np.mean(((observed.data - predicted) / observed.scale) ** 2))
    result.attrs = {
        "E": error_,
        "E_definition": (
            "mean over measured responses of ((amplitude - amplitude_model) / sem)^2"
            if observed.has_sem
            else "mean over measured responses of (amplitude - amplitude_model)^2 (the data have no SEM)"
        )
        + ("; the first response of each train is 1 by normalisation and not counted" if observed.normalised else ""),
        "normalised": int(observed.normalised),
        "observations": len(observed),
    }
    return result


def _has_sem(result: xr.Dataset) -> bool:
    """Whether E is SEM-weighted: every measured protocol has an SEM (True) or none has (False).

    A mix raises :class:`~neurofwp.protocols.MissingSEMError`, as
    :func:`~neurofwp.protocols.check_sem` does for protocols.
    """
    if "sem_percent" not in result:
        return False
    measured = result["dw_percent"].notnull()
    lacking = measured & result["sem_percent"].isnull()
    if not bool(lacking.any()):
        return bool(measured.any())
    if bool(lacking.sum() == measured.sum()):
        return False
    names = ", ".join(repr(str(n)) for n in result["protocol"].values[lacking.values])
    raise MissingSEMError(
        f"sem_percent is missing in {int(lacking.sum())} of {int(measured.sum())} protocols with a dw_percent "
        f"({names}); E divides each residual by its SEM, so give every measured protocol an SEM or none"
    )


def error(result: xr.Dataset) -> float:
    """Pfister & Gerstner's E = mean(((data − model)/sem)²) over the protocols with data; the plain mean
    squared error (percent²) where the data have no SEM. A mix of protocols with and without an SEM
    raises :class:`~neurofwp.protocols.MissingSEMError`."""
    residual = result["dw_percent"] - result["dw_percent_model"]
    if _has_sem(result):
        residual = residual / result["sem_percent"]
    return float((residual**2).mean())

"""Spiking synaptic plasticity: rules defined once, simulated by a torch or a Brian2 backend.

>>> from neurofwp import data, plasticity
>>> result = plasticity.predict("triplet", data.protocols("sjostrom2001"))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

import neurofwp
from neurofwp.errors import UnknownNameError
from neurofwp.plasticity.rules import RULES, Parameter, Rule, Trace, get_rule
from neurofwp.protocols import Protocol

BACKENDS = ("torch", "brian2")

__all__ = ["BACKENDS", "RULES", "Parameter", "Rule", "Trace", "get_rule", "simulate", "predict"]


def simulate(
    rule: str | Rule,
    protocols: Sequence[Protocol],
    parameters: Mapping[str, object] | None = None,
    *,
    backend: str = "torch",
    dt_ms: float = 0.1,
    report=None,
) -> np.ndarray:
    """Final weight (starting from 1) for every protocol × parameter set, as a ``[P, M]`` numpy array."""
    if backend == "torch":
        from neurofwp.plasticity import torch_backend

        return torch_backend.simulate(rule, protocols, parameters, dt_ms=dt_ms).detach().cpu().numpy()
    if backend == "brian2":
        from neurofwp.plasticity import brian2_backend

        return brian2_backend.simulate(rule, protocols, parameters, dt_ms=dt_ms, report=report)
    raise UnknownNameError("backend", backend, BACKENDS)


def predict(
    rule: str | Rule,
    protocols: Sequence[Protocol],
    parameters: Mapping[str, float] | None = None,
    *,
    backend: str = "torch",
    dt_ms: float = 0.1,
) -> xr.Dataset:
    """Simulate every protocol with one parameter set; the data's ``dw_percent``/``sem_percent`` beside the model's."""
    from neurofwp.data import to_dataset

    rule = get_rule(rule)
    resolved = rule.resolve(parameters)
    weights = simulate(rule, protocols, resolved, backend=backend, dt_ms=dt_ms)[:, 0]
    result = to_dataset(list(protocols))
    result["dw_percent_model"] = (
        "protocol",
        100.0 * (weights - 1.0),
        {"units": "percent", "long_name": f"weight change predicted by {rule.name}"},
    )
    attrs = {
        "rule": rule.name,
        "backend": backend,
        "neurofwp_version": neurofwp.__version__,
        "parameter_names": " ".join(resolved),
    }
    if rule.clock_driven:
        attrs["dt_ms"] = dt_ms
    attrs.update({f"param_{name}": value for name, value in resolved.items()})
    if "dw_percent" in result:
        attrs["E"] = error(result)
        attrs["E_definition"] = (
            "mean(((dw_percent - dw_percent_model) / sem_percent)^2)"
            if "sem_percent" in result
            else "mean((dw_percent - dw_percent_model)^2), percent^2 (the data have no SEM)"
        )
    result.attrs = attrs
    return result


def error(result: xr.Dataset) -> float:
    """Pfister & Gerstner's E = mean(((data − model)/sem)²); plain mean squared error without SEM."""
    residual = result["dw_percent"] - result["dw_percent_model"]
    if "sem_percent" in result:
        residual = residual / result["sem_percent"]
    return float((residual**2).mean())

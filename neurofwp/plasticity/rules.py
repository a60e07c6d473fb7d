r"""Spiking plasticity rules, each defined once, as data.

A rule is its parameters (with defaults, bounds and units), its traces (which spikes
drive them, their time constant, whether a spike adds 1 or resets to 1), the weight
change on a presynaptic and on a postsynaptic spike, optionally a continuous drift
:math:`dw/dt`, and its metadata (label, family, parameters fitted by default). The
built-in rules are rule files in ``neurofwp/plasticity/builtin_rules/``, read by the same
reader as a user's file (:func:`~neurofwp.plasticity.definition.load_rule`), so a rule
written in a file is as good as a built-in one. Both backends read these definitions:
the Brian2 backend writes them into ``Synapses`` equations with units, the torch backend
evaluates the same expression strings on tensors. Nothing of a rule's math is written
twice.

This is the spiking side of the fast-weight correspondence: the presynaptic trace is the
key, the postsynaptic signal the value, and each rule is an outer-product write
:math:`\Delta w = (\text{post factor}) \times (\text{pre factor})`.
"""

from __future__ import annotations

import os
from importlib import resources

from neurofwp.errors import UnknownNameError

# Re-exported (``X as X``): modules and users import these names from here.
from neurofwp.plasticity.definition import FAMILIES as FAMILIES
from neurofwp.plasticity.definition import Parameter as Parameter
from neurofwp.plasticity.definition import Rule as Rule
from neurofwp.plasticity.definition import RuleError as RuleError
from neurofwp.plasticity.definition import RuleFileError as RuleFileError
from neurofwp.plasticity.definition import Trace as Trace
from neurofwp.plasticity.definition import check_parameter_value as check_parameter_value
from neurofwp.plasticity.definition import check_time_step as check_time_step
from neurofwp.plasticity.definition import load_rule as load_rule
from neurofwp.plasticity.definition import rule_from_toml as rule_from_toml

# The order in which the first built-ins are listed (help texts); any other file in
# builtin_rules/ follows in name order, so adding a built-in rule is adding a file.
_BUILTIN_ORDER = ("stdp", "stdp-nearest", "triplet", "triplet-nearest", "delta", "stdp-modulated")


def _builtin_rules() -> dict[str, Rule]:
    folder = resources.files("neurofwp.plasticity").joinpath("builtin_rules")
    names = sorted(entry.name[: -len(".toml")] for entry in folder.iterdir() if entry.name.endswith(".toml"))
    names = [n for n in _BUILTIN_ORDER if n in names] + [n for n in names if n not in _BUILTIN_ORDER]
    rules = {}
    for name in names:
        text = folder.joinpath(f"{name}.toml").read_text(encoding="utf-8")
        rule = rule_from_toml(text, f"neurofwp/plasticity/builtin_rules/{name}.toml")
        if rule.name != name:
            raise RuleFileError(rule.source, "name", f"{rule.name!r} differs from the file name {name!r}")
        rules[name] = rule
    return rules


RULES: dict[str, Rule] = _builtin_rules()


class UnknownRuleError(UnknownNameError):
    """A rule given by a name that is neither built in nor the path of a rule file."""

    def __init__(self, name: object):
        super().__init__("rule", name, list(RULES))
        self.args = (f"{self.args[0]}; or give the path of a rule file (.toml)",)

    def __reduce__(self):  # an error raised in a worker process reaches the parent intact
        return type(self), (self.name,)


def resolve_rule(rule: str | os.PathLike[str] | Rule) -> Rule:
    """The :class:`Rule` that ``rule`` names: a Rule as it is, a built-in name (a key of :data:`RULES`:
    ``stdp``, ``stdp-nearest``, ``triplet``, ``triplet-nearest``, ``delta``, ``stdp-modulated``, ...), or
    the path of a rule file (TOML).

    A built-in name wins over a file of the same name in the working directory; a text ending in
    ``.toml`` or containing a path separator is always a path. A bad file raises
    :class:`RuleFileError`, anything else :class:`UnknownNameError`.
    """
    if isinstance(rule, Rule):
        return rule
    if isinstance(rule, os.PathLike):
        return load_rule(rule)
    if not isinstance(rule, str):
        raise UnknownRuleError(rule)
    if rule in RULES:
        return RULES[rule]
    if rule.endswith(".toml") or "/" in rule or os.sep in rule or os.path.isfile(rule):
        return load_rule(rule)
    raise UnknownRuleError(rule)


def get_rule(name: str | os.PathLike[str] | Rule) -> Rule:
    """The rule called ``name`` (a built-in name or a rule file's path; see :func:`resolve_rule`)."""
    return resolve_rule(name)

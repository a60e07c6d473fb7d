"""The paper's own results: best evaluation loss per run, read from its published training logs."""

from __future__ import annotations

from importlib import resources

import pandas as pd

from neurofwp.errors import OutOfRangeError

__all__ = ["paper_reference", "citation"]

_FILE = "schlag2021_retrieval.csv"
# The paper's names → neurofwp model names ("ours" is the delta rule with learned β).
_UPDATES = {"sum": "sum", "ours": "delta"}


def _path():
    return resources.files("neurofwp.data").joinpath(_FILE)


def citation() -> str:
    """The comment header of the bundled file (source repository, commit, definitions)."""
    lines = _path().read_text(encoding="utf-8").splitlines()
    return "\n".join(line[2:] for line in lines if line.startswith("# "))


def paper_reference(setting: int) -> pd.DataFrame:
    """Rows ``model, S, best_eval_loss, last_step`` for one setting, in neurofwp model names.

    The FWM runs (a rule neurofwp does not implement) are left out.
    """
    if setting not in (1, 2):
        raise OutOfRangeError(f"setting must be 1 or 2, got {setting!r}")
    with resources.as_file(_path()) as path:
        table = pd.read_csv(path, comment="#")
    table = table[table["setting"] == setting]
    names: list[str | None] = []
    for feature_map, update in zip(table["feature_map"], table["update_rule"], strict=True):
        if feature_map == "softmax":
            names.append("softmax")
        elif update in _UPDATES:
            names.append(f"{feature_map}-{_UPDATES[update]}")
        else:
            names.append(None)
    table = table.assign(model=names).dropna(subset=["model"])
    return table[["model", "S", "best_eval_loss", "last_step"]].reset_index(drop=True)

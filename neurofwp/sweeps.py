"""Sweeps: many independent cells, each stored as it finishes, gathered into one Dataset.

A *cell* is one combination of coordinates (``{"rule": "dpfp2-sum", "S": 100}``); a
*task* is a module-level function ``task(coords, **options) -> dict`` whose values are
numbers or 1-d lists of numbers. :func:`run` evaluates a task on every cell

- in this process (``workers=1``, the default),
- on local worker processes (``workers=N``), or
- on a dask.distributed cluster (``scheduler="tcp://HOST:PORT"``, or ``"local:N"`` to
  start a loopback ``LocalCluster`` with N single-threaded worker processes),

and :func:`gather` turns the results into an ``xarray.Dataset`` with one dim per
coordinate. With a :class:`CellStore` every finished cell is written at once
(atomically, one JSON file per cell), so a rerun after an interruption, even SIGKILL,
skips what is done and ends with the same Dataset as an uninterrupted run.

Each task runs with ``torch.set_num_threads(threads_per_task)`` (default 1), whatever
executes it, so results do not depend on where a cell ran.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import json
import multiprocessing
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from neurofwp.errors import NeurofwpError
from neurofwp.io import OutputPathError, leftover_temporaries, save_json

Coords = Mapping[str, Any]

#: Seconds to wait for a dask scheduler given by address before giving up.
CONNECT_TIMEOUT_S = 20
Result = dict[str, Any]

__all__ = ["CellStore", "SweepError", "cell_key", "gather", "run", "parse_scheduler"]


class SweepError(NeurofwpError, ValueError):
    """A sweep cannot go on: a store made with another configuration, a bad scheduler, a bad cell file."""


def cell_key(coords: Coords) -> str:
    """A file-name-safe, stable name of a cell: ``rule=dpfp2-sum,S=100`` style, sanitised."""
    text = ",".join(f"{name}={coords[name]}" for name in coords)
    return re.sub(r"[^A-Za-z0-9=,.+_-]", "_", text)


def _fingerprint(config: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


class CellStore:
    """A folder holding one JSON file per finished cell, plus ``sweep.json`` (the configuration).

    Reusing a folder made with a different configuration is refused: its cells would not
    belong to this sweep.
    """

    def __init__(self, folder: str | os.PathLike, config: Mapping[str, Any]):
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise OutputPathError(f"sweep store {self.folder} exists and is not a folder")
        parent = self.folder.parent
        if not self.folder.exists() and not parent.is_dir():
            raise OutputPathError(f"output folder {parent} does not exist")
        self.folder.mkdir(exist_ok=True)
        if not os.access(self.folder, os.W_OK):
            raise OutputPathError(f"sweep store {self.folder} is not writable")
        # Found once here, not per save: a folder of many cells is not rescanned for every cell.
        self._leftovers = leftover_temporaries(self.folder)
        self.config = json.loads(json.dumps(dict(config), default=str))
        self.fingerprint = _fingerprint(self.config)
        marker = self.folder / "sweep.json"
        if marker.exists():
            stored = self._read(marker)
            if stored.get("fingerprint") != self.fingerprint:
                old = stored.get("config", {})
                changed = sorted(k for k in set(old) | set(self.config) if old.get(k) != self.config.get(k))
                raise SweepError(
                    f"{self.folder} holds a sweep with another configuration (differs in: {', '.join(changed)}); "
                    "use a new output folder or the same settings"
                )
        else:
            save_json({"config": self.config, "fingerprint": self.fingerprint}, marker)

    @staticmethod
    def _read(path: Path) -> dict:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise SweepError(f"{path} is not a valid sweep file ({error}); delete it to recompute that cell") from None

    def path(self, coords: Coords) -> Path:
        return self.folder / f"{cell_key(coords)}.json"

    def load(self, coords: Coords) -> Result | None:
        path = self.path(coords)
        return self._read(path)["result"] if path.exists() else None

    def save(self, coords: Coords, result: Result) -> None:
        path = self.path(coords)
        # A run killed while writing this cell left its temporary file; the cell is written again now.
        for leftover in self._leftovers.pop(path.name, ()):
            leftover.unlink(missing_ok=True)
        save_json({"coords": dict(coords), "fingerprint": self.fingerprint, "result": result}, path)


def parse_scheduler(text: str | None) -> tuple[str, int | str] | None:
    """``None`` → run locally; ``"local:N"`` → ``("local", N)``; ``"tcp://host:port"`` → ``("address", text)``."""
    if text is None:
        return None
    if text.startswith("local:"):
        count = text.partition(":")[2]
        if not count.isdigit() or int(count) < 1:
            raise SweepError(f"scheduler {text!r}: expected local:N with N >= 1 worker processes")
        return ("local", int(count))
    if re.fullmatch(r"(tcp|tls|inproc|ucx)://\S+", text):
        return ("address", text)
    raise SweepError(f"scheduler {text!r}: expected tcp://HOST:PORT or local:N")


PARENT_CHECK_S = 1.0


def _exit_with_parent(parent_pid: int) -> None:
    """Worker-pool initializer: end this worker once the process that started it is gone.

    A pool worker whose parent is killed outright (SIGKILL, out of memory) would otherwise
    wait for work forever; the orphan is re-parented, so ``getppid`` changes.
    """

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_CHECK_S)
        os._exit(1)

    threading.Thread(target=watch, name="neurofwp-parent-watch", daemon=True).start()


def _execute(task: Callable[..., Result], coords: Coords, options: Mapping[str, Any], threads: int) -> Result:
    """Run one cell with a fixed thread count; JSON round trip so every executor returns the same types."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        result = task(dict(coords), **options)
    finally:
        torch.set_num_threads(previous)
    return json.loads(json.dumps(result))


def run(
    task: Callable[..., Result],
    cells: Sequence[Coords],
    *,
    store: CellStore | None = None,
    workers: int = 1,
    scheduler: str | None = None,
    threads_per_task: int = 1,
    progress: bool = True,
    desc: str = "sweep",
    **options: Any,
) -> list[Result]:
    """Evaluate ``task(coords, **options)`` on every cell; return the results in cell order.

    Cells already in ``store`` are not recomputed; new results are saved the moment
    they arrive. ``scheduler`` (see :func:`parse_scheduler`) overrides ``workers``.
    """
    if workers < 1:
        raise SweepError(f"workers must be >= 1, got {workers}")
    if threads_per_task < 1:
        raise SweepError(f"threads_per_task must be >= 1, got {threads_per_task}")
    target = parse_scheduler(scheduler)
    results: list[Result | None] = [store.load(c) if store is not None else None for c in cells]
    pending = [i for i, r in enumerate(results) if r is None]
    bar = tqdm(total=len(cells), initial=len(cells) - len(pending), desc=desc, unit="cell", disable=not progress)

    def finish(index: int, result: Result) -> None:
        results[index] = result
        if store is not None:
            store.save(cells[index], result)
        bar.set_postfix_str(cell_key(cells[index]), refresh=False)
        bar.update()

    try:
        if pending and target is not None:
            _run_dask(task, cells, pending, options, threads_per_task, target, finish)
        elif workers == 1 or len(pending) <= 1:
            for i in pending:
                finish(i, _execute(task, cells[i], options, threads_per_task))
        else:
            context = multiprocessing.get_context("spawn")  # fork would inherit torch's thread pools
            with concurrent.futures.ProcessPoolExecutor(
                min(workers, len(pending)), mp_context=context, initializer=_exit_with_parent, initargs=(os.getpid(),)
            ) as pool:
                futures = {pool.submit(_execute, task, cells[i], options, threads_per_task): i for i in pending}
                try:
                    for future in concurrent.futures.as_completed(futures):
                        finish(futures[future], future.result())
                except BaseException:
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
    finally:
        bar.close()
    return results  # type: ignore[return-value]


@contextlib.contextmanager
def _local_worker_environment() -> Iterator[None]:
    """Start local dask workers without ``MALLOC_TRIM_THRESHOLD_``; leave this process's environment as it was.

    dask sets it (65536) so that workers hand freed memory back to the system; for torch
    work that makes every large tensor allocation fault its pages in again (and, being set
    at all, switches off glibc's adaptive mmap threshold): a delta-rule forward+backward
    ran 1.4–2.2x slower under it. dask's nanny also writes its worker variables into the
    environment of the process that starts the cluster, hence the restore. Workers of a
    remote cluster are started by whoever runs them (see docs/sweeps.md).
    """
    import dask

    saved = os.environ.copy()
    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {})
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)  # spawned workers inherit this process's environment
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
            yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _run_dask(task, cells, pending, options, threads, target, finish) -> None:
    from distributed import Client, LocalCluster, as_completed

    kind, value = target
    if kind == "local":
        with _local_worker_environment():
            # ":0": the scheduler's HTTP server takes a free port (None would still try 8787 first).
            cluster = LocalCluster(
                n_workers=int(value), threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0"
            )
        client = Client(cluster)
    else:
        cluster = None
        try:
            client = Client(value, timeout=f"{CONNECT_TIMEOUT_S}s")
        except OSError as error:
            raise SweepError(f"cannot reach the dask scheduler at {value}: {error}") from None
    try:
        futures = [client.submit(_execute, task, cells[i], options, threads, pure=False) for i in pending]
        index = {future.key: i for future, i in zip(futures, pending, strict=True)}
        for future in as_completed(futures):
            finish(index[future.key], future.result())
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def gather(
    cells: Sequence[Coords],
    results: Sequence[Result],
    *,
    series_dims: Mapping[str, str] | None = None,
    variable_attrs: Mapping[str, Mapping[str, Any]] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """One Dataset: a dim per coordinate (values in order of first appearance), a variable per result key.

    Scalars fill ``(dim1, dim2, ...)``; a 1-d list fills an extra trailing dim named by
    ``series_dims[key]``, padded with NaN to the longest list. Cells not in ``cells`` stay NaN.
    """
    if len(cells) != len(results):
        raise SweepError(f"{len(cells)} cells but {len(results)} results")
    if not cells:
        raise SweepError("a sweep needs at least one cell")
    series_dims = dict(series_dims or {})
    names = list(cells[0])
    axes = {n: list(dict.fromkeys(c[n] for c in cells)) for n in names}
    shape = tuple(len(axes[n]) for n in names)
    keys = list(dict.fromkeys(k for r in results for k in r))
    lengths = {k: max(len(r[k]) for r in results if k in r) for k in keys if k in series_dims}
    arrays = {k: np.full(shape + ((lengths[k],) if k in lengths else ()), np.nan) for k in keys}
    for coords, result in zip(cells, results, strict=True):
        position = tuple(axes[n].index(coords[n]) for n in names)
        for key, value in result.items():
            if key in lengths:
                arrays[key][position + (slice(0, len(value)),)] = value
            else:
                arrays[key][position] = value
    variable_attrs = variable_attrs or {}
    data = {
        k: (names + ([series_dims[k]] if k in lengths else []), arrays[k], dict(variable_attrs.get(k, {})))
        for k in keys
    }
    return xr.Dataset(data, coords={n: axes[n] for n in names}, attrs=dict(attrs or {}))

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
import logging
import multiprocessing
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from neurofwp.errors import NeurofwpError
from neurofwp.io import OutputPathError, differing_keys, leftover_temporaries, save_json

Coords = Mapping[str, Any]

#: Seconds to wait for a dask scheduler given by address before giving up.
CONNECT_TIMEOUT_S = 20
Result = dict[str, Any]

__all__ = ["CellStore", "SweepError", "SweepInterrupted", "cell_key", "gather", "run", "parse_scheduler"]

#: Seconds a terminated worker process gets to exit before it is killed.
WORKER_EXIT_S = 2.0


class SweepError(NeurofwpError, ValueError):
    """A sweep cannot go on: a store made with another configuration, a bad scheduler, a bad cell file."""


class SweepInterrupted(KeyboardInterrupt):
    """A sweep stopped by an interrupt (Ctrl-C, SIGINT) after its workers were stopped.

    ``str(error)`` is one line for the user: how many cells are kept and whether a rerun continues.
    """

    def __init__(self, finished: int, total: int, store: CellStore | None):
        self.finished, self.total, self.store = finished, total, store
        if store is not None:
            message = (
                f"interrupted: {finished} of {total} cells saved in {store.folder}; rerun the same command to continue"
            )
        else:
            message = f"interrupted after {finished} of {total} cells; this run keeps no cells, a rerun starts over"
        super().__init__(message)


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
                changed = differing_keys(old, self.config)
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
    wait for work forever; the orphan is re-parented, so ``getppid`` changes. Workers
    ignore SIGINT: Ctrl-C reaches the whole process group, and the parent, not each
    worker, decides what an interrupt stops (see :func:`_stop_pool`).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_CHECK_S)
        os._exit(1)

    threading.Thread(target=watch, name="neurofwp-parent-watch", daemon=True).start()


def _execute(task: Callable[..., Result], coords: Coords, options: Mapping[str, Any], threads: int) -> Result:
    """Run one cell with a fixed thread count; JSON round trip so every executor returns the same types."""
    import torch

    if multiprocessing.parent_process() is not None:
        # In a worker process, progress bars lock with a thread lock: tqdm's default, a
        # multiprocessing semaphore, is reported as leaked when an interrupt ends the worker.
        import tqdm.std

        tqdm.std.tqdm.set_lock(threading.RLock())
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
            _run_pool(task, cells, pending, options, threads_per_task, min(workers, len(pending)), finish)
    except KeyboardInterrupt:
        finished = sum(r is not None for r in results)
        raise SweepInterrupted(finished, len(cells), store) from None
    finally:
        bar.close()
    return results  # type: ignore[return-value]


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT while worker processes start, so that they inherit the ignored disposition.

    A spawned interpreter that starts with SIGINT ignored keeps it ignored, so a Ctrl-C
    during its (seconds-long) imports does not kill it with a traceback. Only the main
    thread may change signal handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _run_pool(task, cells, pending, options, threads, workers, finish) -> None:
    context = multiprocessing.get_context("spawn")  # fork would inherit torch's thread pools
    pool = concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=context, initializer=_exit_with_parent, initargs=(os.getpid(),)
    )
    try:
        with _sigint_ignored():  # the executor starts its worker processes on submit
            futures = {pool.submit(_execute, task, cells[i], options, threads): i for i in pending}
        for future in concurrent.futures.as_completed(futures):
            finish(futures[future], future.result())
    except BaseException:
        _stop_pool(pool)
        raise
    pool.shutdown(wait=True)


def _stop_pool(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    """Cancel the queued cells and end the workers now, running cells included.

    ``shutdown(cancel_futures=True)`` alone lets the running cells and those already
    handed to the workers' queue finish first (minutes for a sweep of fits), so the
    worker processes are terminated; the executor has no public handle on them.
    """
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + WORKER_EXIT_S
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
    # With its workers gone the executor's manager thread ends at once; waiting for it frees its queues.
    pool.shutdown(wait=True, cancel_futures=True)


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
        with _local_worker_environment(), _sigint_ignored():  # Ctrl-C is the parent's to handle
            # ":0": the scheduler's HTTP server takes a free port (None would still try 8787 first).
            # Warnings of workers that an interrupt stops mid-cell are dask's noise, not the user's problem.
            cluster = LocalCluster(
                n_workers=int(value),
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=":0",
                silence_logs=logging.ERROR,
            )
        client = Client(cluster)
    else:
        cluster = None
        try:
            client = Client(value, timeout=f"{CONNECT_TIMEOUT_S}s")
        except OSError as error:
            raise SweepError(f"cannot reach the dask scheduler at {value}: {error}") from None
    futures = []
    try:
        futures = [client.submit(_execute, task, cells[i], options, threads, pure=False) for i in pending]
        index = {future.key: i for future, i in zip(futures, pending, strict=True)}
        for future in as_completed(futures):
            finish(index[future.key], future.result())
    except BaseException:
        # A cluster given by address outlives this process: its workers must not go on with our cells.
        client.cancel(futures, force=True)
        raise
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

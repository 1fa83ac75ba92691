"""Workers that share a list of cells through claims on a shared directory.

A *cell* is one unit of work with a place in a fixed list (a study's arm ×
seed). Any number of workers, started anywhere that sees the cells' shared
directory, run :func:`work`: each claims the first open cell nobody holds
(:mod:`lcr_larq.experiments.claims`), works on it in its own process, appends
what became of it to the cell's log (one JSON line per event: ``trained``,
``failed``, ``lost claim``, ``took over``), and claims the next; when only
cells that other workers hold are left, it waits, so that it can take over
the cell of a worker that dies, and ends when every cell is done.

Around that loop: :func:`device_environments` gives each local worker one GPU
(``CUDA_VISIBLE_DEVICES``), :func:`start_local` runs such workers as
processes that end with the one that started them, and :class:`ClaimWatch`
stops a Keras training whose claim was taken over.

Example:
    >>> device_environments(2, 4, "1,3,5,7")
    [{'CUDA_VISIBLE_DEVICES': '1'}, {'CUDA_VISIBLE_DEVICES': '3'}]
    >>> duration(42.0), duration(600.0)
    ('42 s', '10 min')
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

import tensorflow as tf

from lcr_larq.errors import RunError
from lcr_larq.experiments import claims
from lcr_larq.training import runs

__all__ = [
    "INDEX_VARIABLES",
    "POLL",
    "Cell",
    "cell_log",
    "children_end_with_this_process",
    "ClaimLost",
    "ClaimWatch",
    "device_environments",
    "duration",
    "holders",
    "last_record",
    "name",
    "record",
    "start_local",
    "terminate_as_interrupt",
    "work",
]

#: Environment variables that give an array job's task its cell index:
#: Slurm's array jobs and Kubernetes' indexed Jobs.
INDEX_VARIABLES = ("SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX")
#: Seconds between a waiting worker's looks at the cells others hold.
POLL = 2.0


class Cell(Protocol):
    """What a worker needs of a cell: its index, a label for progress lines
    (``lcr_lambda=4 seed 1``), the folder of its claims and its log."""

    index: int

    @property
    def label(self) -> str: ...

    @property
    def claims(self) -> str: ...

    @property
    def log_path(self) -> str: ...


def name(cell: Cell) -> str:
    """``cell 4 (lcr_lambda=4 seed 1)``."""
    return f"cell {cell.index} ({cell.label})"


# --------------------------------------------------------------------------- the loop
def work(
    cells: Sequence[Cell],
    state: Callable[[Cell, float], str],
    train: Callable[[Cell, claims.Claim, claims.Holder], tuple[str, bool]],
    me: claims.Holder,
    progress: Callable[[str], None] | None = None,
    only: Cell | None = None,
    prefix: str = "",
) -> int:
    """One worker over ``cells`` (only cell ``only`` when given).

    ``state(cell, since)`` says whether a cell is ``finished``, ``failed``
    (since the time ``since`` this worker started: not retried) or
    ``open``; ``train(cell, claim, me)`` works on a claimed cell and returns
    its progress text and whether it failed. Returns the number of cells
    that failed here. Commands the worker starts end with it
    (:func:`~lcr_larq.experiments.claims.end_with_parent`).
    """
    mine = list(cells) if only is None else [only]
    say = progress or (lambda line: None)
    began = time.time()
    failures, seconds, waiting = 0, [], None
    with children_end_with_this_process(), terminate_as_interrupt():
        while True:
            left = [cell for cell in mine if state(cell, began) == "open"]
            if not left:
                if prefix:
                    finished = sum(state(c, began) == "finished" for c in cells)
                    say(f"{prefix}done: {len(seconds)} cell(s) trained here, {failures} failed; "
                        f"{finished} of {len(cells)} cells finished")
                return failures
            held, trained = [], None
            for cell in left:
                claim = claims.acquire(cell.claims, me)
                if claim is None:
                    held.append(cell)
                    continue
                with claim:
                    if claim.took_over is not None:
                        why = ("not running" if claim.took_over.same_machine(me)
                               else "no heartbeat")
                        record(cell, "took over", me, previous=claim.took_over.worker)
                        say(f"{prefix}{name(cell)}: taking over from {claim.took_over.worker} "
                            f"({why})")
                    if state(cell, began) != "open":  # finished meanwhile
                        continue
                    started = time.time()
                    line, failed = train(cell, claim, me)
                    trained = cell
                    seconds.append(time.time() - started)
                break  # look again from the first cell
            if trained is None:
                if waiting != len(held):
                    waiting = len(held)
                    say(f"{prefix}waiting for {len(held)} cell(s) other workers hold: "
                        + ", ".join(str(cell.index) for cell in held))
                time.sleep(POLL)
                continue
            waiting = None
            failures += failed
            done = sum(state(cell, began) != "open" for cell in cells)
            others = {h.worker for h in holders(cells) if h.token != me.token}
            eta = sum(seconds) / len(seconds) * (len(cells) - done) / (1 + len(others))
            say(f"{prefix}[{done}/{len(cells)}] {trained.label}: {line}; ETA {duration(eta)}")


def duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def holders(cells: Sequence[Cell]) -> list[claims.Holder]:
    """The holders of the current claims on ``cells``."""
    return [h for h, _, _ in (claims.current(cell.claims) for cell in cells) if h is not None]


# --------------------------------------------------------------------------- a cell's log
def record(cell: Cell, event: str, me: claims.Holder, **fields) -> None:
    """Appends one line to the cell's log: the event, when, by whom, ``fields``."""
    entry = {"event": event, "time": time.time(), "worker": me.worker, "host": me.host,
             "pid": me.pid, **fields}
    with open(cell.log_path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(runs.finite_json(entry)) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def cell_log(cell: Cell) -> list[dict]:
    """The entries of a cell's log, oldest first (``[]`` before any)."""
    try:
        with open(cell.log_path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return []
    entries = []
    for line in lines:
        try:
            entries.append(json.loads(line))
        except ValueError:  # a line cut by a crash
            continue
    return entries


def last_record(cell: Cell, events: tuple[str, ...]) -> dict | None:
    """The cell's latest log entry of one of ``events``."""
    return next((e for e in reversed(cell_log(cell)) if e.get("event") in events), None)


# --------------------------------------------------------------------------- training a cell
class ClaimLost(RunError):
    """The claim of the cell being trained was taken over: another worker
    judged this one dead."""


class ClaimWatch(tf.keras.callbacks.Callback):
    """Stops training (:class:`ClaimLost`) at the step after the cell's claim
    was lost; the checkpoint of the last finished epoch stays for the worker
    that holds the claim now."""

    def __init__(self, claim: claims.Claim):
        super().__init__()
        self.claim = claim

    def _check(self) -> None:
        if self.claim.lost.is_set():
            raise ClaimLost(f"{self.claim.path} was taken over by another worker")

    def on_train_batch_end(self, batch, logs=None):
        self._check()

    def on_epoch_end(self, epoch, logs=None):
        self._check()


# --------------------------------------------------------------------------- local workers
@contextlib.contextmanager
def children_end_with_this_process() -> Iterator[None]:
    """Meanwhile, the commands this process starts end when it ends
    (:data:`~lcr_larq.experiments.claims.PARENT_ENV`)."""
    before = os.environ.get(claims.PARENT_ENV)
    os.environ[claims.PARENT_ENV] = str(os.getpid())
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(claims.PARENT_ENV, None)
        else:
            os.environ[claims.PARENT_ENV] = before


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Meanwhile, SIGTERM (a scheduler's preemption, ``scancel``, a pod's
    deletion) stops this process as Ctrl-C does: the cell's claim is
    released and its last finished epoch kept, so that the next worker takes
    it over at once instead of after the lease. Only in the main thread,
    where Python delivers signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    before = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def device_environments(workers: int, gpus: int, visible: str | None) -> list[dict[str, str]]:
    """The environment of each of ``workers`` workers on a machine with
    ``gpus`` GPUs: one GPU each (``CUDA_VISIBLE_DEVICES``: an entry of this
    process's own list when it has one, a scheduler's allocation), at most
    one worker per GPU; without a GPU, ``workers`` workers with no device."""
    if gpus == 0:
        return [{} for _ in range(workers)]
    ids = [v.strip() for v in (visible or "").split(",") if v.strip()][:gpus]
    ids = ids or [str(i) for i in range(gpus)]
    return [{"CUDA_VISIBLE_DEVICES": device} for device in ids[:workers]]


def start_local(argv: list[str], environments: list[dict[str, str]],
                progress: Callable[[str], None] | None = None) -> bool:
    """Runs ``argv`` once per environment of ``environments`` (each a worker
    claiming cells itself: without an array task's index), waits for them,
    and says which ended badly; whether all ended well. They end when this
    process does (Ctrl-C, or killed)."""
    base = {k: v for k, v in os.environ.items() if k not in INDEX_VARIABLES}
    base[claims.PARENT_ENV] = str(os.getpid())
    processes = [subprocess.Popen(argv, env={**base, **env}) for env in environments]
    try:
        codes = [process.wait() for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                process.wait()
    for env, code in zip(environments, codes):
        if code and progress:
            device = env.get("CUDA_VISIBLE_DEVICES")
            progress(f"a worker{f' on GPU {device}' if device else ''} ended with exit code "
                     f"{code}")
    return not any(codes)

"""Training under ``tf.distribute``: the strategy of ``--strategy``, and how
the workers of one ``--strategy multiworker`` run share its directory.

Under ``MultiWorkerMirroredStrategy`` every worker runs the same command
with its own ``TF_CONFIG`` task, in any order. One of them, the chief
(``TF_CONFIG``'s ``chief`` task, else worker 0), owns the run directory: it
makes it, locks it, decides whether the run trains, resumes or has already
finished, and writes every file. The others never write there nor remove
anything; they

1. wait for the chief's address to answer (:func:`wait_for_chief`, bounded
   by ``--chief-timeout``: a chief that never comes is a one-line error naming
   its address) — TensorFlow's own wait for the cluster has no bound;
2. join the cluster (``MultiWorkerMirroredStrategy``, whose start is a
   barrier of all workers);
3. learn the chief's decision, the epoch to resume from, in one collective
   (:func:`chief_says`), sent once the directory is ready;
4. wait (bounded) until the shared directory shows that epoch's checkpoint,
   then train with their checkpoints and models in a scratch folder of their
   own (:func:`scratch_dir`).

Example:
    >>> check_tf_config('{"cluster": {"worker": ["localhost:1"]}, "task": {"type": '
    ...                 '"worker", "index": 0}}')["task"]["index"]
    0
    >>> task_of("default")
    Task(chief=True, name='chief', chief_address=None)
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import tensorflow as tf

from lcr_larq.errors import ConfigError, RunError

__all__ = [
    "FINISHED",
    "STOPPED",
    "STRATEGIES",
    "ChiefDecision",
    "Task",
    "check_tf_config",
    "chief_says",
    "get_strategy",
    "lost_worker",
    "scratch_dir",
    "task_of",
    "wait_for_chief",
    "wait_until",
]

#: ``--strategy``: one device, MirroredStrategy, or MultiWorkerMirroredStrategy.
STRATEGIES = ("default", "mirrored", "multiworker")
#: What the chief of a multi-worker run tells the others instead of an epoch
#: to resume from: the run has finished already, or the chief stopped.
FINISHED, STOPPED = -1, -2
#: Seconds between two looks at the chief's address or the shared directory.
POLL = 0.5


def get_strategy(name: str) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy of ``--strategy``; ``multiworker`` reads
    the cluster from ``TF_CONFIG``, checked first."""
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        check_tf_config(os.environ.get("TF_CONFIG"))
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def check_tf_config(text: str | None) -> dict:
    """``TF_CONFIG`` parsed; a :class:`~lcr_larq.errors.ConfigError` saying
    what is wrong with it otherwise.

    Example:
        >>> check_tf_config('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", '
        ...                 '"index": 1}}')
        Traceback (most recent call last):
        ...
        lcr_larq.errors.ConfigError: TF_CONFIG's task is worker 1, but its cluster lists 1 \
worker (index 0 to 0)
    """
    example = ('{"cluster": {"worker": ["host1:port", "host2:port"]}, '
               '"task": {"type": "worker", "index": 0}}')
    if not text:
        raise ConfigError(f"--strategy multiworker needs TF_CONFIG, e.g. {example}")
    try:
        spec = json.loads(text)
    except ValueError as error:
        raise ConfigError(
            f"TF_CONFIG is not valid JSON ({error.msg}, char {error.pos}): set it like {example}"
        ) from None
    task = spec.get("task") if isinstance(spec, dict) else None
    if not isinstance(task, dict) or not isinstance(spec.get("cluster"), dict) or not (
        task.get("type") in spec["cluster"] and isinstance(task.get("index"), int)
    ):
        raise ConfigError(f"TF_CONFIG needs a cluster and this process's task, like {example}")
    for job, addresses in spec["cluster"].items():
        if not (isinstance(addresses, list) and addresses
                and all(isinstance(a, str) and _port(a) for a in addresses)):
            raise ConfigError(
                f"TF_CONFIG's cluster lists {job} as {json.dumps(addresses)}: give a list of "
                f"host:port addresses, like {example}"
            )
    count = len(spec["cluster"][task["type"]])
    if not 0 <= task["index"] < count:
        raise ConfigError(
            f"TF_CONFIG's task is {task['type']} {task['index']}, but its cluster lists "
            f"{count} {task['type']} (index 0 to {count - 1})"
        )
    return spec


def _port(address: str) -> int | None:
    host, _, port = address.rpartition(":")
    return int(port) if host and port.isdigit() and 0 < int(port) < 65536 else None


@dataclass(frozen=True)
class Task:
    """This process's place in a run: whether it is the chief (it owns the
    run directory and writes every file), its name for its scratch files,
    and, in a multi-worker run, the chief's ``host:port``."""

    chief: bool = True
    name: str = "chief"
    chief_address: str | None = None


def task_of(strategy: str) -> Task:
    """The :class:`Task` of this process under ``--strategy``, read from
    ``TF_CONFIG`` (checked) before anything is started: the chief is the
    ``chief`` task, else worker 0, as ``MultiWorkerMirroredStrategy`` has it."""
    if strategy != "multiworker":
        return Task()
    spec = check_tf_config(os.environ.get("TF_CONFIG"))
    cluster, task = spec["cluster"], spec["task"]
    leader = "chief" if "chief" in cluster else "worker"
    chief = task["type"] == leader and task["index"] == 0
    return Task(chief, f"{task['type']}-{task['index']}", cluster[leader][0])


def wait_for_chief(address: str, timeout: float, who: str, fix: str) -> None:
    """Returns once ``address`` (``host:port``) takes a TCP connection;
    after ``timeout`` seconds a :class:`~lcr_larq.errors.RunError` naming
    ``who`` is at that address and the ``fix``. Says once on stderr that it
    waits (a host that does not resolve yet counts as not answering)."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    deadline = time.monotonic() + timeout
    told = False
    while True:
        left = deadline - time.monotonic()
        try:
            with socket.create_connection((host, int(port)), timeout=max(min(left, 2.0), 0.1)):
                return
        except OSError:
            pass
        if time.monotonic() >= deadline:
            raise RunError(f"{who} at {address} did not answer within {timeout:g} s: {fix}")
        if not told:
            print(f"waiting up to {timeout:g} s for {who} at {address}", file=sys.stderr,
                  flush=True)
            told = True
        time.sleep(POLL)


def wait_until(ready: Callable[[], bool], timeout: float) -> bool:
    """Whether ``ready()`` came true within ``timeout`` seconds (polled: a
    shared filesystem may show another host's files late)."""
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL)
    return True


def chief_says(strategy: tf.distribute.Strategy, value: int) -> int:
    """The chief's ``value`` on every worker of ``strategy``: one all-reduce,
    a sum to which only replica 0 (the chief's first device) adds its value.
    Every worker must call it, once for each time the chief does."""
    def replica_value():
        first = tf.equal(tf.distribute.get_replica_context().replica_id_in_sync_group, 0)
        return tf.cast(first, tf.float32) * float(value)

    total = strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(replica_value), axis=None)
    return round(float(total))


class ChiefDecision:
    """The chief's side of :func:`chief_says`, told exactly once: the epoch
    to resume from (``tell``, once the run directory is ready), else on
    leaving the ``with`` block ``FINISHED`` (a normal exit: the run had
    finished) or ``STOPPED`` (an error), so that the other workers never
    wait for a chief that has gone. Nothing is sent outside a multi-worker run."""

    def __init__(self, strategy: tf.distribute.Strategy, task: Task):
        self.strategy = strategy if task.chief_address is not None else None
        self.told = False

    def tell(self, value: int) -> None:
        if self.strategy is not None and not self.told:
            self.told = True
            chief_says(self.strategy, value)

    def __enter__(self) -> ChiefDecision:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if self.strategy is not None and not self.told:
            # The chief's own outcome stands even when no worker listens any more.
            with contextlib.suppress(Exception):
                self.tell(FINISHED if kind is None else STOPPED)


def scratch_dir(task: Task) -> str:
    """A new folder of this host's temporary directory for a worker that is
    not the chief: its checkpoints and models (saving under
    ``MultiWorkerMirroredStrategy`` is collective, so every worker saves;
    only the chief's files are kept). Removed by its owner."""
    return tempfile.mkdtemp(prefix=f"lcr-larq-{task.name}-")


def lost_worker(task: Task, error: tf.errors.UnavailableError) -> RunError:
    """The one line of a worker whose cluster lost a worker (TensorFlow
    aborts the collectives when a peer's connection drops): TensorFlow's
    line that speaks of it, and how to resume.

    Example:
        >>> error = tf.errors.UnavailableError(None, None, "Graph execution error:\\n\\n"
        ...     "{{node x}} Collective ops is aborted by: Socket closed\\nAdditional GRPC …")
        >>> print(lost_worker(Task(True, "worker-0", "a:1"), error))  # doctest: +ELLIPSIS
        worker-0 lost a worker of the cluster (Collective ops is aborted by: Socket closed): ...
    """
    lines = [re.sub(r"^\{\{.*?\}\}\s*", "", line).strip()
             for line in error.message.splitlines()]
    lines = [line for line in lines if line and not line.endswith(":")] or ["unavailable"]
    named = [line for line in lines if re.search(r"abort|closed|down|unavailable", line, re.I)]
    return RunError(
        f"{task.name} lost a worker of the cluster ({(named or lines)[0][:160]}): rerun every "
        "worker's command; the run resumes from the chief's last finished epoch"
    )

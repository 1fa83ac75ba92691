"""Claims on a shared directory: which worker trains which cell of a study.

Workers of a study share nothing but its output directory, so that is where
they agree who trains what. A cell's claims live in a folder beside its run
directory (``lcr_lambda=4/seed_1.claims/``), one file per claim, numbered:
``0``, ``1``, … Each holds who made it (host, pid, the process's start time,
the worker's name, a random token); the highest number is the cell's claim
now, and a holder that is done renames its file to ``N.released``.

* **Made atomically.** To claim a cell, a worker creates the file numbered
  one above the highest it sees, with ``O_CREAT | O_EXCL`` (:func:`acquire`):
  of any number of workers racing for it, exactly one creates that file, and
  a worker that saw an old listing asks for a number already taken and
  loses. That holds on a local filesystem, on NFS version 3 and later
  (Linux clients send an exclusive CREATE; NFSv2 had none), and on the
  cluster filesystems whose metadata servers create files (Lustre,
  GPFS/Spectrum Scale, BeeGFS, CephFS). No worker ever removes or renames
  another's file.
* **Kept alive.** While a worker holds a claim, a thread touches its file
  every :data:`HEARTBEAT` seconds (the modification time is the lease), and
  checks that no higher number has appeared.
* **Taken over when its holder is gone.** A claim made on this host (same
  host name and pid namespace) is stale as soon as its process is not alive
  (or its pid now names a process started later); a claim made on another
  host is stale when it has not been touched for :data:`LEASE` seconds (the
  hosts' clocks are assumed within a minute of each other; NFS sets the time
  on the server). A stale claim is taken over by claiming the next number.
* **Given up when lost.** A holder that finds a higher number than its own
  (another worker judged it dead: a network partition longer than the lease)
  sets :attr:`Claim.lost`; the study stops training that cell at the next
  step.

A claim is never the only guard: the run directory's ``.lock``
(:class:`~lcr_larq.training.runs.RunLock`, an ``flock`` the system drops
when the process dies) refuses a second training in the same directory on
every filesystem with coherent ``flock`` (local, NFS, Lustre with ``-o
flock``).

Example:
    >>> import tempfile
    >>> cell = os.path.join(tempfile.mkdtemp(), "seed_0.claims")
    >>> me = this_process("example")
    >>> with acquire(cell, me, heartbeat=0) as claim:
    ...     acquire(cell, this_process("another")) is None, current(cell)[0].token == me.token
    (True, True)
    >>> sorted(os.listdir(cell))
    ['0.released']
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from dataclasses import asdict, dataclass

__all__ = [
    "HEARTBEAT",
    "LEASE",
    "PARENT_ENV",
    "RELEASED",
    "acquire",
    "Claim",
    "current",
    "describe",
    "end_with_parent",
    "held",
    "Holder",
    "is_stale",
    "process_alive",
    "process_start",
    "read_claim",
    "this_process",
]

#: Seconds after its last heartbeat when another host's claim is stale: far
#: longer than :data:`HEARTBEAT` and than the minute NFS clients may cache a
#: file's attributes.
LEASE = 300.0
#: Seconds between a holder's heartbeats.
HEARTBEAT = 30.0
#: The environment variable that tells a command started by a worker to end
#: when the worker does (:func:`end_with_parent`): a killed worker leaves no
#: evaluation running on its own.
PARENT_ENV = "LCR_LARQ_END_WITH_PARENT"


@dataclass(frozen=True)
class Holder:
    """Who holds (or held) a claim."""

    worker: str
    host: str
    pid: int
    #: The process's start time (clock ticks after boot, from /proc): a pid
    #: that now names a later process is not the holder.
    started: int | None
    #: The pid namespace: two containers on one host share its name, not their pids.
    namespace: str | None
    token: str

    def same_machine(self, other: Holder) -> bool:
        """Whether pids of ``other`` can be looked up here."""
        return self.host == other.host and self.namespace == other.namespace


def this_process(worker: str) -> Holder:
    """A new claim holder for this process, with a fresh token."""
    pid = os.getpid()
    return Holder(worker=worker, host=socket.gethostname(), pid=pid,
                  started=process_start(pid), namespace=_pid_namespace(),
                  token=secrets.token_hex(8))


def process_start(pid: int) -> int | None:
    """A process's start time in clock ticks after boot (field 22 of
    ``/proc/PID/stat``); None where there is no /proc or no such process."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            text = handle.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # the name may hold spaces and ")"
    return int(fields[19])


def process_alive(pid: int, started: int | None) -> bool:
    """Whether ``pid`` is a live process started at ``started`` (a zombie, a
    pid reused by a later process, or none at all is not)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    fields = text[text.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return False
    return started is None or int(fields[19]) == started


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


RELEASED = ".released"


def read_claim(path: str) -> tuple[Holder | None, float | None]:
    """``(holder, last heartbeat)`` of a claim file: ``(None, None)`` when
    there is none, ``(None, mtime)`` when it cannot be read (being written,
    or left half-written by a crash)."""
    try:
        # Opening revalidates an NFS client's cached attributes (close-to-open).
        with open(path, encoding="utf-8") as handle:
            mtime = os.fstat(handle.fileno()).st_mtime
            text = handle.read()
    except FileNotFoundError:
        return None, None
    except OSError:
        return None, time.time()
    try:
        return Holder(**json.loads(text)), mtime
    except (ValueError, TypeError):
        return None, mtime


def _numbers(directory: str) -> list[tuple[int, bool]]:
    """The claims in a cell's folder: ``(number, released)``, in order."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        number, _, rest = name.partition(".")
        if number.isdigit() and rest in ("", RELEASED[1:]):
            out.append((int(number), rest != ""))
    return sorted(out)


def current(directory: str) -> tuple[Holder | None, float | None, int | None]:
    """``(holder, last heartbeat, number)`` of a cell's claim now: the
    highest number; ``(None, None, number)`` when it is released (or no
    claim was ever made: number None); holder None with a heartbeat when its
    file cannot be read yet."""
    numbers = _numbers(directory)
    if not numbers:
        return None, None, None
    number, released = numbers[-1]
    if released:
        return None, None, number
    holder, heartbeat = read_claim(os.path.join(directory, str(number)))
    return holder, heartbeat, number  # heartbeat None: released meanwhile


def is_stale(holder: Holder | None, heartbeat: float, here: Holder, now: float,
             lease: float = LEASE) -> bool:
    """Whether a claim whose file holds ``holder`` (None: unreadable) and was
    last touched at ``heartbeat`` may be taken over by ``here``.

    Example:
        >>> me = Holder("w", "node1", 10, 5, "pid:[1]", "a")
        >>> far = Holder("v", "node2", 10, 5, "pid:[1]", "b")
        >>> is_stale(far, heartbeat=1000.0, here=me, now=1100.0), is_stale(
        ...     far, heartbeat=1000.0, here=me, now=1000.0 + LEASE + 1)
        (False, True)
    """
    if holder is not None and holder.same_machine(here):
        return not process_alive(holder.pid, holder.started)
    return now - heartbeat > lease


def held(directory: str, here: Holder, now: float | None = None,
         lease: float = LEASE) -> tuple[Holder | None, float] | None:
    """``(holder, last heartbeat)`` of the live claim on a cell, or None
    when no live worker holds it."""
    holder, heartbeat, _ = current(directory)
    if heartbeat is None:
        return None
    if is_stale(holder, heartbeat, here, time.time() if now is None else now, lease):
        return None
    return holder, heartbeat


class Claim:
    """A claim this process holds: released on leaving the ``with`` block,
    kept alive by a heartbeat thread meanwhile."""

    def __init__(self, directory: str, number: int, holder: Holder,
                 heartbeat: float = HEARTBEAT, took_over: Holder | None = None):
        self.directory = directory
        self.number = number
        self.path = os.path.join(directory, str(number))
        self.holder = holder
        self.heartbeat = heartbeat
        #: Whose stale claim this one replaced (None: the cell was free).
        self.took_over = took_over
        #: Set when a higher claim appeared: stop working on the cell.
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Claim:
        if self.heartbeat > 0:
            self._thread = threading.Thread(target=self._beat, name="claim-heartbeat",
                                            daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat):
            if not self.touch():
                self.lost.set()
                return

    def touch(self) -> bool:
        """Renews the lease; False when the claim is no longer the cell's (a
        passing error of the filesystem counts as still held)."""
        if any(number > self.number for number, _ in _numbers(self.directory)):
            return False
        try:
            os.utime(self.path)
        except FileNotFoundError:
            return False
        except OSError:
            pass
        return True

    def release(self) -> None:
        """Stops the heartbeat and marks the claim released."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        try:
            os.rename(self.path, self.path + RELEASED)
        except FileNotFoundError:
            pass


def acquire(directory: str, holder: Holder, lease: float = LEASE,
            heartbeat: float = HEARTBEAT, now: float | None = None) -> Claim | None:
    """The claim on the cell whose claims are in ``directory`` (made if
    needed), for ``holder``; None while another live worker holds it, or when
    another worker claimed it first. A stale claim (:func:`is_stale`) is
    taken over; the returned :class:`Claim` names its holder in
    ``took_over``."""
    os.makedirs(directory, exist_ok=True)
    previous, heartbeat_at, number = current(directory)
    took_over = None
    if heartbeat_at is not None:  # claimed, not released
        if not is_stale(previous, heartbeat_at, holder,
                        time.time() if now is None else now, lease):
            return None
        took_over = previous or Holder("a worker (claim unreadable)", "?", 0, None, None, "")
    mine = 0 if number is None else number + 1
    path = os.path.join(directory, str(mine))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return None  # another worker was first
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(asdict(holder)))
        handle.flush()
        os.fsync(handle.fileno())
    return Claim(directory, mine, holder, heartbeat, took_over)


def describe(holder: Holder | None, heartbeat: float | None, now: float) -> str:
    """A claim in a few words, for the study report.

    Example:
        >>> describe(Holder("node7:42", "node7", 42, None, None, "t"), 100.0, now=130.0)
        'claimed by node7:42, heartbeat 30 s ago'
    """
    if heartbeat is None:
        return "not claimed"
    who = holder.worker if holder is not None else "a worker (claim unreadable)"
    return f"claimed by {who}, heartbeat {max(0.0, now - heartbeat):.0f} s ago"


def end_with_parent() -> None:
    """In a command started by a study worker (:data:`PARENT_ENV` names the
    worker's pid and it is this process's parent): a thread that ends this
    process when the worker ends, so that a killed worker leaves no orphan
    working on a cell another worker takes over."""
    parent = os.environ.get(PARENT_ENV)
    if not parent or parent != str(os.getppid()):
        return

    def watch() -> None:
        while os.getppid() == int(parent):
            time.sleep(1.0)
        os._exit(143)  # as SIGTERM would: the worker is gone

    threading.Thread(target=watch, name="end-with-parent", daemon=True).start()

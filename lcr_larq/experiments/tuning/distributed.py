"""Searches on many machines: Keras Tuner's distributed mode, as it is.

Keras Tuner runs one search on many machines with a chief and workers named
by three environment variables: ``KERASTUNER_ORACLE_IP`` and
``KERASTUNER_ORACLE_PORT`` (where the chief serves its oracle over gRPC) and
``KERASTUNER_TUNER_ID`` (``chief`` for the chief, a name of its own —
``tuner0``, ``tuner1``… — for each worker). The chief holds the oracle: it
hands out the trials and records their scores; it trains nothing. Each
worker asks it for a trial, trains it, reports the score, and asks again
until the oracle says the search is over. Without ``KERASTUNER_ORACLE_IP``
one process does everything (:data:`ALONE`).

What ``lcr-tune`` adds, every process running the same command with one
shared ``--output-dir``:

* the chief owns the output directory, as alone: it takes its lock, checks
  or writes ``search.yaml`` (before it serves, so a worker that reaches the
  oracle finds it), and writes ``trials.csv`` and ``best.yaml`` whenever a
  trial or the baseline changes (:func:`serve`);
* a worker first waits, bounded by ``--chief-timeout``, for the oracle to
  answer (:func:`wait_for_oracle`: Keras Tuner's own client waits an hour),
  then is refused if its settings differ from the chief's ``search.yaml``
  (:func:`check_worker_settings`), and holds a lock on its id
  (:func:`worker_lock`): two workers with one id would train one trial;
* the λ = 0 baseline is trained once, by the first process to claim it
  (:func:`claim_baseline`, an exclusive create in ``baseline/``), right
  before its first trial — it then holds a trial, so the oracle keeps
  serving — or, when the oracle gives it none, after the search.

A worker that dies mid-trial: Keras Tuner keeps the trial as its ongoing
trial and hands it back to the next worker that asks with the same
``KERASTUNER_TUNER_ID``; ``lcr-tune`` resumes it from its last finished epoch
(the trial's checkpoint, as alone). The other workers go on meanwhile; the
chief waits for the trial without a bound. So a scheduler restarts a dead
worker with its id (``max_retries_per_trial`` is another matter: it retries
trials that raised, and ``lcr-tune`` fails those instead). A claimed baseline
is resumed the same way.

Example:
    >>> role_of({})
    Role(kind='alone', tuner_id='tuner0', oracle=None)
    >>> role_of({"KERASTUNER_ORACLE_IP": "10.0.0.1", "KERASTUNER_ORACLE_PORT": "8000",
    ...          "KERASTUNER_TUNER_ID": "tuner1"})
    Role(kind='worker', tuner_id='tuner1', oracle='10.0.0.1:8000')
"""

from __future__ import annotations

import contextlib
import copy
import os
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from lcr_larq.errors import ConfigError, RunError
from lcr_larq.experiments.tuning.settings import SEARCH_FILE, TuneConfig, changed_settings
from lcr_larq.experiments.tuning.space import kt
from lcr_larq.settings import load_recipe, recipe_dict
from lcr_larq.training import runs
from lcr_larq.training.distribute import POLL, wait_for_chief

__all__ = [
    "ALONE",
    "CLAIM",
    "check_port",
    "check_worker_settings",
    "claim_baseline",
    "oracle_state",
    "OracleState",
    "Role",
    "role_of",
    "serve",
    "wait_for_oracle",
    "worker_lock",
]

ORACLE_IP, ORACLE_PORT, TUNER_ID = (
    "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID")
#: A search in one process: Keras Tuner's default tuner id.
ALONE = "alone"
#: The file of the baseline's directory that names the process training it.
CLAIM = "claim"


@dataclass(frozen=True)
class Role:
    """This process's part in a search: ``alone`` (one process does
    everything), ``chief`` (serves the oracle) or ``worker``; its Keras Tuner
    id; the oracle's ``ip:port`` when distributed."""

    kind: str
    tuner_id: str
    oracle: str | None = None

    @property
    def distributed(self) -> bool:
        return self.kind != ALONE


def role_of(environ: Mapping[str, str]) -> Role:
    """The :class:`Role` that Keras Tuner's variables in ``environ`` give
    (its rules: distributed when ``KERASTUNER_ORACLE_IP`` is set; the chief
    when the id contains ``chief``), each variable checked in one line.

    Example:
        >>> role_of({"KERASTUNER_ORACLE_IP": "10.0.0.1", "KERASTUNER_TUNER_ID": "chief"})
        Traceback (most recent call last):
        ...
        lcr_larq.errors.ConfigError: KERASTUNER_ORACLE_IP is set but KERASTUNER_ORACLE_PORT \
is not: set it to the port the chief serves on, for every process of the search
    """
    ip = environ.get(ORACLE_IP)
    if ip is None:
        return Role(ALONE, environ.get(TUNER_ID) or "tuner0")
    for name in (ORACLE_PORT, TUNER_ID):
        if not environ.get(name):
            what = ("the port the chief serves on" if name == ORACLE_PORT
                    else "chief for the chief, tuner0, tuner1… for the workers")
            raise ConfigError(f"{ORACLE_IP} is set but {name} is not: set it to {what}, "
                              "for every process of the search")
    port, tuner_id = environ[ORACLE_PORT], environ[TUNER_ID]
    if not (ip.strip() and port.isdigit() and 0 < int(port) < 65536):
        raise ConfigError(
            f"{ORACLE_IP}={ip!r} {ORACLE_PORT}={port!r} is no address: give the chief's "
            "host name or IP and a port from 1 to 65535"
        )
    kind = "chief" if "chief" in tuner_id else "worker"
    return Role(kind, tuner_id, f"{ip}:{int(port)}")


# --------------------------------------------------------------------------- the chief
def check_port(role: Role) -> None:
    """Refuses, in one line, an oracle address this host cannot serve on
    (Keras Tuner's server would fail in its own thread)."""
    ip, _, port = role.oracle.rpartition(":")
    try:
        with socket.create_server((ip.strip("[]"), int(port))):
            pass
    except OSError as error:
        raise ConfigError(
            f"the chief cannot serve the oracle on {role.oracle} ({error.strerror or error}): "
            f"choose a free {ORACLE_PORT}, with {ORACLE_IP} an address of this host"
        ) from None


@dataclass
class OracleState:
    """A consistent copy of what the chief's oracle holds."""

    trials: list  #: Keras Tuner ``Trial`` objects, copied
    tuner_ids: set[str]  #: the workers that have not been told the search is over
    ongoing: bool  #: whether a trial is running
    failed_in_a_row: int  #: trials ended FAILED in a row, the last ones ended


@kt.synchronized
def oracle_state(oracle: kt.Oracle) -> OracleState:
    """:class:`OracleState` of ``oracle``, read under its lock (the
    decorator's contract: the oracle is the first argument) while its server
    thread answers the workers."""
    failed = 0
    for trial_id in oracle.end_order:  # as Oracle counts failures in a row
        failed = failed + 1 if oracle.trials[trial_id].status == "FAILED" else 0
    return OracleState(copy.deepcopy(list(oracle.trials.values())), set(oracle.tuner_ids),
                       bool(oracle.ongoing_trials), failed)


def serve(tuner, write: Callable[[list], Any], baseline: Callable[[], str | None],
          verbose: int) -> OracleState:
    """The chief: Keras Tuner serves the oracle (``tuner.search``) in a
    thread while this one calls ``write(trials)`` whenever a trial or the
    baseline (``baseline()``: its status, ``COMPLETED`` when there is none)
    changes. Returns the final state once every worker that asked has been
    told the search is over (Keras Tuner's own end, without its 20-second
    polls) and the baseline has completed; or once the baseline has failed
    (that stops a search, as in one process), or too many trials failed in a
    row (Keras Tuner's oracle then raises to the worker that ended the last
    one and never ends that trial)."""
    errors: list[BaseException] = []

    def search():
        try:
            tuner.search(verbose=verbose)
        except BaseException as error:  # noqa: BLE001 - handed to the main thread
            errors.append(error)

    def start() -> threading.Thread:
        thread = threading.Thread(target=search, name="oracle", daemon=True)
        thread.start()
        return thread

    thread = start()
    asked, shown = False, None
    limit = tuner.oracle.max_consecutive_failed_trials
    while True:
        thread.join(POLL)
        if errors:
            raise errors[0]
        if not thread.is_alive() and baseline() not in ("COMPLETED", "FAILED"):
            # Keras Tuner stopped serving while a worker still trains the
            # baseline: serve on, so that it finds the oracle if it restarts.
            thread = start()
        state = oracle_state(tuner.oracle)
        asked = asked or bool(state.tuner_ids)
        status = baseline()
        now = ([(t.trial_id, t.status, t.score) for t in state.trials], status)
        if now != shown:
            write(state.trials)
            shown = now
        over = not thread.is_alive() or (asked and not state.tuner_ids and not state.ongoing)
        if ((over and status == "COMPLETED") or status == "FAILED"
                or (limit and state.failed_in_a_row >= limit)):
            return state


# --------------------------------------------------------------------------- a worker
def wait_for_oracle(role: Role, timeout: float) -> None:
    """Returns once the chief's oracle answers; a one-line
    :class:`~lcr_larq.errors.RunError` naming its address after ``timeout``."""
    wait_for_chief(
        role.oracle, timeout, "the lcr-tune chief",
        f"start it ({TUNER_ID}=chief, the same command) or check {ORACLE_IP} and "
        f"{ORACLE_PORT}; --chief-timeout waits longer",
    )


def check_worker_settings(config: TuneConfig, role: Role) -> None:
    """Refuses a worker whose settings differ from the search its chief
    serves (its ``search.yaml``, written before the oracle answers), naming
    the differing flags, and a worker given ``--overwrite`` (the chief's)."""
    if config.overwrite:
        raise ConfigError(f"--overwrite starts the search again: give it to the chief "
                          f"({TUNER_ID}=chief), not to a worker")
    path = os.path.join(config.run_dir, SEARCH_FILE)
    if not os.path.isfile(path):
        raise RunError(
            f"the chief at {role.oracle} answers, but {config.run_dir} holds no {SEARCH_FILE}: "
            "give every process of the search the chief's --output-dir, on a filesystem they "
            "share"
        )
    chief = recipe_dict(TuneConfig(**load_recipe(path, TuneConfig)))
    changed = changed_settings(chief, recipe_dict(config), now="here")
    if changed:
        raise ConfigError(
            f"this worker's settings differ from its chief's search ({path}): "
            f"{', '.join(changed)}; start every worker with the chief's settings "
            f"(lcr-tune --config {path})"
        )


@contextlib.contextmanager
def worker_lock(config: TuneConfig, role: Role) -> Iterator[None]:
    """Holds this worker's id on the search for as long as it runs: a second
    worker with the same ``KERASTUNER_TUNER_ID`` is refused in one line."""
    try:
        lock = runs.RunLock(config.run_dir, name=f".{role.tuner_id}.lock").__enter__()
    except RunError:
        raise RunError(
            f"another worker with {TUNER_ID}={role.tuner_id} is running the search in "
            f"{config.run_dir}: give every worker its own {TUNER_ID}"
        ) from None
    try:
        yield
    finally:
        lock.__exit__(None, None, None)


# --------------------------------------------------------------------------- the baseline
def claim_baseline(directory: str, role: Role) -> bool:
    """Whether this process trains the baseline in ``directory``: the first
    to create its claim does (an exclusive create: one wins a race, on a
    shared filesystem too), and so does a worker restarted with the id of
    the claim (it resumes it). A process alone takes over any claim: it is
    the only one on the search.

    Example:
        >>> import tempfile
        >>> baseline = tempfile.mkdtemp()
        >>> tuner = {name: Role("worker", name, "10.0.0.1:8000") for name in ("tuner0", "tuner1")}
        >>> claim_baseline(baseline, tuner["tuner1"]), claim_baseline(baseline, tuner["tuner0"])
        (True, False)
        >>> claim_baseline(baseline, tuner["tuner1"])  # tuner1 restarted: it resumes it
        True
        >>> claim_baseline(baseline, Role(ALONE, "tuner0"))  # alone: takes it over
        True
        >>> open(os.path.join(baseline, CLAIM)).readline()
        'tuner0\\n'
    """
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, CLAIM)
    mine = f"{role.tuner_id}\n"
    try:
        handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        with open(path, encoding="utf-8") as claim:
            owner = claim.readline()
        if owner == mine:
            return True
        if role.distributed:
            return False
        handle = os.open(path, os.O_WRONLY | os.O_TRUNC)
    with os.fdopen(handle, "w", encoding="utf-8") as claim:
        claim.write(f"{mine}{socket.gethostname()} pid {os.getpid()}\n")
    return True

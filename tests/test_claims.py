"""Claims on a shared directory: one winner per race, stale claims taken over, live ones kept."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from lcr_larq.experiments import claims


def race(count, attempt):
    """Runs ``attempt(i)`` in ``count`` threads released at once; their results."""
    barrier = threading.Barrier(count)
    results = [None] * count

    def run(i):
        barrier.wait()
        results[i] = attempt(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def write_claim(cell, number, holder, age=0.0):
    """Claim ``number`` of a cell made by ``holder`` (None: an empty file), last
    touched ``age`` seconds ago."""
    os.makedirs(cell, exist_ok=True)
    path = os.path.join(cell, str(number))
    with open(path, "w", encoding="utf-8") as handle:
        if holder is not None:
            json.dump(holder.__dict__, handle)
    if age:
        then = time.time() - age
        os.utime(path, (then, then))


def dead_pid():
    """The pid and start time of a process that has ended (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    started = claims.process_start(process.pid)
    process.kill()
    process.wait()
    return process.pid, started


def test_of_many_racers_exactly_one_claims_a_free_cell(tmp_path):
    cell = str(tmp_path / "seed_0.claims")
    holders = [claims.this_process(f"w{i}") for i in range(16)]
    won = race(16, lambda i: claims.acquire(cell, holders[i], heartbeat=0))
    winners = [c for c in won if c is not None]
    assert len(winners) == 1
    assert claims.current(cell)[0].token == winners[0].holder.token  # the file names it
    winners[0].release()
    assert claims.current(cell) == (None, None, 0) and os.listdir(cell) == ["0.released"]
    # Released: the next worker claims the next number.
    again = claims.acquire(cell, holders[0], heartbeat=0)
    assert again.number == 1 and again.took_over is None


def test_a_live_holder_keeps_its_claim_and_a_dead_ones_is_taken_over(tmp_path):
    cell = str(tmp_path / "c.claims")
    me = claims.this_process("me")
    # Another live process of this host (this test's parent) holds it.
    parent = os.getppid()
    write_claim(cell, 0, claims.Holder("parent", me.host, parent, claims.process_start(parent),
                                       me.namespace, "live"), age=10 * claims.LEASE)
    assert claims.acquire(cell, me, heartbeat=0) is None  # old heartbeat: the pid decides
    # Its process is gone: taken over at once, naming whom it replaced.
    pid, started = dead_pid()
    write_claim(cell, 1, claims.Holder("dead", me.host, pid, started, me.namespace, "dead"))
    claim = claims.acquire(cell, me, heartbeat=0)
    assert claim.number == 2 and claim.took_over.worker == "dead"
    assert claims.current(cell)[0].token == me.token
    assert claims.held(cell, claims.this_process("other"))[0].token == me.token
    # A pid that now names a later process (reused) is not the holder.
    write_claim(cell, 3, claims.Holder("reused", me.host, os.getpid(), me.started - 1,
                                       me.namespace, "old"))
    assert claims.held(cell, me) is None
    assert claims.acquire(cell, me, heartbeat=0).number == 4


def test_another_hosts_claim_is_stale_only_after_the_lease(tmp_path):
    cell = str(tmp_path / "c.claims")
    me = claims.this_process("me")
    far = claims.Holder("node9:7", "node9", 7, 123, None, "far")
    write_claim(cell, 0, far, age=claims.LEASE - 30)
    assert claims.acquire(cell, me, heartbeat=0) is None
    write_claim(cell, 0, far, age=claims.LEASE + 30)
    claim = claims.acquire(cell, me, heartbeat=0)
    assert claim.number == 1 and claim.took_over.worker == "node9:7"
    # A claim file left empty (its maker died while writing it): by its age alone.
    write_claim(cell, 2, None)
    assert claims.acquire(cell, me, heartbeat=0) is None
    write_claim(cell, 2, None, age=claims.LEASE + 30)
    assert claims.acquire(cell, me, heartbeat=0).number == 3


def test_of_many_racers_exactly_one_takes_over_a_stale_claim(tmp_path):
    cell = str(tmp_path / "c.claims")
    pid, started = dead_pid()
    me = claims.this_process("x")
    write_claim(cell, 0, claims.Holder("dead", me.host, pid, started, me.namespace, "dead"))
    holders = [claims.this_process(f"w{i}") for i in range(16)]
    won = [c for c in race(16, lambda i: claims.acquire(cell, holders[i], heartbeat=0)) if c]
    assert len(won) == 1 and claims.current(cell)[0].token == won[0].holder.token
    assert sorted(os.listdir(cell)) == ["0", "1"]  # nobody removed or renamed another's file


def test_the_heartbeat_renews_the_lease_and_notices_a_lost_claim(tmp_path):
    cell = str(tmp_path / "c.claims")
    with claims.acquire(cell, claims.this_process("me"), heartbeat=0.05) as claim:
        then = time.time() - 1000
        os.utime(claim.path, (then, then))
        deadline = time.time() + 10
        while os.path.getmtime(claim.path) < then + 500 and time.time() < deadline:
            time.sleep(0.02)
        assert os.path.getmtime(claim.path) > then + 500  # touched again
        assert not claim.lost.is_set()
        # Another worker judged it dead and took it over.
        write_claim(cell, 1, claims.Holder("other", "node2", 1, None, None, "theirs"))
        assert claim.lost.wait(10)
    assert claims.current(cell)[0].token == "theirs"
    assert sorted(os.listdir(cell)) == ["0.released", "1"]


def test_a_process_alive_is_not_a_zombie():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    started = claims.process_start(process.pid)
    deadline = time.time() + 30
    while claims.process_alive(process.pid, started) and time.time() < deadline:
        time.sleep(0.05)
    assert not claims.process_alive(process.pid, started)  # ended, not yet reaped
    assert process.poll() == 0
    assert claims.process_alive(os.getpid(), claims.process_start(os.getpid()))


@pytest.mark.parametrize("parent_alive", [True, False])
def test_a_command_started_by_a_worker_ends_with_it(tmp_path, parent_alive):
    """``end_with_parent``: the child of a killed worker does not go on alone."""
    child = ("import importlib.util, os, sys, time\n"  # the module alone: no TensorFlow
             f"spec = importlib.util.spec_from_file_location('claims', {claims.__file__!r})\n"
             "claims = sys.modules['claims'] = importlib.util.module_from_spec(spec)\n"
             "spec.loader.exec_module(claims)\n"
             "claims.end_with_parent()\n"
             "print(os.getpid(), flush=True)\n"
             "time.sleep(30)\n")
    worker = ("import os, subprocess, sys, time\n"
              f"env = dict(os.environ, {claims.PARENT_ENV}=str(os.getpid()))\n"
              f"p = subprocess.Popen([sys.executable, '-c', {child!r}], env=env,\n"
              "                     stdout=subprocess.PIPE, text=True)\n"
              "print(p.stdout.readline().strip(), flush=True)\n"
              "time.sleep(30)\n")
    parent = subprocess.Popen([sys.executable, "-c", worker], stdout=subprocess.PIPE, text=True)
    pid = int(parent.stdout.readline())
    started = claims.process_start(pid)
    try:
        if parent_alive:
            time.sleep(2.5)
            assert claims.process_alive(pid, started)
        else:
            parent.kill()
            parent.wait()
            deadline = time.time() + 15
            while claims.process_alive(pid, started) and time.time() < deadline:
                time.sleep(0.1)
            assert not claims.process_alive(pid, started)
    finally:
        parent.kill()
        parent.wait()


def test_a_terminated_worker_stops_as_if_interrupted():
    """SIGTERM (a scheduler's preemption) raises KeyboardInterrupt in a worker, so its
    claim is released on the way out; the handler is put back afterwards."""
    from lcr_larq.experiments import workers

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with workers.terminate_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
    assert signal.getsignal(signal.SIGTERM) == before

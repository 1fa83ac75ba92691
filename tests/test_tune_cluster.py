"""lcr-tune on many machines, rehearsed on 127.0.0.1: Keras Tuner's chief and
two workers, in separate processes on one shared --output-dir, run the
commands of docs/cluster.md. One worker is killed (kill -9) in the middle of a
trial and restarted with its id, as a scheduler would: it resumes the trial
from its last finished epoch, the other worker goes on meanwhile, the λ = 0
baseline is trained once, and the chief writes the same trials.csv, best.yaml
and table as one process running the same search. The workers start first and
the chief only once both say they wait for it. The refusals (an
unreachable oracle, a worker with other settings, two workers with one id, a
chief that cannot serve) are one line each, in this process, before any
training."""

import csv
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time

import pytest

from lcr_larq import cli
from lcr_larq.cli import tune as tune_cli
from lcr_larq.experiments import tuning
from lcr_larq.experiments.tuning import search as tuning_search
from lcr_larq.experiments.tuning.settings import SEARCHED
from lcr_larq.training import runs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIABLES = ("KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID")


def rehearsal():
    """The flags and tuner ids of the rehearsal in docs/cluster.md."""
    text = open(os.path.join(ROOT, "docs", "cluster.md"), encoding="utf-8").read()
    section = text[text.index("## Searches on many machines"):]
    block = section[section.index("### Rehearse it on one machine"):]
    block = block.split("```bash\n", 1)[1].split("```", 1)[0].replace("\\\n", "")
    assert "export KERASTUNER_ORACLE_IP=127.0.0.1 KERASTUNER_ORACLE_PORT=8000\n" in block
    flags = shlex.split(re.search(r'^SEARCH="(.*)"$', block, re.M).group(1))
    ids = re.findall(r"^KERASTUNER_TUNER_ID=(\w+) lcr-tune \$SEARCH &$", block, re.M)
    assert ids == ["chief", "tuner0", "tuner1"] and block.rstrip().endswith("wait")
    return flags


def with_output_dir(flags, out):
    at = flags.index("--output-dir")
    return [*flags[:at + 1], str(out), *flags[at + 2:]]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def table(stdout):
    """The printed table's rows, the seconds column left out."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in stdout.splitlines() if line.startswith("| ")]
    drop = rows[0].index("seconds")
    return [row[:drop] + row[drop + 1:] for row in rows]


def read_rows(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def timeless(path):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in read_rows(path)]


def settings(flags):
    """The TuneConfig of lcr-tune's ``flags``."""
    parser = cli.parser("lcr-tune", "", tuning.TuneConfig, exclude=SEARCHED)
    return cli.settings_from(parser.parse_args(flags), tuning.TuneConfig)


def read_json(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # not written yet, or being written


class Process:
    def __init__(self, tuner_id, flags, env, logs):
        self.tuner_id = tuner_id
        self.out = logs / f"{tuner_id}-{time.monotonic_ns()}.out"
        self.err = self.out.with_suffix(".err")
        with open(self.out, "w") as stdout, open(self.err, "w") as stderr:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "lcr_larq.cli.tune", *flags], cwd=ROOT,
                env={**env, "KERASTUNER_TUNER_ID": tuner_id}, stdout=stdout, stderr=stderr)

    def finish(self, timeout=900):
        self.popen.wait(timeout=timeout)
        assert self.popen.returncode == 0, self.err.read_text()[-3000:]
        return self.out.read_text()


def test_a_chief_and_two_workers_survive_a_killed_worker_and_write_what_one_process_would(
        tmp_path, monkeypatch, capsys):
    flags = rehearsal()
    out = tmp_path / "cluster"
    logs = tmp_path / "logs"
    logs.mkdir()
    env = {**os.environ, "KERASTUNER_ORACLE_IP": "127.0.0.1",
           "KERASTUNER_ORACLE_PORT": str(free_port()), "CUDA_VISIBLE_DEVICES": ""}
    cluster = with_output_dir(flags, out)
    # The workers first, the chief once both say they wait for it: start order is free.
    # (The workers wait longer than the default: a loaded machine starts the chief slowly.)
    workers = [*cluster, "--chief-timeout", "600"]
    processes = {name: Process(name, workers, env, logs) for name in ("tuner0", "tuner1")}
    try:
        waiting = f"waiting up to 600 s for the lcr-tune chief at {env['KERASTUNER_ORACLE_IP']}:"
        deadline = time.monotonic() + 300
        while not all(waiting in p.err.read_text() for p in processes.values()):
            assert time.monotonic() < deadline and all(
                p.popen.poll() is None for p in processes.values()), "no worker waited"
            time.sleep(0.1)
        assert not out.exists()
        processes["chief"] = Process("chief", cluster, env, logs)
        # Kill the worker that does not train the baseline once its trial has a
        # checkpoint, i.e. in the middle of the trial.
        search = out / "tuner" / "search"
        deadline = time.monotonic() + 900
        victim = trial = None
        while victim is None or trial is None:
            assert time.monotonic() < deadline and processes["chief"].popen.poll() is None
            if victim is not None:
                assert processes[victim].popen.poll() is None, "no trial of it was seen midway"
            claim = out / "baseline" / "claim"
            if victim is None and claim.exists() and claim.read_text().count("\n") == 2:
                victim = "tuner1" if claim.read_text().startswith("tuner0\n") else "tuner0"
            oracle = read_json(search / "oracle.json") or {}
            ongoing = oracle.get("ongoing_trials", {}).get(victim)
            state = read_json(search / f"trial_{ongoing}" / "backup" / "state.json") or {}
            if victim and ongoing is not None and 1 <= state.get("epoch", 0) < 3:
                trial = ongoing
                processes[victim].popen.send_signal(signal.SIGKILL)
            time.sleep(0.05)
        processes[victim].popen.wait(timeout=60)
        assert processes[victim].popen.returncode == -signal.SIGKILL
        resumed = read_json(search / f"trial_{trial}" / "backup" / "state.json")["epoch"]
        assert resumed >= 1
        restarted = Process(victim, workers, env, logs)  # as a scheduler restarts it
        stdout = {name: p.finish() for name, p in processes.items() if name != victim}
        stdout[victim] = restarted.finish()
    finally:
        for process in [*processes.values(), *([restarted] if "restarted" in locals() else [])]:
            if process.popen.poll() is None:
                process.popen.kill()

    lines = {name: text.strip().splitlines()[-1] for name, text in stdout.items()
             if name != "chief"}
    span = "(no epoch left: scored)" if resumed == 3 else (
        "(epoch 3)" if resumed == 2 else "(epochs 2-3)")
    assert lines[victim].startswith(f"{victim} trained trial {trial} {span}")
    survivor = ({"tuner0", "tuner1"} - {victim}).pop()
    # The baseline trained once, by the survivor (it claimed it), before its first trial.
    assert lines[survivor].startswith(f"{survivor} trained the λ = 0 baseline (epochs 1-3), ")
    assert "baseline" not in lines[victim]
    trained = re.findall(r"trial (\d+)", lines[survivor] + lines[victim])
    assert sorted(trained) == ["0", "1"]  # each trial trained (to its end) by one worker
    assert (out / "baseline" / "claim").read_text().startswith(f"{survivor}\n")

    # One process, the same search: the same tables.
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    capsys.readouterr()
    alone = tmp_path / "alone"
    assert tune_cli.main(with_output_dir(flags, alone)) == 0
    assert table(stdout["chief"]) == table(capsys.readouterr().out)
    assert timeless(out / "trials.csv") == timeless(alone / "trials.csv")
    # the baseline and two trials
    assert [r["status"] for r in read_rows(out / "trials.csv")] == ["COMPLETED"] * 3
    assert ((out / "best.yaml").read_text().replace(str(out), "OUT")
            == (alone / "best.yaml").read_text().replace(str(alone), "OUT"))
    assert ((out / "search.yaml").read_text().replace(str(out), "OUT")
            == (alone / "search.yaml").read_text().replace(str(alone), "OUT"))
    assert f"wrote {out / 'trials.csv'}" in stdout["chief"]


# --------------------------------------------------------------------------- refusals
@pytest.fixture
def worker(monkeypatch):
    """Makes this process a worker of a chief on 127.0.0.1; returns the port."""
    port = free_port()
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", str(port))
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner0")
    return port


def one_line_error(capsys):
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("error: ") and all(not line.startswith("Trace") for line in lines)
    return lines[-1]


def test_a_worker_without_its_chief_fails_in_seconds_naming_the_address(
        worker, tmp_path, capsys):
    start = time.monotonic()
    flags = with_output_dir(rehearsal(), tmp_path / "t")
    assert tune_cli.main([*flags, "--chief-timeout", "1"]) == 2
    assert time.monotonic() - start < 10
    error = one_line_error(capsys)
    assert error.startswith(f"error: the lcr-tune chief at 127.0.0.1:{worker} did not answer "
                            "within 1 s: start it (KERASTUNER_TUNER_ID=chief")
    assert not (tmp_path / "t").exists()


def test_workers_with_other_settings_or_one_id_and_chiefs_that_cannot_serve_are_refused(
        worker, tmp_path, capsys, monkeypatch):
    out = tmp_path / "t"
    flags = with_output_dir(rehearsal(), out)
    with socket.create_server(("127.0.0.1", worker)):  # the chief's port answers
        assert tune_cli.main(flags) == 2
        assert f"{out} holds no search.yaml" in one_line_error(capsys)
        tuning_search.prepare_search(settings(flags))  # as the chief writes it
        assert tune_cli.main([*flags, "--epochs", "2", "--lr", "0.05"]) == 2
        assert ("this worker's settings differ from its chief's search "
                f"({out / 'search.yaml'}): --epochs (3, here 2), --lr (0.1, here 0.05); start "
                f"every worker with the chief's settings (lcr-tune --config "
                f"{out / 'search.yaml'})") in one_line_error(capsys)
        assert tune_cli.main([*flags, "--overwrite"]) == 2
        assert "give it to the chief (KERASTUNER_TUNER_ID=chief), not to a worker" in (
            one_line_error(capsys))
        with runs.RunLock(str(out), name=".tuner0.lock"):
            assert tune_cli.main(flags) == 2
        assert (f"another worker with KERASTUNER_TUNER_ID=tuner0 is running the search in {out}"
                in one_line_error(capsys))
        # a chief whose port is taken
        monkeypatch.setenv("KERASTUNER_TUNER_ID", "chief")
        assert tune_cli.main(flags) == 2
        assert f"the chief cannot serve the oracle on 127.0.0.1:{worker} (" in (
            one_line_error(capsys))
    monkeypatch.delenv("KERASTUNER_ORACLE_PORT")
    assert tune_cli.main(flags) == 2
    assert one_line_error(capsys) == (
        "error: KERASTUNER_ORACLE_IP is set but KERASTUNER_ORACLE_PORT is not: set it to the "
        "port the chief serves on, for every process of the search")

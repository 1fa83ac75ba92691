"""lcr-study on many workers: the commands of docs/cluster.md, a worker killed mid-cell,
the report of a study in parts, and every cell's provenance."""

import importlib.metadata
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import yaml

import lcr_larq
from lcr_larq import settings as cfg
from lcr_larq.cli import study as command
from lcr_larq.experiments import claims, study, workers
from lcr_larq.training import provenance, runs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: What the tests append to the documented commands: a tiny training of two
#: epochs (a worker is killed after the first), LCR's power iteration once.
TINY = ["--model", "resnet8", "--epochs", "2", "--steps-per-epoch", "1", "--batch-size", "16",
        "--input-size", "8", "--lcr-samples", "8", "--power-iterations", "1",
        "--validation-split", "0", "--bn-recalibration-batches", "2"]
#: What the workers' test appends besides: two seeds, i.e. four cells (two per arm), the
#: fewest that still give each of two workers cells of its own and a report in parts.
TWO_SEEDS = ["--seeds", "2"]
PAGE = os.path.join(ROOT, "docs", "cluster.md")
ONE_PROCESS = "The same study in one process gives the same tables:"


def documented(heading: str, language: str = "bash") -> str:
    """The first code block under ``heading`` in docs/cluster.md."""
    text = open(PAGE, encoding="utf-8").read()
    after = text[text.index(heading + "\n"):]
    return after.split(f"```{language}\n", 1)[1].split("```", 1)[0]


def study_commands(block: str) -> list[list[str]]:
    """The ``lcr-study`` command lines of a shell block, without their ``&``."""
    lines = [line.split("#", 1)[0].strip().rstrip("&").strip() for line in block.splitlines()]
    return [shlex.split(line) for line in lines if line.startswith("lcr-study")]


def at(argv: list[str], directory) -> list[str]:
    """A documented command's flags with its ``--output-dir`` moved to ``directory``."""
    flags = list(argv[1:])
    flags[flags.index("--output-dir") + 1] = str(directory)
    return flags


def start_worker(flags, **env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lcr_larq.cli.study", *flags, *TINY],
                            env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def collect(process: subprocess.Popen, into: list) -> threading.Thread:
    thread = threading.Thread(target=lambda: into.extend(process.stdout), daemon=True)
    thread.start()
    return thread


def wait_for(condition, timeout: float, what: str, every: float = 0.02):
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def settings_of(flags) -> study.StudySettings:
    parser = command.cli.parser("lcr-study", "", study.StudySettings)
    return cfg.validate(cfg.build_config(parser.parse_args([*flags, *TINY]),
                                         study.StudySettings))


def trainings(job) -> list[dict]:
    return [e for e in workers.cell_log(job) if e["event"] == "trained"]


def digests(directory) -> dict:
    return {(row["arm"], row["seed"]): runs.read_results(row["directory"])["weights_sha256"]
            for row in json.loads((directory / "study.json").read_text())["runs"]
            if row["status"] == "finished"}


def test_the_documented_cluster_commands_are_one_study():
    slurm = documented("### A Slurm array")
    array = re.search(r"#SBATCH --array=0-(\d+)", slurm)
    (worker,) = study_commands(slurm)
    manifest = yaml.safe_load(documented("### A Kubernetes indexed Job", "yaml"))
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    shell = study_commands(documented("### Several workers on one machine"))
    cells = len(study.jobs(settings_of(at(worker, "/x"))))
    assert cells == 6 == int(array.group(1)) + 1 == manifest["spec"]["completions"]
    assert [*container["command"], *container["args"]] == worker
    assert shell[0] == shell[1] == ["lcr-study", *at(worker, "runs/lambda")]
    assert shell[2] == ["lcr-study", *at(worker, "runs/lambda")[:-1], "--report"]
    (alone,) = study_commands(documented(ONE_PROCESS))
    assert alone == ["lcr-study", *at(worker, "runs/lambda_one")[:-1]]


def test_two_workers_train_each_cell_once_and_report_what_one_process_does(tmp_path, capsys):
    (slurm,) = study_commands(documented("### A Slurm array"))
    worker, _, report = study_commands(documented("### Several workers on one machine"))
    (alone,) = study_commands(documented(ONE_PROCESS))
    shared, single = tmp_path / "workers", tmp_path / "one"
    jobs = study.jobs(settings_of([*at(worker, shared), *TWO_SEEDS]))
    killed = jobs[1]  # lcr_lambda=0 seed 1: array task 1
    # Array task 1 first (it writes study.yaml), then a worker from a shell.
    first = start_worker([*at(slurm, shared), *TWO_SEEDS], SLURM_ARRAY_TASK_ID="1")
    first_lines, second_lines = [], []
    collect(first, first_lines)
    wait_for(lambda: os.path.isfile(os.path.join(killed.claims, "0")), 900, "task 1's claim")
    second = start_worker([*at(worker, shared), *TWO_SEEDS])
    reader = collect(second, second_lines)
    try:
        # Killed after its cell's first epoch, before the cell is done.
        wait_for(lambda: os.path.isfile(os.path.join(killed.directory, "backup", "state.json")),
                 900, "the first epoch of cell 1")
        os.kill(first.pid, signal.SIGKILL)
        assert first.wait(30) == -signal.SIGKILL
        assert runs.read_results(killed.directory) is None and not trainings(killed)
        # Meanwhile, the same study in one process (this one).
        assert command.main([*at(alone, single), *TWO_SEEDS, *TINY]) == 0
        assert second.wait(1800) == 0, "".join(second_lines)
    finally:
        for process in (first, second):
            if process.poll() is None:
                process.kill()
                process.wait()
    reader.join(10)
    # Every cell trained to the end exactly once; the killed one resumed by the other worker.
    assert [len(trainings(job)) for job in jobs] == [1] * 4
    assert {e["pid"] for job in jobs for e in trainings(job)} == {second.pid}
    resumed = trainings(killed)[0]
    assert resumed["resumed_from_epoch"] >= 1
    took_over = [e for e in workers.cell_log(killed) if e["event"] == "took over"]
    assert [(e["pid"], e["previous"]) for e in took_over] == [
        (second.pid, f"{socket.gethostname()}:{first.pid}")]
    assert any(f"{workers.name(killed)}: taking over from" in line for line in second_lines)
    here = claims.this_process("test")
    assert [claims.held(job.claims, here) for job in jobs] == [None] * 4  # none left live
    # The dead worker's claim stays as it was; the next number took over, then was released.
    assert sorted(os.listdir(killed.claims)) == ["0", "1.released"]
    # Each cell's provenance: what trained it, where, with what.
    results = runs.read_results(killed.directory)
    origin = results["provenance"]
    assert origin["worker"]["pid"] == second.pid
    assert origin["worker"]["host"] == socket.gethostname() == origin["host"]
    assert origin["packages"]["tensorflow"] == importlib.metadata.version("tensorflow")
    assert origin["packages"]["larq"] == importlib.metadata.version("larq")
    assert origin["project"]["version"] == lcr_larq.__version__
    assert origin["cpu"] == {"name": provenance.cpu_name_and_flags(provenance.read_cpuinfo())[0],
                             "extensions": provenance.cpu()["extensions"]}
    assert origin["gpus"] == []
    # The workers' report is the one-process study's: the same tables and weights.
    assert command.main([*at(report, shared), *TWO_SEEDS, *TINY]) == 0
    capsys.readouterr()
    assert (shared / "study.md").read_text() == (single / "study.md").read_text()
    assert digests(shared) == digests(single) and len(digests(single)) == 4
    text = (single / "study.md").read_text()
    assert "How many seeds" in text and "Every finished cell ran on" in text

    # The report of a study in parts names what is missing and why.
    parts = tmp_path / "parts"
    shutil.copytree(shared, parts)
    missing = study.jobs(settings_of([*at(worker, parts), *TWO_SEEDS]))
    shutil.rmtree(missing[1].directory)
    os.remove(missing[1].log_path)
    shutil.rmtree(missing[1].claims)
    live = claims.acquire(missing[3].claims, claims.this_process("node7:41877"), heartbeat=0)
    assert command.main([*at(report, parts), *TWO_SEEDS, *TINY]) == 0
    printed = capsys.readouterr().out
    assert "Cells not finished yet (2 of 4" in printed
    assert "- cell 1, lcr_lambda=0 seed 1: not started" in printed
    assert "- cell 3, lcr_lambda=4 seed 1: claimed by node7:41877, heartbeat" in printed
    partial = json.loads((parts / "study.json").read_text())
    assert [a["test_accuracy"]["n"] for a in partial["arms"]] == [1, 1]
    assert [m["cell"] for m in partial["missing"]] == [1, 3] and partial["failed"] == []
    live.release()

    # --parallel 2 on a CPU: two workers with no device finish it (cell 1); the study
    # command then reports the one-process study's tables.
    assert command.main([*at(alone, parts), "--parallel", "2", *TWO_SEEDS, *TINY]) == 0
    assert "--parallel 2: no GPU, 2 workers share the CPU" in capsys.readouterr().out
    (again,) = trainings(missing[1])
    assert again["pid"] not in (os.getpid(), second.pid)
    assert (parts / "study.md").read_text() == (single / "study.md").read_text()
    assert digests(parts) == digests(single)


# --------------------------------------------------------------------------- bad input
def one_line_error(capsys, code) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error:"), err
    return err


def test_a_worker_of_another_study_is_refused_naming_what_differs(tmp_path, capsys):
    (worker,) = study_commands(documented("### A Slurm array"))
    flags = at(worker, tmp_path)
    study.record_recipe(settings_of(flags))
    err = one_line_error(capsys, command.main([*flags, *TINY, "--seeds", "4", "--epochs", "3"]))
    assert "study.yaml holds a study with other settings (--epochs, --seeds)" in err
    assert f"lcr-study --config {tmp_path / 'study.yaml'} --output-dir {tmp_path} --worker" in err
    err = one_line_error(capsys, command.main([*flags[:-1], "--report", *TINY, "--lr", "1"]))
    assert "other settings (--lr)" in err and "--report" in err
    # How a worker runs may differ: its output path, verbosity, local workers.
    assert study.record_recipe(settings_of([*flags, "--verbose", "0", "--parallel", "3"])) is None
    assert os.listdir(tmp_path) == ["study.yaml"]


def test_an_index_past_the_last_cell_says_how_many_cells_there_are(tmp_path, capsys,
                                                                   monkeypatch):
    manifest = yaml.safe_load(documented("### A Kubernetes indexed Job", "yaml"))
    args = manifest["spec"]["template"]["spec"]["containers"][0]["args"]
    flags = at(["lcr-study", *args], tmp_path / "study")
    expected = "is past the last cell: the study has 6 cells, indices 0 to 5 (2 arms × 3 seeds)"
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "6")
    err = one_line_error(capsys, command.main([*flags, *TINY]))
    assert err == f"error: JOB_COMPLETION_INDEX='6' {expected}"
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "two")
    assert "JOB_COMPLETION_INDEX='two' is not a cell index: the study has 6 cells" in \
        one_line_error(capsys, command.main([*flags, *TINY]))
    monkeypatch.delenv("JOB_COMPLETION_INDEX")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "5")  # --cell wins over the scheduler's index
    assert f"--cell 9 {expected}" in one_line_error(
        capsys, command.main([*flags, "--cell", "9", *TINY]))
    assert "--parallel 2 starts workers that claim cells themselves" in one_line_error(
        capsys, command.main([*flags, "--parallel", "2", *TINY]))
    assert "--cell N is the cell of a worker: add --worker" in one_line_error(
        capsys, command.main([*flags[:-1], "--cell", "1", *TINY]))
    assert not (tmp_path / "study").exists()  # refused before anything was written
    assert "holds no study (study.yaml is missing)" in one_line_error(
        capsys, command.main([*flags[:-1], "--report", *TINY]))


def test_workers_start_in_any_order_and_one_writes_the_recipe(tmp_path):
    """The first worker to come writes study.yaml, an array task or not; of workers
    starting together exactly one writes it and the others accept it."""
    (slurm,) = study_commands(documented("### A Slurm array"))
    for order in ([("1",), ()], [(), ("1",)]):
        out = tmp_path / f"order{len(order[0])}"
        for task in order:
            env = {"SLURM_ARRAY_TASK_ID": task[0]} if task else {}
            s = settings_of(at(slurm, out))
            assert study.cell_index(s, env) == (1 if task else None)
            assert study.record_recipe(s) is None
        assert os.listdir(out) == ["study.yaml"]
    out = tmp_path / "together"
    s = settings_of(at(slurm, out))
    written = []
    barrier = threading.Barrier(8)

    def start():
        barrier.wait()
        written.append(study.record_recipe(s))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert written == [None] * 8 and os.listdir(out) == ["study.yaml"]
    assert cfg.load_recipe(str(out / "study.yaml"), study.StudySettings)["seeds"] == 3


def test_per_device_workers_get_one_gpu_each_of_those_allowed():
    assert workers.device_environments(4, 0, None) == [{}] * 4  # a CPU: the same, no device
    assert workers.device_environments(2, 4, None) == [{"CUDA_VISIBLE_DEVICES": "0"},
                                                     {"CUDA_VISIBLE_DEVICES": "1"}]
    # A scheduler's allocation: its devices, at most one worker each.
    assert workers.device_environments(8, 2, "5,7") == [{"CUDA_VISIBLE_DEVICES": "5"},
                                                      {"CUDA_VISIBLE_DEVICES": "7"}]
    assert workers.device_environments(3, 3, "GPU-a1, GPU-b2,GPU-c3") == [
        {"CUDA_VISIBLE_DEVICES": d} for d in ("GPU-a1", "GPU-b2", "GPU-c3")]


def test_the_report_says_when_cells_ran_on_different_hardware():
    runs_ = [{"cell": i, "arm": arm, "seed": seed, "status": "finished", "hardware": hw}
             for i, (arm, seed, hw) in enumerate([
                 ("lcr_lambda=0", 0, "AMD EPYC 7B13, no GPU"), ("lcr_lambda=0", 1, "Xeon, A100"),
                 ("lcr_lambda=4", 0, "AMD EPYC 7B13, no GPU"), ("lcr_lambda=4", 1, "Xeon, V100")])]
    hardware = study.hardware_of(runs_, "lcr_lambda=0")
    assert hardware["differs"] and [k["cells"] for k in hardware["kinds"]] == [[0, 2], [1], [3]]
    assert hardware["pairs_across"] == [{"arm": "lcr_lambda=4", "seed": 1,
                                         "hardware": "Xeon, V100",
                                         "control_hardware": "Xeon, A100"}]
    (text,) = command.hardware_notes({"hardware": hardware})
    assert "**The cells ran on different hardware**" in text
    assert "- AMD EPYC 7B13, no GPU: cells 0, 2" in text and "lcr_lambda=4 seed 1." in text
    same = study.hardware_of(runs_[:1] + runs_[2:3], "lcr_lambda=0")
    assert command.hardware_notes({"hardware": same}) == [
        "Every finished cell ran on AMD EPYC 7B13, no GPU."]
    older = [dict(r, hardware=provenance.hardware(None)) for r in runs_]  # no provenance
    (note,) = command.hardware_notes({"hardware": study.hardware_of(older, "lcr_lambda=0")})
    assert note.startswith("The finished cells record no hardware")


def test_provenance_names_the_worker_under_each_scheduler(monkeypatch):
    for variable in provenance.SCHEDULER_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    assert provenance.worker()["name"] == f"{socket.gethostname()}:{os.getpid()}"
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "4")
    assert provenance.worker()["name"].endswith(" (Job index 4)")
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "70")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "5")
    identity = provenance.worker()
    assert identity["name"].endswith(" (Slurm array 70_5)") and identity["SLURM_JOB_ID"] == "77"

def test_provenance_names_the_commit_of_a_checkout():
    tracked = subprocess.run(["git", "-C", ROOT, "ls-files", "--error-unmatch",
                              "lcr_larq/__init__.py"], capture_output=True)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    project = provenance.project()
    assert project["version"] == lcr_larq.__version__ and project["commit"] == head
    dirty = subprocess.run(["git", "-C", ROOT, "diff", "--quiet", "HEAD"]).returncode == 1
    assert project["dirty"] is dirty

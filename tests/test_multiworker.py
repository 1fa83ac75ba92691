"""--strategy multiworker: two worker processes on localhost train one run.

TF_CONFIG names two workers on 127.0.0.1; both run the lcr-train command of
the rehearsal in docs/cluster.md (with the two flags it says the test adds)
into one --output-dir. The worker that is
not the chief starts first and the chief only once that worker says it waits
for it: they must still finish with identical weights, only the chief
(worker 0) writes in the run directory, and the other worker leaves nothing
behind, there or in its temporary directory. A worker whose chief never
answers fails in one line naming the chief's address.
"""

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time

import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rehearsal():
    """The lcr-train flags of the rehearsal in docs/cluster.md (its cluster checked)."""
    text = open(os.path.join(ROOT, "docs", "cluster.md"), encoding="utf-8").read()
    section = text[text.index("## One run on many machines: --strategy multiworker"):]
    block = section[section.index("### Rehearse it on one machine"):]
    block = block.split("```bash\n", 1)[1].split("```", 1)[0].replace("\\\n", "")
    flags = shlex.split(re.search(r'^TRAIN="(.*)"$', block, re.M).group(1))
    cluster = re.search(r"^CLUSTER='(.*)'$", block, re.M).group(1)
    assert json.loads("{" + cluster + "}")["cluster"]["worker"][0].startswith("127.0.0.1:")
    tasks = re.findall(r'^TF_CONFIG="\{\$CLUSTER, \\"task\\": \{\\"type\\": \\"worker\\", '
                       r'\\"index\\": (\d)\}\}" lcr-train \$TRAIN &$', block, re.M)
    assert tasks == ["1", "0"] and block.rstrip().endswith("wait")
    return flags


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def tf_config(cluster, index):
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})


def wait_for_text(path, text, process, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return
        assert process.poll() is None, path.read_text()
        time.sleep(0.2)
    raise AssertionError(f"no {text!r} in {path}")


def test_two_workers_train_identical_weights_and_the_chief_writes(tmp_path):
    out = tmp_path / "run"
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    flags = rehearsal()
    at = flags.index("--output-dir")
    flags[at + 1] = str(out)
    # Neither validation nor BN recalibration's length is checked here: one trace and
    # 99 batches fewer (docs/cluster.md says the test adds these two flags).
    command = [sys.executable, "-m", "lcr_larq.cli.train", *flags, "--validation-split", "0",
               "--bn-recalibration-batches", "1"]
    # Worker 1 waits longer than the default: a loaded machine starts the chief slowly.
    patient = [*command, "--chief-timeout", "600"]
    workers, logs = [], []
    try:
        for index in (1, 0):  # the other worker first, the chief once it waits
            log = tmp_path / f"worker{index}"
            (log / "tmp").mkdir(parents=True)
            env = {**os.environ, "TF_CONFIG": tf_config(cluster, index),
                   "CUDA_VISIBLE_DEVICES": "", "TMPDIR": str(log / "tmp")}
            with open(log / "out", "w") as stdout, open(log / "err", "w") as stderr:
                workers.append(subprocess.Popen(patient if index == 1 else command, env=env,
                                                cwd=ROOT, stdout=stdout, stderr=stderr,
                                                text=True))
            logs.append(log)
            if index == 1:
                wait_for_text(log / "err", f"for the chief at {cluster['worker'][0]}",
                              workers[0])
                assert not out.exists()
        for worker, log in zip(workers, logs):
            worker.wait(timeout=600)
            assert worker.returncode == 0, (log / "err").read_text()[-3000:]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    digests = [re.search(r"sha256 ([0-9a-f]{16})", (log / "out").read_text()).group(1)
               for log in logs]
    assert digests[0] == digests[1]
    results = json.loads((out / "results.json").read_text())
    assert results["weights_sha256"].startswith(digests[0])
    with open(out / "history.csv") as handle:
        assert [line.split(",")[0] for line in handle.read().splitlines()[1:]] == ["0", "1"]
    # One set of outputs: nothing of the other worker is left, here or in its scratch.
    left = sorted(p.name for p in out.iterdir())
    assert left == sorted([".lock", "bnn.keras", "config.yaml", "history.csv", "logs",
                           "model.keras", "results.json"]), left
    assert list((logs[0] / "tmp").iterdir()) == []


def test_a_worker_whose_chief_never_answers_fails_in_one_line_naming_it(
        tmp_path, monkeypatch, capsys):
    (port,) = free_ports(1)
    chief = f"127.0.0.1:{port}"
    monkeypatch.setenv("TF_CONFIG", tf_config({"worker": [chief, "127.0.0.1:1"]}, 1))
    start = time.monotonic()
    code = train.main(["--strategy", "multiworker", "--chief-timeout", "1.5",
                       "--output-dir", str(tmp_path / "run"), "--verbose", "0"])
    assert code == 2 and time.monotonic() - start < 10
    waiting, error = capsys.readouterr().err.strip().splitlines()
    assert waiting == f"waiting up to 1.5 s for the chief at {chief}"
    assert error.startswith(f"error: the chief at {chief} did not answer within 1.5 s: ")
    assert "--chief-timeout" in error
    assert not (tmp_path / "run").exists()

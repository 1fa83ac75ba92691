"""--strategy multiworker: two worker processes on localhost train one run.

TF_CONFIG names two workers on 127.0.0.1; both run the same train.py command
into one --output-dir. They must finish with identical weights, and only the
chief (worker 0) writes the run's files.
"""

import json
import os
import re
import socket
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_train_identical_weights_and_the_chief_writes(tmp_path):
    out = tmp_path / "run"
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    command = [sys.executable, os.path.join(ROOT, "train.py"), "--strategy", "multiworker",
               "--epochs", "2", "--steps-per-epoch", "2", "--batch-size", "32",
               "--lcr-lambda", "0", "--model", "resnet8", "--input-size", "8",
               "--output-dir", str(out), "--verbose", "0"]
    workers = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}}),
            "CUDA_VISIBLE_DEVICES": ""}
        workers.append(subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True))
    outputs = []
    try:
        for worker in workers:
            stdout, stderr = worker.communicate(timeout=600)
            outputs.append(stdout)
            assert worker.returncode == 0, stderr[-3000:]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    digests = [re.search(r"sha256 ([0-9a-f]{16})", text).group(1) for text in outputs]
    assert digests[0] == digests[1]
    results = json.loads((out / "results.json").read_text())
    assert results["weights_sha256"].startswith(digests[0])
    with open(out / "history.csv") as handle:
        assert [line.split(",")[0] for line in handle.read().splitlines()[1:]] == ["0", "1"]
    # One set of outputs: nothing of the other worker is left.
    left = sorted(p.name for p in out.iterdir())
    assert left == sorted([".lock", "bnn.keras", "config.yaml", "history.csv", "logs",
                           "model.keras", "results.json"]), left

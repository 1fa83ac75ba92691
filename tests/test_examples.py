"""The example programs of ``examples/``, run as scripts (``__main__``, with the
command line a user types) on tiny settings: what each prints and writes is what it
says. They run in the test's process, which has TensorFlow loaded already; the study's
runs are processes of their own, as always."""

import contextlib
import io
import json
import os
import re
import runpy
import sys

import numpy as np
import pytest
import tensorflow as tf

import lcr_larq
from lcr_larq.data import load_dataset
from lcr_larq.export import flatbuffer_ops

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: The settings that keep a training to two steps.
TINY = ("--epochs", "1", "--steps-per-epoch", "2")


def run_example(name: str, *args: str, cwd) -> str:
    """``python examples/<name> args`` in ``cwd``; what it printed (it must succeed)."""
    path = os.path.join(ROOT, "examples", name)
    argv, here, printed = sys.argv, os.getcwd(), io.StringIO()
    sys.argv = [path, *args]
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(printed):
            runpy.run_path(path, run_name="__main__")
    except SystemExit as done:
        assert done.code in (0, None), f"{name} exited with {done.code}"
    finally:
        sys.argv = argv
        os.chdir(here)
    return printed.getvalue()


def test_every_example_is_tested_and_listed_in_the_examples_readme():
    examples = sorted(n for n in os.listdir(os.path.join(ROOT, "examples")) if n.endswith(".py"))
    source = open(__file__, encoding="utf-8").read()
    tested = set(re.findall(r'run_example\(\s*"(\w+\.py)"', source))
    readme = open(os.path.join(ROOT, "examples", "README.md"), encoding="utf-8").read()
    assert set(examples) == tested
    assert set(re.findall(r"\]\((\w+\.py)\)", readme)) == set(examples)


def test_own_model_trains_saves_what_it_scored_and_converts(tmp_path):
    out = run_example("own_model.py", *TINY, "--output", "out", cwd=tmp_path)
    printed = float(re.search(r"test accuracy ([0-9.]+) %", out)[1])
    bnn = tf.keras.models.load_model(tmp_path / "out" / "bnn.keras")
    assert not any(isinstance(layer, lcr_larq.LipschitzRetention) for layer in bnn.layers)
    bnn.compile(metrics=["accuracy"])
    data = load_dataset("digits", batch_size=128, seed=0)
    scored = bnn.evaluate(data.test, return_dict=True, verbose=0)["accuracy"]
    assert abs(100 * scored - printed) < 0.01
    ops = flatbuffer_ops((tmp_path / "out" / "bnn_lce.tflite").read_bytes())
    assert ops.count("LceBconv2d") == 3  # the three binary convolutions


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """study_on_npz.py on its digits stand-in: λ = 0 and 4, one seed, ResNet-8, and what
    it printed (the study command is a process of its own: its output is not in it)."""
    directory = tmp_path_factory.mktemp("study")
    out = run_example("study_on_npz.py", "--seeds", "1", "--output-dir", "study", *TINY,
                      "--model", "resnet8", "--validation-split", "0", cwd=directory)
    return directory / "study", out


def test_study_on_npz_writes_the_arrays_and_reports_the_paired_difference(study):
    directory, out = study
    arrays = np.load(directory / "digits.npz")
    assert arrays["x"].dtype == np.uint8 and arrays["x"].shape == (1797, 8, 8)
    assert arrays["x"].max() == 255 and sorted(set(arrays["y"].tolist())) == list(range(10))
    report = json.loads((directory / "study.json").read_text())
    accuracy = {run["lcr_lambda"]: run["test_accuracy"] for run in report["runs"]}
    assert sorted(accuracy) == [0, 4] and report["settings"]["dataset"].startswith("npz:")
    shown = float(re.search(r"paired seeds: ([+-][0-9.]+) points", out)[1])
    assert abs(shown - 100 * (accuracy[4] - accuracy[0])) < 0.006
    assert "one seed: no interval" in out


def test_read_runs_lists_every_run_of_the_study_and_draws_them(study):
    directory, _ = study
    out = run_example("read_runs.py", "study", "--output", "curves.png", cwd=directory.parent)
    rows = [line.split() for line in out.splitlines() if line.startswith("study/")]
    for name in ("lcr_lambda=0", "lcr_lambda=4"):
        results = json.loads((directory / name / "seed_0" / "results.json").read_text())
        row = next(r for r in rows if r[0] == f"study/{name}/seed_0")
        assert float(row[-1].rstrip("%")) == pytest.approx(100 * results["test_accuracy"],
                                                           abs=0.006)
    assert len(rows) == 2
    assert (directory.parent / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

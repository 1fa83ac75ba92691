"""Runs written by lcr-larq 0.3.0 (tests/data/run-0.3.0) still load, evaluate and resume,
and a run written now has their format: the same files, keys and saved layer configs."""

import json
import shutil
import zipfile
from pathlib import Path

import pytest
import tensorflow as tf
import yaml

import lcr_larq
from lcr_larq.cli import evaluate as evaluate_command
from lcr_larq.cli import train as train_command
from lcr_larq.training import runs

OLD = Path(__file__).parent / "data" / "run-0.3.0"


def lcr_config(path: Path) -> dict:
    """The saved config of the LCR layer in a ``model.keras`` file, as stored."""
    with zipfile.ZipFile(path) as archive:
        layers = json.loads(archive.read("config.json"))["config"]["layers"]
    (layer,) = [la for la in layers if la["class_name"].endswith("LipschitzRetention")]
    return layer["config"]


@pytest.fixture
def old_run(tmp_path):
    def copy(name: str) -> Path:
        shutil.copytree(OLD / name, tmp_path / name)
        return tmp_path / name

    return copy


def test_a_finished_run_of_0_3_0_loads_and_evaluates(old_run, capsys):
    path = old_run("finished")
    results = json.loads((path / "results.json").read_text())
    run = runs.load_run(str(path))  # bnn.keras checked against the run's weights_sha256
    assert run.config.model == "resnet8" and run.config.uses_lcr
    assert str(run.dataset_spec) == "digits" and run.bn_recalibration is None
    model = tf.keras.models.load_model(path / "model.keras", compile=False)
    lcr = lcr_larq.lcr_layer(model)
    assert (lcr.lcr_lambda, lcr.lcr_beta, lcr.lcr_samples, lcr.lcr_every) == (4.0, 2.0, 32, 2)
    assert runs.weights_digest(lcr_larq.strip_lcr(model)) == results["weights_sha256"]

    report = path / "robustness.json"
    code = evaluate_command.main(["--model-dir", str(path), "--corruptions", "none",
                                  "--output", str(report), "--quiet", "--no-plot"])
    assert code == 0, capsys.readouterr().err
    evaluated = json.loads(report.read_text())
    assert evaluated["clean_accuracy"] == pytest.approx(results["test_accuracy"], abs=1e-6)


def test_a_killed_run_of_0_3_0_resumes_from_its_checkpoint(old_run, capsys):
    path = old_run("killed")
    assert not (path / "results.json").exists()
    before = runs.read_history(str(path))
    code = train_command.main(["--config", str(path / "config.yaml"), "--output-dir",
                               str(path), "--verbose", "0"])
    assert code == 0, capsys.readouterr().err
    results = json.loads((path / "results.json").read_text())
    assert results["resumed"] and results["resumed_from_epoch"] == 1 and results["epochs"] == 2
    history = runs.read_history(str(path))
    assert before["epoch"] == [0.0] and history["epoch"] == [0.0, 1.0]
    assert history["loss"][0] == before["loss"][0]  # the epoch of 0.3.0 kept, one added
    assert not (path / "backup").exists()


def test_a_run_written_now_has_the_format_of_0_3_0(trained_run):
    old, new = OLD / "finished", Path(trained_run)
    files = {p.name for p in old.iterdir()}
    assert files <= {p.name for p in new.iterdir()}
    for name in ("config.yaml",):
        assert list(yaml.safe_load((old / name).read_text())) == list(
            yaml.safe_load((new / name).read_text()))  # the same keys, in the same order
    # results.json keeps every key of 0.3.0 and adds only those of this release
    before = set(json.loads((old / "results.json").read_text()))
    now = set(json.loads((new / "results.json").read_text()))
    assert before <= now and now - before == {"provenance", "input_size", "input_shape"}
    assert set(lcr_config(old / "model.keras")) == set(lcr_config(new / "model.keras"))

"""The promises to a user, one test per class of hostile input: bounded errors that
name the right cause, a run's own model, output that never fails, nothing left behind."""

import dataclasses
import importlib
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from helpers import one_line_error

from lcr_larq import cli, data, settings
from lcr_larq.cli import export as export_command
from lcr_larq.cli import train as train_command
from lcr_larq.errors import ConfigError, DataError
from lcr_larq.evaluation.report import EvaluateSettings
from lcr_larq.experiments.study import StudySettings
from lcr_larq.experiments.tuning import TuneConfig
from lcr_larq.training import TrainConfig, checked_data, run, runs
from lcr_larq.training.checkpoint import RunCheckpoint
from models import MODELS, build_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(model="resnet8", epochs=1, steps_per_epoch=1, batch_size=32, lcr_lambda=0.0,
            input_size=8, bn_recalibration_batches=1, verbose=0)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    run(TrainConfig(**TINY, output_dir=str(out)))
    return out


# ------------------------------------------------------------------ 1. bounded echo
def test_an_error_repeats_at_most_a_bounded_part_of_its_input(tmp_path, capsys):
    # A few hundred bytes of nested aliases stand for 10^9 numbers (a "billion laughs").
    levels = ["&l0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"] + [
        f"&l{k} [" + ", ".join([f"*l{k - 1}"] * 10) + "]" for k in range(1, 9)]
    (tmp_path / "bomb.yaml").write_text("epochs: [" + ", ".join(levels) + "]\n")
    assert (tmp_path / "bomb.yaml").stat().st_size < 1000
    start = time.time()
    with pytest.raises(ConfigError) as error:
        settings.load_recipe(str(tmp_path / "bomb.yaml"), TrainConfig)
    assert time.time() - start < 5
    assert len(str(error.value)) < 400, len(str(error.value))
    # every other path that echoes a user's value: flags, --vary, --dataset
    long_text = "x" * 100_000
    for make in (lambda: TrainConfig(dataset=long_text), lambda: TrainConfig(model=long_text),
                 lambda: StudySettings(vary=(f"lcr_lambda={long_text}",)),
                 lambda: TrainConfig(optimizer=long_text)):
        with pytest.raises(ConfigError) as error:
            make()
        assert len(str(error.value)) < 600


def test_echo_formats_only_what_it_shows():
    huge = [[list(range(10))] * 10**6] * 10**6  # 10^13 items, never formatted whole
    start = time.time()
    text = settings.echo(huge)
    assert len(text) <= settings.ECHO_LIMIT and text.endswith("…") and time.time() - start < 1


# ------------------------------------------------------------------ 2. duplicate keys
def test_a_recipe_with_a_key_given_twice_is_refused_naming_it(tmp_path):
    recipe = tmp_path / "twice.yaml"
    recipe.write_text("model: resnet8\nlcr_lambda: 4\nepochs: 3\nlcr_lambda: 0\n")
    with pytest.raises(ConfigError, match=r"key 'lcr_lambda' is given twice \(lines 2 and 4\)"):
        settings.load_recipe(str(recipe), TrainConfig)
    nested = tmp_path / "nested.yaml"  # any mapping, also below the top
    nested.write_text("vary:\n  - lcr_lambda=0,4\nseeds: 2\nseeds: 3\n")
    with pytest.raises(ConfigError, match="'seeds' is given twice"):
        settings.load_recipe(str(nested), StudySettings)


# ------------------------------------------------------------------ 3. the run's own model
def test_a_command_refuses_a_model_file_that_is_not_the_runs(finished_run, tmp_path, capsys):
    run_dir = tmp_path / "swapped"
    shutil.copytree(finished_run, run_dir)
    other = build_model("resnet8", (8, 8, 1), 10)  # the same architecture, other weights
    other.save(run_dir / "bnn.keras")
    assert export_command.main(["--model-dir", str(run_dir)]) == 2
    assert "is not the model this run trained" in one_line_error(capsys)
    plain = tf.keras.Sequential([tf.keras.Input((8, 8, 1)), tf.keras.layers.Flatten(),
                                 tf.keras.layers.Dense(10)])
    plain.save(run_dir / "bnn.keras")  # no binary layer at all
    assert export_command.main(["--model-dir", str(run_dir)]) == 2
    assert "is not the model this run trained" in one_line_error(capsys)
    results = run_dir / "results.json"
    results.write_text(results.read_text().replace('"weights_sha256"', '"old_digest"'))
    assert export_command.main(["--model-dir", str(run_dir)]) == 2  # a run without the digest
    assert "holds no binary layer" in one_line_error(capsys)
    assert export_command.main(["--model-dir", str(finished_run / "results.json")]) == 2
    err = one_line_error(capsys)
    assert "is not a model: pass the run directory" in err and str(finished_run) in err


# ------------------------------------------------------------------ 4. the right cause
def test_a_run_being_trained_is_said_so_by_every_command_that_reads_it(finished_run, tmp_path,
                                                                        capsys):
    """An --overwrite training in progress: its models are gone, its lock names it."""
    run_dir = tmp_path / "training"
    shutil.copytree(finished_run, run_dir)
    for name in ("bnn.keras", "model.keras", "results.json"):
        (run_dir / name).unlink()
    with runs.RunLock(str(run_dir)):  # as a training holds it, from another descriptor
        for command in ("export", "evaluate", "diagnose", "plots"):
            main = importlib.import_module(f"lcr_larq.cli.{command}").main
            assert main(["--model-dir", str(run_dir)]) == 2
            assert one_line_error(capsys) == (
                f"error: {run_dir} is being trained right now (pid {os.getpid()}, named in its "
                ".lock): wait for the training to end, then rerun this command"), command
    assert runs.training_pid(str(run_dir)) is None  # the training ended: the lock is free
    assert export_command.main(["--model-dir", str(run_dir)]) == 2
    assert "holds no bnn.keras or model.keras" in one_line_error(capsys)



@pytest.mark.parametrize("full", ["disk", "memory"])
def test_a_full_disk_and_a_full_memory_are_told_apart(tmp_path, capsys, monkeypatch, full):
    """TensorFlow raises ResourceExhaustedError for both; only its message tells."""
    message = ("/run/backup/ckpt-1_temp/part-00000; No space left on device [Op:SaveV2]"
               if full == "disk" else "OOM when allocating tensor with shape[128,16,8,8]")

    def exhausted(self, epoch, logs=None):
        raise tf.errors.ResourceExhaustedError(None, None, message)

    monkeypatch.setattr(RunCheckpoint, "on_epoch_end", exhausted)
    out = tmp_path / "run"
    code = train_command.main([f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
                              + ["--output-dir", str(out)])
    err = one_line_error(capsys)
    assert code == 2
    if full == "disk":
        assert "no space left on the device of" in err and str(out) in err
        assert "memory" not in err
    else:
        assert "out of memory" in err and "--batch-size" in err


def test_a_full_disk_outside_training_is_named_too(tmp_path, capsys):
    def body():
        raise OSError(28, "No space left on device", str(tmp_path / "report.json"))

    assert cli.run(body) == 2
    assert "no space left on the device writing" in one_line_error(capsys)


# ------------------------------------------------------------------ 5. output encodings
def test_output_never_fails_on_the_terminals_encoding(finished_run):
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    for argv in (["--help"], ["--output-dir", str(finished_run), *(
            f"--{k.replace('_', '-')}={v}" for k, v in TINY.items())]):
        proc = subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), *argv],
                              capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr[-400:]
    assert "lambda=0 beta=2" in proc.stdout and "already holds this run" in proc.stdout
    lines = [line for line in proc.stdout.splitlines() if line.startswith("|")]
    assert len({len(line) for line in lines}) == 1  # the table's columns still line up


# ------------------------------------------------------------------ 6. offline TFDS
def test_an_offline_tfds_dataset_fails_at_once_leaving_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(data.tfds, "reachable", lambda url, timeout=3.0: False)
    tfds_dir = tmp_path / "tfds"
    tfds_dir.mkdir()
    start = time.time()
    code = train_command.main(["--dataset", "cifar10", "--data-dir", str(tfds_dir),
                               "--output-dir", str(tmp_path / "run")])
    err = one_line_error(capsys)
    assert code == 2 and time.time() - start < 30
    assert "cannot be reached" in err and "tfds build cifar10" in err
    assert os.listdir(tfds_dir) == [] and not (tmp_path / "run").exists()


# ------------------------------------------------------------------ 7. images too small
def test_images_below_a_models_minimum_are_refused_with_advice_that_works(tmp_path, capsys):
    """Images of the user's smaller than the model takes, and an --input-size
    below it, are refused before anything is built, naming their real size
    and the smallest --input-size every check accepts, which then works."""
    out = tmp_path / "run"
    for shape, model, least in (((1, 1), "resnet20", 8), ((1, 4000), "resnet8", 8),
                                ((20, 20), "quicknet", 64)):
        tiny = tmp_path / f"{shape[0]}x{shape[1]}.npz"
        np.savez(tiny, x=np.zeros((40, *shape, 1), np.uint8), y=np.arange(40) % 4)
        config = TrainConfig(model=model, dataset=f"npz:{tiny}", output_dir=str(out), verbose=0)
        with pytest.raises(ConfigError) as error:
            run(config)
        minimum = MODELS[model].min_input_size
        assert str(error.value) == (
            f"--model {model} needs images of at least {minimum}×{minimum}, npz:{tiny} has "
            f"{shape[0]}×{shape[1]}: pass --input-size {least} (or larger) or another --model")
        assert not out.exists()
        advised = int(re.search(r"--input-size (\d+)", str(error.value)).group(1))
        followed = dataclasses.replace(config, input_size=advised)  # the setting takes it
        assert checked_data(followed).input_shape == (least, least, 1)  # and so does the model
    # a size the user gives below the model's minimum: one line, before any data is read
    code = train_command.main(["--model", "birealnet", "--input-size", "16"])
    assert code == 2 and one_line_error(capsys) == (
        "error: --model birealnet needs images of at least 32×32, got --input-size 16: pass "
        "--input-size 32 (or larger) or another --model")
    empty = tmp_path / "empty.npz"
    np.savez(empty, x=np.zeros((40, 0, 0, 1), np.uint8), y=np.arange(40) % 4)
    with pytest.raises(DataError, match="H, W ≥ 1"):
        data.load_dataset(f"npz:{empty}")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_summary_of_every_model_works_at_the_defaults(name, capsys):
    assert train_command.main(["--model", name, "--summary"]) == 0
    out = capsys.readouterr().out
    first = out.splitlines()[0]
    least = MODELS[name].min_input_size
    if least > 16:  # the default dataset's 16×16 digits, raised as a run raises them
        assert first.startswith(f"{name} for digits: {least}×{least} images (resized from "
                                f"16×16: {name} needs at least {least}×{least}), "), first
    else:
        assert first.startswith(f"{name} for digits: 16×16 images"), first
    assert "Total" in out or "MACs" in out


# ------------------------------------------------------------------ 8. nothing left behind
@pytest.mark.parametrize("command", ["train", "tune", "study"])
def test_a_refused_run_leaves_no_directory(tmp_path, capsys, command):
    """Data that fails its checks fails every command that trains before it writes."""
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((10, 8, 8, 1), np.float32) + 3.0, y=np.arange(10) % 2)
    out = tmp_path / "out"
    main = importlib.import_module(f"lcr_larq.cli.{command}").main
    assert main(["--dataset", f"npz:{bad}", "--output-dir", str(out), "--epochs", "1"]) == 2
    assert "save uint8" in one_line_error(capsys)
    assert not out.exists()


@pytest.mark.parametrize("make", [
    lambda: TrainConfig(output_dir=""), lambda: TrainConfig(output_dir="  "),
    lambda: EvaluateSettings(model_dir="runs/a", output=""),
    lambda: TuneConfig(output_dir=""),
])
def test_an_empty_path_is_refused_not_taken_for_the_default(make):
    with pytest.raises(ConfigError, match="is empty"):
        make()


# ------------------------------------------------------------------ 9. one list syntax
def _list_flags(settings_class):
    kinds = settings.kinds(settings_class)
    return [f for f in dataclasses.fields(settings_class)
            if kinds[f.name].sequence and not f.metadata.get("repeat")]


@pytest.mark.parametrize("name", cli.commands())
def test_every_list_flag_takes_commas_and_spaces_alike(name):
    """Every list-valued flag of every command: ``a,b`` and ``a b`` give one value."""
    settings_class = importlib.import_module(f"lcr_larq.cli.{name}").main.settings
    parser = cli.parser(f"lcr-{name}", "", settings_class)
    for f in _list_flags(settings_class):
        flag = settings.flag_name(f.name)
        values = [str(v) for v in f.default or ()] or ["1", "2"]
        values = values[:2] if len(values) >= 2 else values * 2
        if f.metadata.get("choices") is not None:
            values = [str(c) for c in list(f.metadata["choices"])[:2]]
        spaced = parser.parse_args([flag, *values])
        commas = parser.parse_args([flag, ",".join(values)])
        assert getattr(spaced, f.name) == getattr(commas, f.name), flag
        assert len(getattr(commas, f.name)) == len(values), flag


# The first lines of the main job: test_train.py's end-to-end run.

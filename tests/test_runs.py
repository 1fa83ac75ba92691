"""One run per directory, and a resume that loses nothing: every window a run can
be killed in, divergence, locking, finished runs, settings that changed."""

import csv
import errno
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import train
from lcr_larq import training
from lcr_larq.errors import RunError
from lcr_larq.training import TrainConfig, compile_for_evaluation, compile_model, runs

# Small and fast: no LCR (its tracing dominates tiny runs), ResNet-8 on 8×8 digits.
FAST = dict(model="resnet8", epochs=3, steps_per_epoch=2, batch_size=32, verbose=0,
            lcr_lambda=0.0, input_size=8)


def config(path, **extra):
    return TrainConfig(output_dir=str(path), **{**FAST, **extra})


def rows(path):
    with open(path / "history.csv", newline="") as handle:
        return list(csv.DictReader(handle))


class Interrupt(tf.keras.callbacks.Callback):
    """Ctrl-C at the end of an epoch, after every other callback."""

    def __init__(self, after_epoch):
        super().__init__()
        self.after_epoch = after_epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.after_epoch:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole")
    return out, training.run(config(out))


@pytest.fixture(scope="module")
def killed_after_epoch_0(tmp_path_factory):
    """A run interrupted after its first epoch (copy it before changing it)."""
    out = tmp_path_factory.mktemp("killed")
    with pytest.raises(KeyboardInterrupt):
        training.run(config(out), extra_callbacks=[Interrupt(after_epoch=0)])
    return out


def copy_of(run, path):
    shutil.copytree(run, path, dirs_exist_ok=True)
    (path / runs.LOCK).unlink(missing_ok=True)
    return path


def test_a_resumed_run_reproduces_the_uninterrupted_one(uninterrupted, killed_after_epoch_0,
                                                       tmp_path):
    whole, expected = uninterrupted
    copy_of(killed_after_epoch_0, tmp_path)
    state = json.loads((tmp_path / "backup" / "state.json").read_text())
    assert state["epoch"] == 1 and [r["epoch"] for r in rows(tmp_path)] == ["0"]
    resumed = training.run(config(tmp_path))
    assert resumed["resumed"] is True and resumed["resumed_from_epoch"] == 1
    assert resumed["test_accuracy"] == expected["test_accuracy"]
    assert resumed["test_loss"] == expected["test_loss"]
    assert resumed["weights_sha256"] == expected["weights_sha256"]
    assert rows(tmp_path) == rows(whole)  # every epoch once, the same values
    assert not (tmp_path / "backup").exists()


def test_killed_between_the_history_row_and_its_checkpoint(uninterrupted, tmp_path):
    """The row of an epoch whose checkpoint was not written is dropped and
    written again when that epoch is trained again."""
    whole, expected = uninterrupted
    with pytest.raises(KeyboardInterrupt):
        training.run(config(tmp_path), extra_callbacks=[Interrupt(after_epoch=1)])
    backup = tmp_path / "backup"
    assert json.loads((backup / "state.json").read_text())["epoch"] == 2
    assert len(rows(tmp_path)) == 2
    # As if killed after epoch 3's row but before its checkpoint: the backup of
    # epoch 2 with the history of epoch 3.
    shutil.copytree(backup, tmp_path / "saved")
    with pytest.raises(KeyboardInterrupt):
        training.run(config(tmp_path), extra_callbacks=[Interrupt(after_epoch=2)])
    shutil.rmtree(backup)
    shutil.copytree(tmp_path / "saved", backup)
    assert len(rows(tmp_path)) == 3
    resumed = training.run(config(tmp_path))
    assert resumed["resumed_from_epoch"] == 2
    assert rows(tmp_path) == rows(whole)
    assert resumed["test_accuracy"] == expected["test_accuracy"]


def test_killed_after_the_last_epoch_finishes_without_training_again(uninterrupted, tmp_path):
    whole, expected = uninterrupted
    with pytest.raises(KeyboardInterrupt):  # during evaluation and saving
        training.run(config(tmp_path), extra_callbacks=[Interrupt(after_epoch=2)])
    assert json.loads((tmp_path / "backup" / "state.json").read_text())["epoch"] == 3
    assert not (tmp_path / "results.json").exists()
    recorder = []

    class Epochs(tf.keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            recorder.append(epoch)

    resumed = training.run(config(tmp_path), extra_callbacks=[Epochs()])
    assert recorder == [] and resumed["resumed_from_epoch"] == 3
    assert resumed["test_accuracy"] == expected["test_accuracy"]
    assert resumed["final_epoch_metrics"]["loss"] == pytest.approx(
        expected["final_epoch_metrics"]["loss"])
    assert rows(tmp_path) == rows(whole)


@pytest.mark.parametrize("damage, needle", [
    (lambda b: (b / "state.json").write_text("{not json"), "unreadable state.json"),
    (lambda b: (b / "state.json").write_text('{"epoch": 1, "checkpoint": "ckpt-7"}'),
     "no checkpoint ckpt-7"),
    (lambda b: [p.write_bytes(b"\x00 truncated") for p in b.glob("ckpt-*")], "corrupt"),
])
def test_a_damaged_backup_is_a_one_line_error_not_a_fresh_start(killed_after_epoch_0, tmp_path,
                                                                 capsys, damage, needle):
    copy_of(killed_after_epoch_0, tmp_path)
    damage(tmp_path / "backup")
    code = train.main(["--output-dir", str(tmp_path), *flags(FAST)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error:"), err
    assert needle in err and "delete it" in err
    assert [r["epoch"] for r in rows(tmp_path)] == ["0"]  # nothing retrained, nothing lost


def flags(values):
    out = []
    for key, value in values.items():
        out += [f"--{key.replace('_', '-')}", str(value)]
    return out


def test_backup_as_a_file_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "backup").write_text("not a folder")
    code = train.main(["--output-dir", str(tmp_path), *flags(FAST)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "is a file, not the checkpoint folder" in err, err


def test_resuming_with_other_settings_is_refused_naming_them(killed_after_epoch_0, tmp_path,
                                                             capsys):
    copy_of(killed_after_epoch_0, tmp_path)
    recipe = (tmp_path / "config.yaml").read_text()
    code = train.main(["--output-dir", str(tmp_path), *flags({**FAST, "lcr_lambda": 4.0,
                                                             "model": "resnet18"})])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "run to resume with other settings (--model, --lcr-lambda)" in err
    assert (tmp_path / "config.yaml").read_text() == recipe  # left as it was
    assert [r["epoch"] for r in rows(tmp_path)] == ["0"]
    # Killed before its first checkpoint: nothing to resume, still not another run's.
    shutil.rmtree(tmp_path / "backup")
    code = train.main(["--output-dir", str(tmp_path), *flags({**FAST, "lcr_lambda": 4.0})])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "holds a started run with other settings (--lcr-lambda)" in err, err
    assert (tmp_path / "config.yaml").read_text() == recipe


def test_a_finished_run_is_left_alone_unless_overwritten(uninterrupted, capsys):
    whole, expected = uninterrupted
    before = (whole / "results.json").read_text()
    code = train.main(["--output-dir", str(whole), *flags(FAST)])
    out = capsys.readouterr().out
    assert code == 0 and "already holds this run, finished" in out
    assert (whole / "results.json").read_text() == before
    code = train.main(["--output-dir", str(whole), *flags({**FAST, "seed": 5})])
    err = capsys.readouterr().err
    assert code == 2 and "finished run with other settings (--seed)" in err


def test_overwrite_trains_again(uninterrupted, tmp_path):
    whole, first = uninterrupted
    copy_of(whole, tmp_path)
    (tmp_path / "history.csv").write_text("epoch,loss\n0,99\n")  # replaced, not appended to
    again = training.run(config(tmp_path, overwrite=True))
    assert again["resumed"] is False and again.get("already_finished") is None
    assert again["weights_sha256"] == first["weights_sha256"]  # deterministic per seed
    assert rows(tmp_path) == rows(whole)


def test_one_run_per_directory(tmp_path):
    with runs.RunLock(str(tmp_path)):
        with pytest.raises(RunError, match=f"another run \\(pid {os.getpid()}\\) is using"):
            training.run(config(tmp_path))
    assert not (tmp_path / "results.json").exists()
    # A holder killed with SIGKILL takes its lock with it.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time\n"
         f"f = open({str(tmp_path / runs.LOCK)!r}, 'a+'); fcntl.flock(f, fcntl.LOCK_EX)\n"
         "f.seek(0); f.truncate(); f.write('4242'); f.flush()\n"
         "print('held', flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunError, match="another run \\(pid 4242\\)"):
            runs.RunLock(str(tmp_path)).__enter__()
    finally:
        holder.kill()
        holder.wait()
    with runs.RunLock(str(tmp_path)):
        pass


@pytest.mark.parametrize("code", [errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP])
def test_a_filesystem_without_flock_runs_unlocked(tmp_path, monkeypatch, code):
    """Lustre without ``-o flock`` fails the call itself: not another run's lock."""

    def flock_failing_with(failure):
        def flock(handle, operation):
            raise OSError(failure, os.strerror(failure))
        return flock

    monkeypatch.setattr(runs.fcntl, "flock", flock_failing_with(code))
    with runs.RunLock(str(tmp_path)) as lock:
        assert not lock.locked
    # Held by another process: refused as before.
    monkeypatch.setattr(runs.fcntl, "flock", flock_failing_with(errno.EWOULDBLOCK))
    with pytest.raises(RunError, match="another run"):
        runs.RunLock(str(tmp_path)).__enter__()


class Poison(tf.keras.callbacks.Callback):
    """Makes the weights NaN during epoch ``epoch``."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch == 0:
            weight = self.model.get_layer("logits").kernel
            weight.assign(tf.fill(weight.shape, np.nan))

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch


def test_divergence_stops_keeps_the_last_checkpoint_and_saves_no_model(tmp_path):
    with pytest.raises(RunError) as error:
        training.run(config(tmp_path), extra_callbacks=[Poison(epoch=1)])
    message = str(error.value)
    assert message.startswith("training diverged in epoch 2, step 2 (loss nan): lower --lr 0.1")
    assert "no model was saved" in message
    for name in ("model.keras", "bnn.keras", "results.json"):
        assert not (tmp_path / name).exists()
    assert json.loads((tmp_path / "backup" / "state.json").read_text())["epoch"] == 1
    assert [r["epoch"] for r in rows(tmp_path)] == ["0"]


def test_results_are_standard_json(uninterrupted):
    whole, _ = uninterrupted
    text = (whole / "results.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    json.loads(text, parse_constant=lambda name: pytest.fail(f"non-standard {name}"))


def test_a_run_without_lcr_reports_and_saves_its_own_optimizer(uninterrupted):
    """Scoring the plain BNN compiles a model of its own: the training model
    of a run without LCR (its BNN) keeps the papers' SGD, in results.json and
    in model.keras, not the optimizer Keras compiles by default."""
    whole, results = uninterrupted
    assert results["optimizer"].startswith("SGD (momentum 0.9")
    saved = tf.keras.models.load_model(whole / runs.MODEL)
    assert saved.optimizer.get_config()["name"] == "SGD"
    assert saved.optimizer.get_config()["momentum"] == 0.9


def test_the_first_training_and_evaluation_steps_are_traced_once():
    """A step whose first call creates variables is traced twice; compile_model
    and compile_for_evaluation make them beforehand (build_step_variables)."""
    traces = []

    class Traced(tf.keras.layers.Layer):
        def call(self, inputs):
            traces.append(1)  # Python runs at tracing only
            return inputs

    def model():
        inputs = tf.keras.Input((4,))
        return tf.keras.Model(inputs, tf.keras.layers.Dense(3)(Traced()(inputs)))

    x, y = np.zeros((8, 4), np.float32), np.zeros(8, np.int32)

    def traced(compiled, step):
        traces.clear()
        step(compiled)
        return len(traces)

    def fit(m):
        m.fit(x, y, epochs=1, verbose=0)

    def evaluate(m):
        m.evaluate(x, y, verbose=0)

    keras_default = model()
    keras_default.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    assert traced(keras_default, fit) == 2  # what Keras alone does
    ours = model()
    compile_model(ours, TrainConfig(epochs=1), steps_per_epoch=1)
    assert traced(ours, fit) == 1
    assert traced(compile_for_evaluation(model()), evaluate) == 1

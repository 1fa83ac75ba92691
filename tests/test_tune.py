"""lcr-tune: the space as Keras Tuner hyperparameters, the λ = 0 baseline, the
outputs, lcr-train on best.yaml, resuming, Hyperband, val_mce, failing trials,
one-line errors, and Keras Tuner through its public API only."""

import csv
import dataclasses
import json
import math
import os
import re
import statistics

import numpy as np
import pytest
import tensorflow as tf
from helpers import one_line_error

import lcr_larq
import train
from lcr_larq import cli
from lcr_larq import settings as cfg
from lcr_larq.cli import tune as tune_cli
from lcr_larq.errors import ConfigError, RunError
from lcr_larq.experiments import tuning
from lcr_larq.experiments.tuning import TuneConfig
from lcr_larq.experiments.tuning import search as tuning_search
from lcr_larq.experiments.tuning import settings as tuning_settings
from lcr_larq.experiments.tuning.space import kt
from lcr_larq.training import TrainConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: A tiny training run: ResNet-8 on 8×8 digits.
FAST = dict(model="resnet8", input_size=8, steps_per_epoch=1, batch_size=16, verbose=0,
            bn_recalibration_batches=1, power_iterations_range=(1, 1))
FAST_FLAGS = ["--model", "resnet8", "--input-size", "8", "--steps-per-epoch", "1",
              "--batch-size", "16", "--verbose", "0", "--bn-recalibration-batches", "1",
              "--power-iterations-range", "1", "1"]


def read_rows(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


# --------------------------------------------------------------------------- space
def test_recipe_and_flags_make_the_space_as_keras_tuner_hyperparameters(tmp_path):
    recipe = tmp_path / "tune.yaml"
    recipe.write_text("lambda_range: [0.25, 16]\nbeta-range: [3, 3.5]\n"
                      "power_iterations_range: [2, 4]\nreference_choices: [latent]\n"
                      "baseline: false\nlcr_lambda: 2\nepochs: 5\n")
    parser = cli.parser("lcr-tune", "", TuneConfig, exclude=tuning_settings.SEARCHED)
    args = parser.parse_args(["--config", str(recipe), "--beta-range", "1.5", "2.5",
                              "--epochs", "3"])
    config = cli.settings_from(args, TuneConfig)
    assert config.lambda_range == (0.25, 16.0) and config.beta_range == (1.5, 2.5)
    assert config.power_iterations_range == (2, 4) and config.baseline is False
    assert config.epochs == 3 and config.run_dir == tuning_settings.DEFAULT_OUTPUT
    hp = tuning.search_space(config)
    kinds = {p.name: type(p).__name__ for p in hp.space}
    assert kinds == {"lcr_lambda": "Float", "lcr_beta": "Float", "power_iterations": "Int",
                     "lcr_reference": "Fixed"}
    lam = hp.space[0]
    assert (lam.min_value, lam.max_value, lam.sampling) == (0.25, 16.0, "log")
    # A recipe's λ is replaced by the trial's; the trial is a training run.
    run = tuning.trial_config(config, {"lcr_lambda": 0.7, "lcr_beta": 2.0,
                                       "power_iterations": 3, "lcr_reference": "latent"})
    assert type(run) is TrainConfig and run.lcr_lambda == 0.7 and run.epochs == 3
    assert tuning.baseline_config(config).lcr_lambda == 0.0
    # the searched settings are no flags of lcr-tune
    flags = set(re.findall(r"--[a-z][a-z0-9-]*[a-z0-9]", parser.format_help()))
    assert "--lambda-range" in flags and "--lcr-form" in flags
    assert not {"--lcr-lambda", "--lcr-beta", "--power-iterations", "--lcr-reference"} & flags


def test_lambda_is_sampled_log_uniformly():
    (lam,) = [p for p in tuning.search_space(TuneConfig()).space if p.name == "lcr_lambda"]
    samples = [lam.random_sample(seed) for seed in range(400)]
    assert all(0.5 <= s <= 8.0 for s in samples)
    # log-uniform on [2^-1, 2^3]: the median is 2^1; a uniform λ would have 4.25
    assert 1.6 < statistics.median(samples) < 2.5
    logs = [math.log2(s) for s in samples]
    assert abs(sum(-1 <= v < 1 for v in logs) - sum(1 <= v <= 3 for v in logs)) < 60


def test_fixed_ranges_and_the_beta_floor():
    hp = tuning.search_space(TuneConfig(lambda_range=(2.0, 2.0), beta_range=(1.0, 1.0005),
                                        power_iterations_range=(3, 3)))
    assert {p.name: type(p).__name__ for p in hp.space} == {
        "lcr_lambda": "Fixed", "lcr_beta": "Fixed", "power_iterations": "Fixed",
        "lcr_reference": "Fixed"}
    assert hp.values["lcr_lambda"] == 2.0 and hp.values["power_iterations"] == 3
    assert 1 < hp.values["lcr_beta"] == 1.0005
    (beta,) = [p for p in tuning.search_space(TuneConfig()).space if p.name == "lcr_beta"]
    assert (beta.min_value, beta.max_value) == (tuning_settings.BETA_FLOOR, 4.0)
    hp = tuning.search_space(TuneConfig(reference_choices=("latent", "teacher"), teacher="fp"))
    (reference,) = [p for p in hp.space if p.name == "lcr_reference"]
    assert type(reference).__name__ == "Choice" and reference.values == ["latent", "teacher"]
    # every corner of the space is checked as a training run
    assert len(tuning.corners(TuneConfig(beta_range=(1.0, 1.0005)))) == 4


class TinyHyperModel(kt.HyperModel):
    def build(self, hp):
        model = tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(1)])
        model.compile(loss="mse")
        return model


@pytest.mark.parametrize("kind, stock", [("random", kt.RandomSearch),
                                         ("bayesian", kt.BayesianOptimization),
                                         ("hyperband", kt.Hyperband)])
def test_make_tuner_gives_the_stock_tuners(kind, stock, tmp_path):
    config = TuneConfig(tuner=kind, objective="val_mce", seed=4, epochs=9, initial_points=2)
    tuner = tuning.make_tuner(config, TinyHyperModel(), str(tmp_path))
    assert isinstance(tuner, stock) and isinstance(tuner, tuning_search.SearchHooks)
    oracle = tuner.oracle
    assert (oracle.objective.name, oracle.objective.direction) == ("val_mce", "min")
    assert oracle.seed == tuning_search.tuner_seed(4) == 5
    assert oracle.max_trials == (None if kind == "hyperband" else tuning_settings.DEFAULT_TRIALS)
    assert [p.name for p in oracle.get_space().space] == list(tuning_settings.SEARCHED)
    if kind == "bayesian":
        assert oracle.num_initial_points == 2
    if kind == "hyperband":
        assert (oracle.max_epochs, oracle.factor) == (9, 3)
        capped = tuning.make_tuner(dataclasses.replace(config, max_trials=4), TinyHyperModel(),
                                   str(tmp_path / "capped"))
        assert capped.oracle.max_trials == 4


def test_score_is_of_the_plain_bnn_and_its_mce():
    inputs = tf.keras.Input((4, 4, 1))
    flat = tf.keras.layers.Flatten()(inputs)
    logits = tf.keras.layers.Dense(
        3, kernel_initializer="zeros",
        bias_initializer=tf.keras.initializers.Constant([1.0, 0.0, 0.0]))(flat)
    model = tf.keras.Model(inputs, logits)  # always predicts class 0
    labels = np.array([0, 0, 1, 2], np.int32)
    images = np.zeros((4, 4, 4, 1), np.uint8)

    class Data:
        validation = tf.data.Dataset.from_tensor_slices(
            (images.astype(np.float32), labels)).batch(2)
        validation_arrays = (images, labels)
        normalize = staticmethod(lambda x: tf.cast(x, tf.float32))
        calibration = None

    sets = {(c, s): images for c in ("fog", "snow") for s in (1, 2, 3)}
    config = TrainConfig(batch_size=2)
    metrics = tuning_search.score(model, config, tuning.TrialData(Data, None, sets))
    assert metrics["val_accuracy"] == pytest.approx(0.5)
    # 50% error at each of 3 severities, the same for both corruptions.
    assert metrics["val_mce"] == pytest.approx(1.5)
    assert "val_mce" not in tuning_search.score(model, config, tuning.TrialData(Data))


# --------------------------------------------------------------------------- settings
@pytest.mark.parametrize(
    "args, needle",
    [(["--lcr-lambda", "2"], "--lcr-lambda is searched: set its range with --lambda-range"),
     (["--lcr-reference=teacher"], "--lcr-reference is searched: set its range with "
                                   "--reference-choices"),
     (["--lambda-range", "0", "4"], "--lambda-range needs 0 < LOW <= HIGH"),
     (["--lambda-range", "1"], "--lambda-range: expected 2 arguments"),
     (["--lambda-range", "0.5", "2000"], "the search space holds a run that cannot be "
                                         "trained (lcr_lambda=2000.0"),
     (["--beta-range", "0.5", "0.9"], "--beta-range must be >= 1, got 0.5"),
     (["--beta-range", "3", "2"], "--beta-range needs 1 <= LOW <= HIGH"),
     (["--power-iterations-range", "3", "1"], "--power-iterations-range needs LOW <= HIGH"),
     (["--reference-choices", "teacher"], "--reference-choices teacher needs --teacher"),
     (["--reference-choices", "student"], "--reference-choices must be one of"),
     (["--tuner", "grid"], "--tuner must be one of ['random', 'bayesian', 'hyperband']"),
     (["--max-trials", "0"], "--max-trials must be >= 1, got 0"),
     (["--seed", "-1"], "--seed must be >= 0, got -1"),
     (["--validation-split", "0"], "--validation-split must be > 0"),
     (["--mce-corruptions", "rain"], "--mce-corruptions must be one of"),
     (["--hyperband-factor", "1"], "--hyperband-factor must be >= 2"),
     (["--full-precision"], "--full-precision trains without LCR: there is nothing to tune"),
     (["--model", "vgg"], "unknown model 'vgg'"),
     (["--search-space", "x.yaml"], "unrecognized arguments: --search-space")],
)
def test_bad_settings_end_in_one_line(args, needle, capsys, tmp_path):
    try:
        code = tune_cli.main([*args, "--output-dir", str(tmp_path / "t")])
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    assert code == 2
    assert needle in one_line_error(capsys)
    assert not (tmp_path / "t" / tuning_settings.SEARCH_FILE).exists()


def test_recipes_that_are_no_tune_recipes_end_in_one_line(capsys, tmp_path):
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00lambda_range: [1, 2]\n")
    assert tune_cli.main(["--config", str(binary)]) == 2
    assert f"{binary} is not UTF-8 text" in one_line_error(capsys)
    old = tmp_path / "old.yaml"
    old.write_text("search_space: space.yaml\n")
    assert tune_cli.main(["--config", str(old)]) == 2
    assert "unknown key 'search_space'" in one_line_error(capsys)


def test_rerun_with_other_settings_is_refused_and_overwrite_starts_again(tmp_path):
    out = tmp_path / "t"
    config = TuneConfig(output_dir=str(out), epochs=3)
    path = tuning_search.prepare_search(config)
    assert cfg.load_recipe(path, TuneConfig)["output_dir"] == str(out)
    tuning_search.prepare_search(config)  # the same settings continue
    more = dataclasses.replace(config, max_trials=50, verbose=0, lcr_lambda=1.0)
    tuning_search.prepare_search(more)  # more trials, quieter: the same search
    other = dataclasses.replace(config, epochs=4, validation_split=0.2)
    with pytest.raises(ConfigError) as error:
        tuning_search.prepare_search(other)
    message = str(error.value)
    assert "other settings: --epochs (3, now 4), --validation-split (0.1, now 0.2)" in message
    assert "--overwrite" in message
    for name in ("tuner/search", "baseline"):
        (out / name).mkdir(parents=True)
    (out / "trials.csv").write_text("old\n")
    tuning_search.prepare_search(dataclasses.replace(other, overwrite=True))
    assert not (out / "tuner").exists() and not (out / "baseline").exists()
    assert not (out / "trials.csv").exists()
    assert cfg.load_recipe(path, TuneConfig)["epochs"] == 4
    (out / "search.yaml").unlink()
    (out / "tuner").mkdir()
    with pytest.raises(RunError, match="holds a search without its search.yaml"):
        tuning_search.prepare_search(other)


# --------------------------------------------------------------------------- searches
def table_trials(stdout):
    """The trial ids of the printed table, in order."""
    return [cells[1] for line in stdout.splitlines() if line.startswith("| ")
            if (cells := [c.strip() for c in line.strip("|").split("|")])[1] != "trial"]


@pytest.mark.stack
def test_search_writes_trials_best_and_search_and_lcr_train_trains_best(
        tmp_path, capsys):
    out = tmp_path / "tune"
    argv = ["--max-trials", "1", "--epochs", "1", "--output-dir", str(out), *FAST_FLAGS]
    assert tune_cli.main(argv) == 0
    stdout = capsys.readouterr().out
    rows = read_rows(out / "trials.csv")
    assert [r["trial"] for r in rows] == ["baseline", "0"]
    assert all(r["status"] == "COMPLETED" for r in rows)
    baseline = rows[0]
    assert float(baseline["lcr_lambda"]) == 0 and baseline["rank"] == ""
    assert baseline["lcr_beta"] == baseline["log2_lambda"] == ""
    best = rows[1]
    assert best["rank"] == "1" and 0.5 <= float(best["lcr_lambda"]) <= 8
    assert float(best["log2_lambda"]) == pytest.approx(math.log2(float(best["lcr_lambda"])))
    assert 1 < float(best["lcr_beta"]) <= 4 and best["power_iterations"] == "1"
    assert 0 <= float(best["val_accuracy"]) <= 1 and float(best["seconds"]) > 0
    assert table_trials(stdout) == ["baseline", "0"]  # the printed table, same order
    assert f"wrote {out / 'best.yaml'}" in stdout

    text = (out / "best.yaml").read_text()
    assert text.startswith(f"# best LCR trial ({best['trial']}) of lcr-tune: val_accuracy = ")
    assert f"{float(best['val_accuracy']):.6g}" in text.splitlines()[0]
    recipe = cfg.load_recipe(str(out / "best.yaml"), TrainConfig)
    assert recipe["lcr_lambda"] == pytest.approx(float(best["lcr_lambda"]))
    assert recipe["output_dir"] == str(out / "best")
    search = cfg.load_recipe(str(out / "search.yaml"), TuneConfig)
    assert search["max_trials"] == 1 and search["output_dir"] == str(out)

    # lcr-tune --config search.yaml is the same search: nothing left to run
    assert tune_cli.main(["--config", str(out / "search.yaml")]) == 0
    assert read_rows(out / "trials.csv") == rows
    # other settings are refused, naming them
    capsys.readouterr()
    assert tune_cli.main([*argv, "--lr", "0.05"]) == 2
    assert "other settings: --lr (0.1, now 0.05)" in one_line_error(capsys)

    assert train.main(["--config", str(out / "best.yaml"), "--verbose", "0"]) == 0
    with open(out / "best" / "results.json") as handle:
        results = json.load(handle)
    assert results["lcr_lambda"] == pytest.approx(float(best["lcr_lambda"]))
    assert results["lcr_beta"] == pytest.approx(float(best["lcr_beta"]))
    assert results["power_iterations"] == 1 and results["lcr_reference"] == "latent"
    assert results["epochs"] == 1 and results["dataset"] == "digits"


class InterruptAt(tf.keras.callbacks.Callback):
    """Stops the search when the ``fit``-th fit begins epoch ``epoch`` (Keras
    Tuner copies callbacks for every trial, so the count is kept on the class)."""

    fits = 0
    fit = epoch = None

    def on_train_begin(self, logs=None):
        InterruptAt.fits += 1

    def on_epoch_begin(self, epoch, logs=None):
        if (InterruptAt.fits, epoch) == (InterruptAt.fit, InterruptAt.epoch):
            raise KeyboardInterrupt


def test_interrupted_search_continues_from_the_last_finished_epoch(tmp_path):
    out = tmp_path / "tune"
    config = TuneConfig(epochs=2, max_trials=2, output_dir=str(out), **FAST)
    # Fit 1 is the baseline, fit 2 trial 0, fit 3 trial 1: stopped in its second epoch.
    InterruptAt.fits, InterruptAt.fit, InterruptAt.epoch = 0, 3, 1
    with pytest.raises(KeyboardInterrupt):
        tuning.run_search(config, callbacks=[InterruptAt()])
    first = read_rows(out / "trials.csv")  # written when interrupted
    assert [(r["trial"], r["status"]) for r in first] == [
        ("baseline", "COMPLETED"), ("0", "COMPLETED"), ("1", "RUNNING")]
    trial_1 = out / "tuner" / "search" / "trial_1"
    assert json.loads((trial_1 / "backup" / "state.json").read_text())["epoch"] == 1
    baseline = (out / "baseline" / "result.json").read_text()

    tf.keras.backend.clear_session()
    result = tuning.run_search(config)  # the same settings again
    # Neither the baseline nor trial 0 trains again; trial 1 goes on with epoch 1.
    assert result.executed == ["1"] and result.epochs_run == {"1": [1]}
    assert (out / "baseline" / "result.json").read_text() == baseline
    assert [int(r["epoch"]) for r in read_rows(trial_1 / "history.csv")] == [0, 1]
    assert not (trial_1 / "backup").exists()
    rows = read_rows(out / "trials.csv")
    assert [r["trial"] for r in rows][0] == "baseline" and rows[0] == first[0]
    assert sorted(r["trial"] for r in rows[1:]) == ["0", "1"]
    assert all(r["status"] == "COMPLETED" for r in rows)
    def unranked(row):
        return {k: v for k, v in row.items() if k != "rank"}

    assert unranked({r["trial"]: r for r in rows}["0"]) == unranked(first[1])  # kept as it was

    tf.keras.backend.clear_session()
    again = tuning.run_search(config)  # nothing left to do
    assert again.executed == [] and len(again.rows) == 3


class Dtypes(tf.keras.callbacks.Callback):
    """The compute dtypes of every fit's blocks and LCR layer (kept on the
    class: Keras Tuner copies callbacks)."""

    seen: list = []

    def on_train_begin(self, logs=None):
        blocks = lcr_larq.find_blocks(lcr_larq.strip_lcr(self.model))
        lcr = lcr_larq.lcr_layer(self.model)
        Dtypes.seen.append((sorted({b.output.dtype.name for b in blocks}),
                            lcr.compute_dtype if lcr is not None else None))


def test_a_trial_trains_under_bfloat16(tmp_path):
    """``lcr-tune --mixed-precision bfloat16``: the baseline and the trial
    train 16-bit blocks (LCR in float32) and are scored; the global policy
    is left as it was."""
    Dtypes.seen = []
    config = TuneConfig(epochs=1, max_trials=1, mixed_precision="bfloat16",
                        output_dir=str(tmp_path / "tune"), **FAST)
    result = tuning.run_search(config, callbacks=[Dtypes()])
    assert Dtypes.seen == [(["bfloat16"], None), (["bfloat16"], "float32")]
    assert tf.keras.mixed_precision.global_policy().name == "float32"
    rows = read_rows(tmp_path / "tune" / "trials.csv")
    assert [(r["trial"], r["status"]) for r in rows] == [("baseline", "COMPLETED"),
                                                         ("0", "COMPLETED")]
    assert all(0 <= float(r["val_accuracy"]) <= 1 for r in rows)
    assert result.executed == ["baseline", "0"]
    best = cfg.load_recipe(str(tmp_path / "tune" / "best.yaml"), TrainConfig)
    assert best["mixed_precision"] == "bfloat16"  # lcr-train --config best.yaml trains so


class WeightLog(tf.keras.callbacks.Callback):
    """The trainable weights of every fit when it begins and ends."""

    begins: list = []
    ends: list = []

    def on_train_begin(self, logs=None):
        WeightLog.begins.append([w.numpy().copy() for w in self.model.trainable_weights])

    def on_train_end(self, logs=None):
        WeightLog.ends.append([w.numpy().copy() for w in self.model.trainable_weights])


def same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_hyperband_continues_the_weights_of_an_earlier_round_scored_by_val_mce(
        tmp_path):
    # 2 epochs at most, factor 2: round 0 trains trials 0 and 1 for one epoch,
    # round 1 (trial 2) continues the better of them with its second epoch.
    out = tmp_path / "tune"
    config = TuneConfig(
        tuner="hyperband", epochs=2, hyperband_factor=2, max_trials=3, baseline=False,
        objective="val_mce", mce_corruptions=("gaussian_noise", "contrast"),
        mce_severities=(1, 3), output_dir=str(out), **FAST)
    WeightLog.begins, WeightLog.ends = [], []
    result = tuning.run_search(config, callbacks=[WeightLog()])
    assert result.executed == ["0", "1", "2"]
    assert result.epochs_run == {"0": [0], "1": [0], "2": [1]}
    rows = {r["trial"]: r for r in read_rows(out / "trials.csv")}
    assert [rows[t]["epochs"] for t in ("0", "1", "2")] == ["1", "1", "2"]
    better = min(("0", "1"), key=lambda t: float(rows[t]["val_mce"]))
    assert rows["2"]["continues"] == better and rows["0"]["continues"] == ""
    assert rows["2"]["lcr_lambda"] == rows[better]["lcr_lambda"]
    mce = [float(r["val_mce"]) for r in read_rows(out / "trials.csv")]
    assert mce == sorted(mce) and all(0 <= m <= 2 for m in mce)  # 2 severities summed
    # Trials 0 and 1 start from the seed's weights; trial 2 from the end of its round.
    assert same(WeightLog.begins[0], WeightLog.begins[1])
    assert same(WeightLog.begins[2], WeightLog.ends[int(better)])
    assert not same(WeightLog.begins[2], WeightLog.begins[0])
    cache = out / tuning_settings.CACHE_DIR
    files = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    assert len(files) == 4 and all(name.endswith(".npy") for name in files)

    tf.keras.backend.clear_session()
    again = tuning.run_search(config)
    assert again.executed == [] and len(again.rows) == 3
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == files  # reused


class Boom(tf.keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        raise ValueError("boom")


def test_failing_trials_are_reported_in_one_line_each_and_overwrite_starts_again(
        tmp_path, capsys):
    out = tmp_path / "tune"
    config = TuneConfig(epochs=1, max_trials=5, baseline=False, output_dir=str(out), **FAST)
    code = cli.run(lambda: tuning.run_search(config, callbacks=[Boom()]))
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    trials = out / "tuner" / "search"
    assert lines == [
        *(f"trial {t} failed: ValueError: boom (traceback in {trials / f'trial_{t}'}/error.txt)"
          for t in "012"),
        f"error: the search stopped after 3 failed trials in a row, the last (trial 2) with "
        f"ValueError: boom (tracebacks in {trials}/trial_*/error.txt)",
    ]
    assert "Traceback" in (trials / "trial_0" / "error.txt").read_text()
    rows = read_rows(out / "trials.csv")
    assert [(r["status"], r["error"]) for r in rows] == [("FAILED", "ValueError: boom")] * 3
    assert not (out / "best.yaml").exists()

    # --overwrite starts again; a failed trial below the limit does not end the search
    tf.keras.backend.clear_session()
    again = tuning.run_search(dataclasses.replace(config, overwrite=True, max_trials=1),
                              callbacks=[Boom()])
    assert again.executed == ["0"]
    assert [(r["trial"], r["status"]) for r in read_rows(out / "trials.csv")] == [
        ("0", "FAILED")]
    assert capsys.readouterr().err.count("failed: ValueError: boom") == 1

    tuning_config = dataclasses.replace(config, baseline=True, output_dir=str(tmp_path / "b"))
    with pytest.raises(RunError, match=r"^the λ = 0 baseline failed: ValueError: boom "):
        tuning.run_search(tuning_config, callbacks=[Boom()])
    assert read_rows(tmp_path / "b" / "trials.csv")[0]["status"] == "FAILED"


# --------------------------------------------------------------------------- public API only
def keras_tuner_private_names():
    """Every ``_name`` (not ``__dunder__``) of Keras Tuner's tuners, oracles,
    hypermodels, hyperparameters and trials, their instances' included."""
    oracle = kt.oracles.RandomSearchOracle(objective="val_loss", max_trials=1)
    hp = kt.HyperParameters()
    hp.Float("x", 0.1, 1.0, sampling="log")
    objects = [
        kt.Tuner, kt.RandomSearch, kt.BayesianOptimization, kt.Hyperband, kt.HyperModel,
        kt.Oracle, kt.oracles.RandomSearchOracle, kt.oracles.BayesianOptimizationOracle,
        kt.oracles.HyperbandOracle, kt.HyperParameters, kt.engine.trial.Trial, kt.Objective,
        oracle, kt.oracles.HyperbandOracle(objective="val_loss"),
        kt.oracles.BayesianOptimizationOracle(objective="val_loss", max_trials=1),
        hp, hp.space[0], kt.engine.trial.Trial(hp),
    ]
    names = set()
    for obj in objects:
        names |= {n for n in dir(obj) if n.startswith("_") and not n.startswith("__")}
        names |= {n for n in getattr(obj, "__dict__", {}) if n.startswith("_")
                  and not n.startswith("__")}
    return names


def test_lcr_larq_uses_keras_tuner_through_its_public_api_only():
    names = keras_tuner_private_names()
    assert {"_random_values", "_populate_initial_space", "_get_checkpoint_fname",
            "_seed_state", "_build_hypermodel"} <= names  # the check can fail
    uses = re.compile(r"(?:\.|\bdef\s+)(" + "|".join(map(re.escape, sorted(names))) + r")\b")
    private = re.compile(r"\b(?:kt|keras_tuner)(?:\.\w+)*\._[A-Za-z]|keras_tuner\.src"
                         r"|\bkt(?:\.\w+)+\.__init__\(")
    assert uses.search("self.oracle._random_values()") and uses.search("def _try_build(self")
    assert private.search("kt.Tuner.__init__(self)") and private.search("kt.engine._x")
    found = []
    for folder, _, files in os.walk(os.path.join(ROOT, "lcr_larq")):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                text = open(path, encoding="utf-8").read()
                found += [(path, m.group(0)) for m in uses.finditer(text)]
                found += [(path, m.group(0)) for m in private.finditer(text)]
    assert found == []
    # The tuners override public hooks only.
    assert [n for n in vars(tuning_search.SearchHooks) if n.startswith("_")
            and not n.startswith("__")] == []
    assert "_" not in [n[0] for n in vars(tuning.LCRHyperModel) if not n.startswith("__")]


# --------------------------------------------------------------------------- λ sweep report

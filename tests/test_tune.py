"""python -m lcr_larq.tune: the search space, the baseline trial, the outputs,
train.py on best.yaml, resuming, and one-line errors."""

import csv
import json
import math

import keras_tuner as kt
import numpy as np
import pytest
import tensorflow as tf

import train
from lcr_larq import config as cfg
from lcr_larq import tune
from lcr_larq.config import TrainConfig

FAST = ["--steps-per-epoch", "1", "--batch-size", "16", "--verbose", "0",
        "--power-iterations-range", "1", "1"]


def read_rows(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


# --------------------------------------------------------------------------- space
def test_search_space_file_then_flags(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("lcr_lambda: [0.25, 16]\nlcr-beta: 3\npower_iterations: [2, 4]\n"
                    "lcr_reference: latent\nbaseline: false\n")
    args = tune.build_parser().parse_args(
        ["--search-space", str(path), "--beta-range", "1.5", "2.5", "--epochs", "3"])
    settings = tune.settings_from_args(args)
    space = settings.space
    assert space.lcr_lambda == (0.25, 16.0) and space.lcr_beta == (1.5, 2.5)
    assert space.power_iterations == (2, 4) and space.lcr_reference == ("latent",)
    assert space.baseline is False
    assert settings.base.epochs == 3 and settings.base.output_dir == tune.DEFAULT_OUTPUT
    hp = space.hyperparameters()
    kinds = {p.name: type(p).__name__ for p in hp.space}
    assert kinds == {"lcr_lambda": "Float", "lcr_beta": "Float", "power_iterations": "Int",
                     "lcr_reference": "Fixed"}
    assert hp.space[0].sampling == "log"


@pytest.mark.parametrize(
    "text, needle",
    [("lambda_max: 3\n", "unknown key 'lambda_max'"),
     ("power_iterations: [1.5, 3]\n", "needs int values"),
     ("lcr_beta: [1, 2, 3]\n", "[LOW, HIGH]"),
     ("baseline: maybe\n", "baseline needs true or false")],
)
def test_bad_search_space_files(tmp_path, text, needle):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(cfg.ConfigError, match=None) as error:
        tune.load_search_space(str(path))
    assert needle in str(error.value)


def test_fixed_range_and_beta_floor():
    hp = tune.SearchSpace(lcr_lambda=(2.0, 2.0), lcr_beta=(1.0, 1.0005),
                          baseline=False).hyperparameters()
    assert hp.values["lcr_lambda"] == 2.0
    beta = next(p for p in hp.space if p.name == "lcr_beta")
    assert type(beta).__name__ == "Fixed" and beta.value > 1
    hp = tune.SearchSpace().hyperparameters()
    beta = next(p for p in hp.space if p.name == "lcr_beta")
    assert beta.min_value == tune.BETA_FLOOR and beta.max_value == 4.0


# --------------------------------------------------------------------------- oracles
def drive(oracle, tmp_path, trials, score):
    """Creates and ends ``trials`` trials, scoring each with ``score(values)``."""
    oracle._set_project_dir(str(tmp_path), "oracle")
    oracle.verbose = 0
    created = []
    for _ in range(trials):
        trial = oracle.create_trial("tuner0")
        if trial.status != "RUNNING":
            break
        created.append(dict(trial.hyperparameters.values))
        oracle.update_trial(trial.trial_id, {"val_accuracy": score(trial.hyperparameters.values)})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    return created


@pytest.mark.parametrize("kind", ["random", "bayesian", "hyperband"])
def test_the_baseline_is_the_first_trial_and_only_once(kind, tmp_path):
    space = tune.SearchSpace()
    common = {"objective": kt.Objective("val_accuracy", "max"),
              "hyperparameters": space.hyperparameters(), "seed": 3}
    trials = 12
    if kind == "random":
        oracle = tune.RandomOracle(max_trials=trials, **common)
    elif kind == "bayesian":
        trials = 6  # 3 random points, then 3 from the Gaussian process
        oracle = tune.BayesianOracle(max_trials=trials, num_initial_points=3, **common)
        oracle.gpr.n_restarts_optimizer = 0  # a quicker fit; the proposals stay the test
    else:
        oracle = tune.HyperbandOracle(max_epochs=9, factor=3, **common)
        oracle.max_trials = trials
    # The baseline scores best, so the Gaussian process is drawn towards lcr=False
    # (it proposes it again with these scores; the oracle must not run it twice).
    values = drive(oracle, tmp_path, trials,
                   lambda v: 0.9 if v.get("lcr") is False else 0.1 + 0.01 * v["lcr_lambda"])
    assert len(values) == trials
    assert values[0]["lcr"] is False and "lcr_lambda" not in values[0]
    new = [v for v in values if "tuner/trial_id" not in v]  # Hyperband continues some
    assert [v["lcr"] for v in new[1:]] == [True] * (len(new) - 1)
    for v in new[1:]:
        assert 0.5 <= v["lcr_lambda"] <= 8.0 and tune.BETA_FLOOR <= v["lcr_beta"] <= 4.0
        assert 1 <= v["power_iterations"] <= 5 and v["lcr_reference"] == "latent"
    lambdas = [v["lcr_lambda"] for v in new[1:]]
    assert len(set(lambdas)) == len(lambdas)
    if kind == "hyperband":
        assert values[0]["tuner/epochs"] >= 1
        assert any(v.get("tuner/trial_id") == "00" for v in values)  # the baseline goes on


def test_no_baseline_when_switched_off(tmp_path):
    oracle = tune.RandomOracle(
        objective=kt.Objective("val_accuracy", "max"), max_trials=3, seed=1,
        hyperparameters=tune.SearchSpace(baseline=False).hyperparameters())
    values = drive(oracle, tmp_path, 3, lambda v: 0.5)
    assert all("lcr" not in v and v["lcr_lambda"] >= 0.5 for v in values)


def test_evaluate_scores_the_plain_bnn_and_its_mce():
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

    sets = {(c, s): images for c in ("fog", "snow") for s in (1, 2, 3)}
    metrics = tune.evaluate(model, Data, tf.distribute.get_strategy(), 2, sets)
    assert metrics["val_accuracy"] == pytest.approx(0.5)
    # 50% error at each of 3 severities, the same for both corruptions.
    assert metrics["val_mce"] == pytest.approx(1.5)


# --------------------------------------------------------------------------- command line
@pytest.mark.parametrize(
    "args, needle",
    [(["--lcr-lambda", "2"], "--lcr-lambda is searched: set its range with --lambda-range"),
     (["--lambda-range", "0", "8"], "--lambda-range needs 0 < LOW <= HIGH"),
     (["--beta-range", "0.5", "0.9"], "--beta-range needs"),
     (["--power-iterations-range", "3", "1"], "--power-iterations-range needs"),
     (["--reference-choices", "teacher"], "needs --teacher"),
     (["--tuner", "grid"], "argument --tuner: invalid choice"),
     (["--max-trials", "0"], "--max-trials must be >= 1"),
     (["--mce-corruptions", "rain"], "unknown --mce-corruptions"),
     (["--model", "vgg"], "unknown model 'vgg'")],
)
def test_bad_arguments_end_in_one_line(args, needle, capsys, tmp_path):
    try:
        code = tune.main(args + ["--output-dir", str(tmp_path / "t")])
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("error:"), err
    assert needle in err


def test_rerun_with_other_settings_is_refused(tmp_path):
    out = tmp_path / "t"
    settings = tune.TuneSettings(base=TrainConfig(output_dir=str(out), epochs=3))
    (out / "tuner").mkdir(parents=True)
    tune._check_resume(settings, str(out), str(out / "tuner"))
    tune._check_resume(settings, str(out), str(out / "tuner"))  # the same: fine
    other = tune.TuneSettings(base=TrainConfig(output_dir=str(out), epochs=4),
                              validation_fraction=0.3)
    with pytest.raises(cfg.ConfigError) as error:
        tune._check_resume(other, str(out), str(out / "tuner"))
    message = str(error.value)
    assert "other settings (train.epochs, validation_fraction)" in message
    assert "--overwrite" in message
    more = tune.TuneSettings(base=TrainConfig(output_dir=str(out), epochs=3), max_trials=50)
    tune._check_resume(more, str(out), str(out / "tuner"))  # more trials continue


# --------------------------------------------------------------------------- searches
def test_three_trial_search_writes_table_and_a_recipe_train_py_reproduces(tmp_path, capsys):
    out = tmp_path / "tune"
    code = tune.main(["--max-trials", "3", "--epochs", "1", "--output-dir", str(out), *FAST])
    stdout = capsys.readouterr().out
    assert code == 0
    rows = read_rows(out / "trials.csv")
    assert len(rows) == 3 and all(r["status"] == "COMPLETED" for r in rows)
    scores = [float(r["val_accuracy"]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert [r["rank"] for r in rows] == ["1", "2", "3"]
    baseline = [r for r in rows if float(r["lcr_lambda"]) == 0]
    assert len(baseline) == 1 and baseline[0]["trial"] == "0"
    assert baseline[0]["lcr_beta"] == "" and baseline[0]["log2_lambda"] == ""
    for row in rows:
        if row is not baseline[0]:
            assert 0.5 <= float(row["lcr_lambda"]) <= 8
            assert float(row["log2_lambda"]) == pytest.approx(math.log2(float(row["lcr_lambda"])))
            assert 1 < float(row["lcr_beta"]) <= 4 and row["power_iterations"] == "1"
    # The printed table lists the trials in the same order.
    printed = [line.split()[1] for line in stdout.splitlines()
               if line[:1].isdigit() and "COMPLETED" in line]
    assert printed == [r["trial"] for r in rows]

    best = rows[0]
    recipe = cfg.load_recipe(str(out / "best.yaml"))
    assert recipe["lcr_lambda"] == pytest.approx(float(best["lcr_lambda"]))
    assert recipe["output_dir"] == str(out / "best")
    code = train.main(["--config", str(out / "best.yaml")])
    assert code == 0
    with open(out / "best" / "results.json") as handle:
        results = json.load(handle)
    assert results["lcr_lambda"] == pytest.approx(float(best["lcr_lambda"]))
    if best["lcr_beta"]:
        assert results["lcr_beta"] == pytest.approx(float(best["lcr_beta"]))
        assert results["power_iterations"] == int(best["power_iterations"])
        assert results["lcr_reference"] == best["lcr_reference"]
    assert results["epochs"] == 1 and results["dataset"] == "digits"


class Boom(tf.keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        raise ValueError("boom")


def test_failing_trials_are_reported_and_end_the_search(tmp_path, capsys):
    out = tmp_path / "tune"
    settings = tune.TuneSettings(
        base=TrainConfig(epochs=2, steps_per_epoch=1, batch_size=16, verbose=0,
                         output_dir=str(out)),
        space=tune.SearchSpace(power_iterations=(1, 1)), max_trials=5)
    with pytest.raises(RuntimeError) as error:
        tune.run_search(settings, callbacks=[Boom()])
    err = capsys.readouterr().err
    for trial in "012":
        assert f"trial {trial} failed: ValueError: boom (traceback in " in err
    assert tune.failure_message(error.value) == (
        "trials keep failing (3 in a row), the last with: ValueError: boom")
    rows = read_rows(out / "trials.csv")
    assert [r["status"] for r in rows] == ["FAILED"] * 3
    assert not (out / "best.yaml").exists()


class InterruptSecondTrial(tf.keras.callbacks.Callback):
    """Stops the search at the end of the second trial's first epoch (Keras
    Tuner copies callbacks per trial, so the count is kept on the class)."""

    trials = 0

    def on_train_begin(self, logs=None):
        InterruptSecondTrial.trials += 1

    def on_epoch_end(self, epoch, logs=None):
        if InterruptSecondTrial.trials == 2:
            raise KeyboardInterrupt


def test_interrupted_search_continues_without_repeating_finished_trials(tmp_path, capsys):
    # Hyperband, 2 epochs at most, factor 2: round 0 trains trials 0 and 1 for
    # one epoch, round 1 (trial 2) continues the better of them to epoch 2.
    out = tmp_path / "tune"
    argv = ["--tuner", "hyperband", "--epochs", "2", "--hyperband-factor", "2",
            "--max-trials", "3", "--objective", "val_mce",
            "--mce-corruptions", "gaussian_noise", "--mce-severities", "1", "3",
            "--output-dir", str(out), *FAST]
    settings = tune.settings_from_args(tune.build_parser().parse_args(argv))
    InterruptSecondTrial.trials = 0
    with pytest.raises(KeyboardInterrupt):
        tune.run_search(settings, callbacks=[InterruptSecondTrial()])
    assert "corrupting 287 validation images (2 corruption × severity" in capsys.readouterr().out
    first = read_rows(out / "trials.csv")  # written when interrupted
    assert [(r["trial"], r["status"]) for r in first] == [("0", "COMPLETED"), ("1", "RUNNING")]
    assert first[0]["lcr_lambda"] == "0.0"  # the baseline comes first
    assert any((out / "tuner" / "search" / "trial_1" / "backup").iterdir())

    tf.keras.backend.clear_session()
    result = tune.run_search(settings)  # the same settings again
    assert "corrupting" not in capsys.readouterr().out  # the corrupted sets are reused
    assert result.executed == ["1", "2"]  # trial 0 is not run again
    # Trial 1 had finished its only epoch: it is scored without training again
    # (its weights saved for Hyperband); trial 2 continues at epoch 1.
    assert result.epochs_run == {"2": [1]}
    assert (out / "tuner" / "search" / "trial_1" / "checkpoint.index").exists()
    assert not (out / "tuner" / "search" / "trial_1" / "backup").exists()

    table = read_rows(out / "trials.csv")
    rows = {r["trial"]: r for r in table}
    assert set(rows) == {"0", "1", "2"}
    assert all(r["status"] == "COMPLETED" for r in table)
    assert rows["0"] == {**first[0], "rank": rows["0"]["rank"]}  # unchanged
    mce = [float(r["val_mce"]) for r in table]
    assert mce == sorted(mce) and all(0 <= m <= 2 for m in mce)  # 2 severities summed
    assert [rows[t]["epochs"] for t in ("0", "1", "2")] == ["1", "1", "2"]
    better = min(("0", "1"), key=lambda t: float(rows[t]["val_mce"]))
    assert rows["2"]["continues"] == better
    assert rows["2"]["lcr_lambda"] == rows[better]["lcr_lambda"]

    tf.keras.backend.clear_session()
    again = tune.run_search(settings)  # nothing left to do
    assert again.executed == [] and len(again.rows) == 3


# --------------------------------------------------------------------------- λ sweep report
def test_lambda_sweep_report_tables_and_plot(tmp_path, benchmark_script):
    lambda_sweep = benchmark_script("lambda_sweep")

    accuracies = {0.0: (0.80, 0.84), 0.5: (0.86, 0.90), 8.0: (0.70, 0.70)}
    for lcr_lambda, values in accuracies.items():
        for seed, accuracy in enumerate(values):
            run = tmp_path / lambda_sweep.run_name(lcr_lambda, seed)
            run.mkdir()
            (run / "results.json").write_text(json.dumps({
                "lcr_lambda": lcr_lambda, "seed": seed, "test_accuracy": accuracy,
                "test_loss": 1.0, "epochs": 15, "seconds": 1.0}))
    summary = lambda_sweep.report(TrainConfig(epochs=15), [0.0, 0.5, 8.0, 2.0], [0, 1],
                                  str(tmp_path))
    assert [s["lcr_lambda"] for s in summary] == [0.0, 0.5, 8.0]  # λ = 2 has no runs
    assert [s["log2_lambda"] for s in summary] == [-math.inf, -1.0, 3.0]
    assert summary[1]["mean"] == pytest.approx(0.88)
    assert summary[1]["std"] == pytest.approx(0.02 * math.sqrt(2))  # sample std
    assert summary[2]["std"] == 0.0
    rows = read_rows(tmp_path / "summary.csv")
    assert [float(r["mean"]) for r in rows] == pytest.approx([0.82, 0.88, 0.70])
    assert len(read_rows(tmp_path / "runs.csv")) == 6
    assert (tmp_path / lambda_sweep.PLOT_NAME).stat().st_size > 1000
    text = lambda_sweep.format_summary(summary)
    assert "88.00 ± 2.83" in text and "base" in text

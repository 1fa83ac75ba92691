"""The attacks through the commands: ``lcr-evaluate --attacks`` and its report,
the figure, ``lcr-study``'s robust accuracies and their rank correlations with
the Lipschitz estimates, ``lcr-diagnose``'s empirical estimate."""

import dataclasses
import importlib
import json
import math
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from helpers import RUN_SETTINGS, one_line_error
from scipy import stats

from lcr_larq import evaluation, plots, training
from lcr_larq import settings as cfg
from lcr_larq.attack_view import straight_through
from lcr_larq.cli import diagnose as diagnose_command
from lcr_larq.cli import evaluate as evaluate_command
from lcr_larq.cli import plots as plots_command
from lcr_larq.cli import study as study_command
from lcr_larq.errors import ConfigError
from lcr_larq.evaluation import attack_run, clean, corruptions
from lcr_larq.evaluation import attacks as adv
from lcr_larq.evaluation import report as evaluation_report
from lcr_larq.experiments import statistics, study
from lcr_larq.plots import ATTACK_STYLE
from lcr_larq.training import TrainConfig, runs

TINY = ["--model", "resnet8", "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "16",
        "--input-size", "8", "--lcr-samples", "8", "--validation-split", "0"]


# --------------------------------------------------------------------------- lcr-evaluate
def test_evaluate_attacks_report(trained_run, tmp_path, capsys):
    out = tmp_path / "robustness.json"
    code = evaluate_command.main([
        "--model-dir", str(trained_run), "--corruptions", "none", "--attacks", "fgsm", "pgd",
        "--epsilons", "0,2", "8", "--max-images", "48", "--pgd-steps", "3", "--output", str(out),
    ])
    printed = capsys.readouterr().out
    assert code == 0
    report = json.loads(out.read_text())
    rows = report["adversarial"]
    # fgsm and pgd as asked, PGD's gradient-free checks beside it, the per-image worst case
    attacks = ["fgsm", "pgd", "random", "transfer", "worst"]
    assert [(r["attack"], r["epsilon"]) for r in rows] == [
        (a, e) for a in attacks for e in (0.0, 2.0, 8.0)]
    for row in rows:
        assert set(row) == {"attack", "epsilon", "accuracy"}
        assert isinstance(row["epsilon"], float) and isinstance(row["accuracy"], float)
        assert 0.0 <= row["accuracy"] <= 1.0
    by = {(r["attack"], r["epsilon"]): r["accuracy"] for r in rows}
    # ε = 0 changes no image: every attack leaves the clean accuracy, exactly
    assert 0.0 < report["clean_accuracy"] < 1.0 and report["num_images"] == 48
    assert [by[(a, 0.0)] for a in attacks] == [report["clean_accuracy"]] * len(attacks)
    for epsilon in (2.0, 8.0):  # an image survives the worst case only if it survives all
        assert by[("worst", epsilon)] <= min(by[(a, epsilon)] for a in attacks[:-1])
    # the masking flags say what the rows say
    flags = report["gradient_masking"]
    assert [f["epsilon"] for f in flags] == [0.0, 2.0, 8.0]
    # (the transfer attack takes part only when its source is above chance)
    compared = ["random"] + ["transfer"] * report["transfer_source"]["informative"]
    for f in flags:
        free = min(by[(a, f["epsilon"])] for a in compared)
        assert f["pgd_accuracy"] == by[("pgd", f["epsilon"])] and f["accuracy"] == free
        assert [t["attack"] for t in f["tests"]] == compared
        assert f["stronger"] == (free < f["pgd_accuracy"])
        assert f["possible_masking"] == any(t["p_value"] < f["level"] for t in f["tests"])
    setup = report["adversarial_setup"]
    assert setup["samples"] == 48 and setup["pgd_steps"] == 3 and setup["random_draws"] == 4
    assert setup["attacks"] == attacks[:-1] and "1/255" in setup["epsilon_unit"]
    assert setup["clean_accuracy"] == report["clean_accuracy"]
    assert set(setup["seconds"]) == set(attacks[:-1])
    # the float counterpart's clean accuracy, its BN statistics re-estimated
    run = runs.load_run(str(trained_run))
    float_model, calibration = attack_run.float_model(run)
    x, y = runs.test_images(run.dataset, 48)
    predict = clean.predictor(float_model, run.dataset.normalize)
    assert report["float_clean_accuracy"] == clean.accuracy(predict, x, y)
    assert setup["float_bn_recalibration"] == calibration and calibration["batches"] >= 1
    # no corruption asked for: none measured
    assert report["corruptions"] == [] and report["mce"] is None
    assert report["source"].startswith("none")
    # the printed table holds the report's numbers
    cells = {}
    for line in printed.splitlines():
        parts = [p.strip() for p in line.strip("|").split("|")]
        if parts[0] in ("fgsm", "pgd", "random", "transfer", "worst (per image)"):
            cells[parts[0].split()[0]] = [float(v) for v in parts[1:4]]
    assert cells == {a: [round(100 * by[(a, e)], 1) for e in (0.0, 2.0, 8.0)] for a in attacks}
    assert "accuracy (%) under attack on 48 test images, ε in pixel levels (/255):" in printed
    assert (tmp_path / "adversarial_accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "corruption_accuracy.png").exists()


def test_without_attacks_the_report_is_as_before(trained_run):
    report = evaluation.evaluate(evaluation.EvaluateSettings(
        model_dir=str(trained_run), corruptions=("contrast",), severities=(5,), max_images=20))
    assert not {"adversarial", "gradient_masking", "adversarial_setup"} & set(report)
    assert report["mce"] is not None and report["corruptions"] == ["contrast"]


@pytest.mark.parametrize("args, needle", [
    (["--attacks", "cw"], "--attacks: unknown attack 'cw'; choose all, none or names from"),
    (["--attacks", "pgd", "--epsilons", "0,-1"], "--epsilons must be >= 0, got -1"),
    (["--attacks", "pgd", "--epsilons", "300"], "--epsilons must be <= 255, got 300"),
    (["--attacks", "pgd", "--pgd-steps", "0"], "--pgd-steps must be >= 1, got 0"),
    (["--attacks", "pgd", "--masking-check", "gradient"], "--masking-check must be one of"),
    (["--attacks", "pgd", "--attack-samples", "0"], "--attack-samples must be >= 1"),
])
def test_bad_attack_options_are_one_line_errors(trained_run, capsys, args, needle):
    code = evaluate_command.main(["--model-dir", str(trained_run), "--corruptions", "none", *args])
    assert needle in one_line_error(capsys, code)


def test_a_streamed_test_split_needs_a_number_of_images_to_attack():
    from lcr_larq.data import load_dataset

    data = load_dataset("digits", batch_size=50)
    streamed = dataclasses.replace(data, test_arrays=None)
    settings = evaluation.EvaluateSettings(model_dir="x", attacks=("pgd",))
    with pytest.raises(ConfigError, match="streamed.*--attack-samples N"):
        evaluation_report._attack_images(settings, streamed, None, None)
    settings = evaluation.EvaluateSettings(model_dir="x", attacks=("pgd",), attack_samples=30)
    x, y = evaluation_report._attack_images(settings, streamed, None, None)
    assert np.array_equal(x, data.test_arrays[0][:30])
    assert np.array_equal(y, data.test_arrays[1][:30])


# --------------------------------------------------------------------------- the figure
def attack_report(accuracies: dict, flagged=(), samples=100, clean=0.9) -> dict:
    rows = [{"attack": a, "epsilon": e, "accuracy": v} for a, by in accuracies.items()
            for e, v in by.items()]
    flags = [{"epsilon": e, "pgd_accuracy": accuracies["pgd"][e], "attack": "random",
              "accuracy": accuracies["random"][e], "possible_masking": e in flagged}
             for e in accuracies["pgd"]]
    return {"adversarial": rows, "gradient_masking": flags, "float_clean_accuracy": 0.8,
            "adversarial_setup": {"samples": samples, "clean_accuracy": clean},
            "corruptions": [], "mce": None}


REPORT_A = attack_report({"pgd": {0.0: 0.9, 2.0: 0.5, 8.0: 0.2},
                          "random": {0.0: 0.9, 2.0: 0.45, 8.0: 0.6},
                          "worst": {0.0: 0.9, 2.0: 0.4, 8.0: 0.15}}, flagged=(2.0,))
REPORT_B = attack_report({"pgd": {0.0: 0.85, 2.0: 0.6, 8.0: 0.3},
                          "random": {0.0: 0.85, 2.0: 0.7, 8.0: 0.65}}, clean=0.85)


def test_the_figure_draws_accuracy_against_epsilon_per_attack_and_run():
    figure = plots.build_adversarial_accuracy([("λ=4", REPORT_A), ("λ=0", REPORT_B)])
    ax = figure.axes[0]
    drawn = {}
    for line in ax.get_lines():
        if len(line.get_xdata()) > 1:
            drawn[(line.get_color(), line.get_linestyle())] = (
                list(line.get_xdata()), list(line.get_ydata()))
    for report, style in ((REPORT_A, "-"), (REPORT_B, "--")):
        for attack in {r["attack"] for r in report["adversarial"]}:
            points = sorted((r["epsilon"], 100 * r["accuracy"]) for r in report["adversarial"]
                            if r["attack"] == attack)
            x, y = drawn.pop((ATTACK_STYLE[attack][0], style))
            assert x == [p[0] for p in points] and y == pytest.approx([p[1] for p in points])
    assert not drawn
    rings = [line for line in ax.get_lines() if line.get_marker() == "o"
             and line.get_markerfacecolor() == "none"]
    assert [(line.get_xdata()[0], line.get_ydata()[0]) for line in rings] == [(2.0, 45.0)]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "2", "8"]
    assert "1/255" in ax.get_xlabel() and "100 test images" in ax.get_ylabel()
    texts = [t.get_text() for t in figure.legends[0].get_texts()]
    assert "λ=4: clean 90.0%, float counterpart 80.0%" in texts
    assert "possible gradient masking: a gradient-free attack beats PGD beyond chance" in texts
    assert {ATTACK_STYLE[a][1] for a in ("pgd", "random", "worst")} <= set(texts)


def test_the_figure_needs_a_report_with_attacks():
    with pytest.raises(ConfigError, match="lcr-evaluate --attacks"):
        plots.build_adversarial_accuracy([("a", {"adversarial": []})])


def test_lcr_plots_draws_the_attack_figure_where_a_report_has_attacks(tmp_path):
    dirs = [tmp_path / "a", tmp_path / "b"]
    for d, report in zip(dirs, (REPORT_A, REPORT_B)):
        d.mkdir()
        runs.save_json(report, str(d / "robustness.json"))
    paths = plots_command.robustness_figures(["a", "b"], [str(d) for d in dirs], str(tmp_path))
    assert paths == [str(tmp_path / plots.ADVERSARIAL_FILE)]  # no corruption: no such figure
    assert open(paths[0], "rb").read(8) == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- lcr-study
def study_settings(*argv):
    parser = study_command.cli.parser("lcr-study", "", study.StudySettings)
    return cfg.validate(cfg.build_config(parser.parse_args(list(argv)), study.StudySettings))


#: Per run (arm, seed): test accuracy, mCE, PGD and worst-case accuracy at ε = 2
#: and 8, the ε flagged for masking, the empirical estimate and log10 of the
#: product of the exact norms.
RUNS = {
    ("lcr_lambda=0", 0): (0.90, 1.20, 0.50, 0.20, 0.45, 0.15, [], 4.0, 9.0),
    ("lcr_lambda=0", 1): (0.91, 1.10, 0.55, 0.25, 0.50, 0.20, [2.0], 3.0, 7.0),
    ("lcr_lambda=4", 0): (0.92, 1.00, 0.60, 0.30, 0.58, 0.28, [], 2.0, 8.0),
    ("lcr_lambda=4", 1): (0.93, 0.90, 0.70, 0.40, 0.66, 0.35, [], 0.5, 5.0),
}


def fake_runs(settings):
    """Finished run directories with the reports lcr-evaluate and lcr-diagnose write."""
    for job in study.jobs(settings):
        acc, mce, pgd2, pgd8, worst2, worst8, flagged, empirical, log10 = RUNS[
            (job.arm.name, job.seed)]
        os.makedirs(job.directory)
        cfg.save_recipe(job.config, os.path.join(job.directory, "config.yaml"))
        runs.save_json({"test_accuracy": acc}, os.path.join(job.directory, "results.json"))
        values = {"pgd": (pgd2, pgd8), "worst": (worst2, worst8)}
        runs.save_json({
            "mce": mce, "severities": [1, 3, 5], "num_images": 360,
            "adversarial": [{"attack": a, "epsilon": e, "accuracy": v[i]}
                            for a, v in values.items() for i, e in enumerate((2.0, 8.0))],
            "gradient_masking": [{"epsilon": e, "possible_masking": e in flagged}
                                 for e in (2.0, 8.0)],
            "adversarial_setup": {"pgd_steps": 10, "samples": 360,
                                  "masking_test": adv.MASKING_TEST},
        }, os.path.join(job.directory, "robustness.json"))
        blocks = [{"sigma_rm_binary": s, "exact_product": s * 2} for s in (1.0, 2.0, 3.0)]
        runs.save_json({"blocks": blocks, "summary": {"network": {
            "empirical": {"l2_input_max": empirical}, "empirical_lipschitz": empirical,
            "log10_exact_product": log10}}}, os.path.join(job.directory, "lipschitz.json"))


STUDY_ARGS = ["--vary", "lcr_lambda=0,4", "--seeds", "2", "--robustness", "--diagnose",
              "--epsilons", "2,8", *TINY]


def test_the_study_reports_robust_accuracy_and_its_rank_correlations(tmp_path, capsys):
    settings = study_settings(*STUDY_ARGS, "--output-dir", str(tmp_path))
    fake_runs(settings)
    report = study.run_study(settings)  # everything finished: nothing trained or measured
    robust = ["robust_accuracy_pgd_eps2", "robust_accuracy_pgd_eps8",
              "robust_accuracy_worst_eps2", "robust_accuracy_worst_eps8"]
    assert report["metrics"] == ["test_accuracy", "mce", *robust, "retention_rank_correlation",
                                 "empirical_lipschitz", "log10_exact_norm_product"]
    column = {m: i + 2 for i, m in enumerate(robust)}
    column.update(empirical_lipschitz=7, log10_exact_norm_product=8)
    control, lcr = report["arms"]
    for metric, index in column.items():
        mine = [RUNS[("lcr_lambda=4", s)][index] for s in (0, 1)]
        base = [RUNS[("lcr_lambda=0", s)][index] for s in (0, 1)]
        assert lcr[metric]["mean"] == pytest.approx(np.mean(mine))
        assert lcr[metric]["std"] == pytest.approx(np.std(mine, ddof=1))
        paired = lcr[f"{metric}_vs_control"]
        assert paired["differences"] == pytest.approx(np.subtract(mine, base))
        assert paired["p_value"] == pytest.approx(stats.ttest_rel(mine, base).pvalue)
    assert control["retention_rank_correlation"]["mean"] == pytest.approx(1.0)  # σ_RM ∝ product
    assert report["gradient_masking"] == [{"arm": "lcr_lambda=0", "seed": 1, "epsilons": [2.0]}]
    # Spearman over the four runs, each estimate against each robust accuracy
    correlations = report["lipschitz_vs_robustness"]
    assert [(c["estimate"], c["metric"]) for c in correlations] == [
        (e, m) for e in ("empirical_lipschitz", "log10_exact_norm_product") for m in robust]
    order = sorted(RUNS)
    for c in correlations:
        x = [RUNS[k][column[c["estimate"]]] for k in order]
        y = [RUNS[k][column[c["metric"]]] for k in order]
        expected = stats.spearmanr(x, y)
        assert c["runs"] == 4
        assert c["spearman"] == pytest.approx(expected.statistic)
        assert c["p_value"] == pytest.approx(expected.pvalue)
    # the empirical estimate falls as PGD's accuracy rises, run by run: ρ = −1
    assert correlations[0]["spearman"] == pytest.approx(-1.0)
    text = study_command.markdown(report)
    assert "| arm | n | PGD accuracy at ε=2/255 (%): mean ± std |" in text
    assert "| lcr_lambda=4 | 2 | 65.00 ± 7.07 |" in text
    assert "| empirical Lipschitz estimate | PGD accuracy at ε=2/255 (%) | -1.000 |" in text
    assert "- lcr_lambda=0 seed 1: ε = 2" in text
    # the command writes the same tables
    assert study_command.main([*STUDY_ARGS, "--output-dir", str(tmp_path)]) == 0
    assert "worst-case (per image, every attack) accuracy at ε=8/255 (%)" in capsys.readouterr().out
    row = next(r for r in json.loads((tmp_path / "study.json").read_text())["runs"]
               if r["arm"] == "lcr_lambda=4" and r["seed"] == 1)
    assert row["robust_accuracy_pgd_eps8"] == 0.40 and row["empirical_lipschitz"] == 0.5


def test_a_robustness_report_of_other_settings_is_measured_again_in_its_stale_part():
    settings = study_settings("--robustness", "--epsilons", "2,8", "--attack-samples", "100",
                              "--output-dir", "S")
    report = {"mce": 1.0, "severities": [1, 3, 5], "num_images": 360,
              "adversarial": [{"attack": a, "epsilon": e, "accuracy": 0.5}
                              for a in ("pgd", "worst") for e in (2.0, 8.0)],
              "adversarial_setup": {"pgd_steps": 10, "samples": 100,
                                    "masking_test": adv.MASKING_TEST},
              "weights_sha256": "abc"}
    assert study.stale_parts(report, settings, {"weights_sha256": "abc"}) == []
    assert study.stale_parts(report, settings, {"weights_sha256": "new"}) == [
        "corruptions", "attacks"]  # another network: everything
    for change, stale in (
            ({"severities": [1, 5]}, ["corruptions"]), ({"mce": None}, ["corruptions"]),
            ({"adversarial": report["adversarial"][1:]}, ["attacks"]),
            ({"adversarial_setup": {**report["adversarial_setup"], "pgd_steps": 5}}, ["attacks"]),
            ({"adversarial_setup": {**report["adversarial_setup"], "samples": 360}}, ["attacks"]),
            ({"adversarial_setup": {"pgd_steps": 10, "samples": 100}}, ["attacks"])):  # old test
        assert study.stale_parts({**report, **change}, settings) == stale, change
    cache = os.path.join("S", study.CORRUPTION_CACHE)
    assert study.evaluate_flags(settings, "RUN") == [
        "--model-dir", "RUN", "--quiet", "--no-plot", "--severities", "1", "3", "5",
        "--cache-dir", cache, "--attacks", "pgd", "--epsilons", "2", "8", "--pgd-steps", "10",
        "--attack-samples", "100"]
    assert study.evaluate_flags(settings, "RUN", ["attacks"])[4:7] == [
        "--corruptions", "none", "--attacks"]
    uncached = study_settings("--robustness", "--corruption-cache", "false")
    assert "--cache-dir" not in study.evaluate_flags(uncached, "RUN", ["corruptions"])
    without = study_settings("--robustness", "--attacks", "none")
    assert without.robust_metrics == [] and "--attacks" not in study.evaluate_flags(without, "R")
    assert study.stale_parts(None, without) == ["corruptions"]


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    """A run of :data:`helpers.RUN_SETTINGS` on the digits' own 16×16 images, the
    size the corruptions are generated at."""
    path = tmp_path_factory.mktemp("study_run") / "run"
    tf.keras.utils.set_random_seed(0)
    training.run(TrainConfig(**{**RUN_SETTINGS, "input_size": 16}, output_dir=str(path)))
    tf.keras.backend.clear_session()
    return path


class CountedStudy:
    """Two finished runs of a study (copies of the tiny run, two seeds) whose
    ``lcr-evaluate`` runs in this process, counting per study run the
    corrupted sets generated (by a cheap stand-in), the corrupted sets
    classified and the adversarial batches computed."""

    # the settings of study_run, two seeds
    BASE = ["--vary", "lcr_lambda=4", "--seeds", "2", "--model", "resnet8", "--input-size",
            "16", "--epochs", "2", "--steps-per-epoch", "10", "--batch-size", "32",
            "--validation-split", "0", "--robustness", "--attack-samples", "16",
            "--pgd-steps", "1"]

    def __init__(self, run, directory, monkeypatch):
        self.directory = directory
        self.work = {"generated": 0, "measured": 0, "attacked": 0}

        def counted(key, function):
            def call(*args, **kwargs):
                self.work[key] += 1
                return function(*args, **kwargs)
            return call

        def fake_corruption(images, corruption, severity, seed=0, **kwargs):  # cheap, distinct
            return np.roll(images, severity, axis=1)

        def in_process(name, flags):  # lcr-evaluate as its process would run it
            code = importlib.import_module(f"lcr_larq.cli.{name}").main(flags)
            assert code == 0, flags

        monkeypatch.setattr(corruptions, "corrupt_images", counted("generated", fake_corruption))
        # report.py calls the name it imported
        monkeypatch.setattr(evaluation_report, "corrupted",
                            counted("measured", corruptions.corrupted))
        monkeypatch.setattr(adv, "adversarial_images", counted("attacked", adv.adversarial_images))
        monkeypatch.setattr(study, "_run_command", in_process)
        self.jobs = study.jobs(study_settings(*self.BASE, "--output-dir", str(directory)))
        for job in self.jobs:
            shutil.copytree(run, job.directory, ignore=shutil.ignore_patterns(
                "robustness.json", "lipschitz.json", "*.png"))
            cfg.save_recipe(job.config, os.path.join(job.directory, "config.yaml"))

    def run(self, *flags) -> list[dict]:
        """``lcr-study`` with ``flags``: each run's robustness.json, the work in ``work``."""
        for key in self.work:
            self.work[key] = 0
        report = study.run_study(study_settings(*self.BASE, *flags,
                                                "--output-dir", str(self.directory)))
        assert report["failed"] == [] and all(r["status"] == "finished" for r in report["runs"])
        return [runs.load_json(os.path.join(j.directory, "robustness.json")) for j in self.jobs]


def test_a_study_generates_each_corrupted_set_once(study_run, tmp_path, monkeypatch):
    """Both runs are evaluated on the same images with the same corruption
    seed: each set is generated once for the study, kept in its cache."""
    counted = CountedStudy(study_run, tmp_path, monkeypatch)
    sets = len(corruptions.CORRUPTIONS)  # the 15 of the mCE, at one severity
    counted.run("--mce-severities", "1", "--attacks", "none")
    assert counted.work == {"generated": sets, "measured": 2 * sets, "attacked": 0}
    assert len(os.listdir(tmp_path / study.CORRUPTION_CACHE)) == sets


def test_a_study_measures_again_only_what_is_stale(study_run, tmp_path, monkeypatch):
    """A change of --epsilons on a finished study measures the attacks again and
    keeps the corruptions; a change of --mce-severities the reverse."""
    counted = CountedStudy(study_run, tmp_path, monkeypatch)
    first = counted.run("--mce-severities", "1", "--epsilons", "2")
    assert counted.work["attacked"] == 2 * 3  # pgd and its two checks, per run
    assert counted.run("--mce-severities", "1", "--epsilons", "2") == first
    assert counted.work == {"generated": 0, "measured": 0, "attacked": 0}
    # other ε: the attacks again (3 attacks × 2 ε per run), the corruptions kept
    attacks = counted.run("--mce-severities", "1", "--epsilons", "2,4")
    assert counted.work == {"generated": 0, "measured": 0, "attacked": 2 * 3 * 2}
    for before, after in zip(first, attacks):
        for key in evaluation_report.PART_KEYS["corruptions"]:
            assert after[key] == before[key], key
        assert sorted({r["epsilon"] for r in after["adversarial"]}) == [2.0, 4.0]
        assert after["seconds"]["corrupt"] == before["seconds"]["corrupt"]
    # another severity: the corruptions again (severity 1 from the cache), the attacks kept
    severities = counted.run("--mce-severities", "1,2", "--epsilons", "2,4")
    sets = len(corruptions.CORRUPTIONS)
    assert counted.work == {"generated": sets, "measured": 2 * 2 * sets, "attacked": 0}
    for before, after in zip(attacks, severities):
        for key in evaluation_report.PART_KEYS["attacks"]:
            assert after[key] == before[key], key
        assert after["severities"] == [1, 2] and after["mce"] != before["mce"]


def test_bad_study_attacks_are_one_line_errors(capsys):
    code = study_command.main(["--robustness", "--attacks", "cw", "--output-dir", "/tmp/never"])
    assert "--attacks: unknown attack 'cw'" in one_line_error(capsys, code)
    code = study_command.main(["--robustness", "--epsilons", "-2", "--output-dir", "/tmp/never"])
    assert "--epsilons must be >= 0" in one_line_error(capsys, code)


# --------------------------------------------------------------------------- lcr-diagnose
def test_diagnose_puts_the_empirical_estimate_beside_the_exact_product(trained_run, tmp_path,
                                                                       capsys):
    out = tmp_path / "lipschitz.json"
    code = diagnose_command.main([
        "--model-dir", str(trained_run), "--methods", "exact", "--max-layers", "2",
        "--empirical-samples", "30", "--output", str(out), "--quiet", "--no-plot",
    ])
    printed = capsys.readouterr().out
    assert code == 0
    report = json.loads(out.read_text())
    network = report["summary"]["network"]
    exact = [row["exact"] for row in report["layers"]]
    assert network["layers"] == 2 and not network["all_binary_convs"]  # 2 of its 6
    assert network["exact_product"] == pytest.approx(math.prod(exact))
    assert network["log10_exact_product"] == pytest.approx(math.log10(math.prod(exact)))
    # the largest norm of the margin's input gradient through the STE, by hand
    run = runs.load_run(str(trained_run))
    pixels, labels = runs.test_images(run.dataset, 30)
    inputs = run.dataset.normalize(pixels)
    with tf.GradientTape(watch_accessed_variables=False) as tape, \
            straight_through(run.model):
        tape.watch(inputs)
        logits = run.model(inputs, training=False)
        true = tf.reduce_sum(logits * tf.one_hot(labels, 10), axis=1)
        other = tf.reduce_max(logits - 1e9 * tf.one_hot(labels, 10), axis=1)
        margin = tf.reduce_sum(true - other)
    norms = np.linalg.norm(tape.gradient(margin, inputs).numpy().reshape(30, -1), axis=1)
    empirical = network["empirical"]
    assert empirical["samples"] == 30 and empirical["argmax_sample"] == int(np.argmax(norms))
    assert network["empirical_lipschitz"] == pytest.approx(norms.max(), rel=1e-5)
    assert empirical["l2_input_mean"] == pytest.approx(norms.mean(), rel=1e-5)
    assert f"empirical local Lipschitz estimate {norms.max():.4g}" in printed
    assert f"product of the exact norms of the diagnosed 2 binary convs " \
           f"{math.prod(exact):.4g}" in printed


def test_statistics_rank_correlation_is_scipys():
    x, y = [3.0, 1.0, 4.0, 1.5, 5.0], [2.0, 7.0, 1.0, 8.0, 2.5]
    rho, p = statistics.rank_correlation(x, y)
    expected = stats.spearmanr(x, y)
    assert rho == pytest.approx(expected.statistic) and p == pytest.approx(expected.pvalue)
    assert statistics.rank_correlation([1, 2], [2, 1]) == (None, None)

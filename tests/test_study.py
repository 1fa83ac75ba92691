"""lcr-study: the statistics against scipy, the grid of arms, resume, failures, recipes."""

import dataclasses
import glob
import json
import os

import numpy as np
import pytest
from scipy import stats

from lcr_larq import settings as cfg
from lcr_larq.cli import study as command
from lcr_larq.errors import ConfigError
from lcr_larq.experiments import statistics, study

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--model", "resnet8", "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "16",
        "--input-size", "8",
        "--lcr-samples", "8", "--validation-split", "0"]


# --------------------------------------------------------------------------- statistics
@pytest.mark.parametrize("values", [
    [0.91, 0.93],                       # n = 2
    [0.90, 0.93, 0.95, 0.88, 0.94],
    [0.5, 0.75, 0.6],
])
def test_summary_is_the_student_t_interval_of_scipy(values):
    s = statistics.summary(values)
    mean, sem = np.mean(values), stats.sem(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=mean, scale=sem)
    assert s["n"] == len(values)
    assert s["mean"] == pytest.approx(mean) and s["std"] == pytest.approx(np.std(values, ddof=1))
    assert s["ci"] == pytest.approx([low, high], rel=1e-12)


def test_summary_of_degenerate_arms():
    same = statistics.summary([0.9, 0.9, 0.9])  # zero variance: an interval of width 0
    assert same["std"] == 0 and same["ci"] == [0.9, 0.9]
    one = statistics.summary([0.7])
    assert one == {"n": 1, "mean": 0.7, "std": None, "ci": None}
    assert statistics.summary([])["n"] == 0


@pytest.mark.parametrize("arm, control", [
    ({0: 0.95, 1: 0.92}, {0: 0.90, 1: 0.91}),                       # n = 2
    ({0: 0.95, 1: 0.92, 2: 0.97, 3: 0.91}, {0: 0.90, 1: 0.93, 2: 0.92, 3: 0.89}),
])
def test_paired_test_is_scipys_ttest_rel(arm, control):
    r = statistics.paired(arm, control)
    seeds = sorted(arm)
    a, b = [arm[s] for s in seeds], [control[s] for s in seeds]
    assert r["p_value"] == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-10)
    d = np.subtract(a, b)
    low, high = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
    assert r["mean"] == pytest.approx(d.mean()) and r["ci"] == pytest.approx([low, high])


def test_paired_uses_the_common_seeds_and_defines_degenerate_cases():
    r = statistics.paired({0: 0.9, 1: 0.8, 5: 0.1}, {0: 0.85, 1: 0.75, 2: 0.3})
    assert r["seeds"] == [0, 1] and r["differences"] == pytest.approx([0.05, 0.05])
    assert r["p_value"] == 0.0 and r["ci"] == pytest.approx([0.05, 0.05])  # no spread
    assert statistics.paired({0: 0.5, 1: 0.6}, {0: 0.5, 1: 0.6})["p_value"] == 1.0
    assert statistics.paired({0: 0.5}, {0: 0.4})["p_value"] is None


# --------------------------------------------------------------------------- the grid
def settings(*argv):
    parser = command.cli.parser("lcr-study", "", study.StudySettings)
    return cfg.validate(cfg.build_config(parser.parse_args(list(argv)), study.StudySettings))


def test_arms_are_the_grid_with_the_control_first(tmp_path):
    s = settings("--vary", "lcr_lambda=4,0", "--vary", "lcr_samples=32,16", "--seeds", "2",
                 "--seed", "7", "--output-dir", str(tmp_path))
    names = [a.name for a in study.arms(s)]
    assert names == ["lcr_lambda=4_lcr_samples=32", "lcr_lambda=4_lcr_samples=16",
                     "lcr_lambda=0_lcr_samples=32", "lcr_lambda=0_lcr_samples=16"]
    jobs = study.jobs(s)
    assert [j.seed for j in jobs[:2]] == [7, 8] and len(jobs) == 8
    assert jobs[2].config.lcr_lambda == 4.0 and jobs[2].config.lcr_samples == 16
    assert jobs[2].directory == os.path.join(str(tmp_path), names[1], "seed_7")


@pytest.mark.parametrize("vary, needle", [
    ("lamda=0,4", "unknown field 'lamda'; valid fields: ["),
    ("seed=1,2", "unknown field 'seed'"),
    ("lcr_lambda=0,abc", "lcr_lambda needs a finite number, got 'abc'"),
    ("lcr_lambda", "write FIELD=v1,v2"),
    ("lcr_lambda=0,0", "a value appears twice"),
    ("lcr_lambda=0,-1", "--lcr-lambda must be >= 0"),
    ("model=resnet20,vgg", "unknown model 'vgg'"),
])
def test_bad_vary_is_a_one_line_error_naming_the_valid_fields(vary, needle, capsys):
    code = command.main(["--vary", vary, "--output-dir", "/tmp/never-written"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error:"), err
    assert needle in err
    if "valid fields" in needle:
        assert "'lcr_lambda'" in err and "'seed'" not in err.split("valid fields")[1]


# --------------------------------------------------------------------------- running
def test_an_interrupted_study_completes_with_exactly_the_missing_runs(tmp_path, capsys):
    argv = ["--vary", "lcr_lambda=0,4", "--seeds", "1", "--output-dir", str(tmp_path), *TINY]
    s = settings(*argv)
    lines = []

    def stop_after_one_run(line):
        lines.append(line)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        study.run_study(s, stop_after_one_run)
    assert lines[0].startswith("[1/2] lcr_lambda=0 seed 0: "), lines
    done = {d: os.path.getmtime(d) for d in glob.glob(str(tmp_path / "*" / "*" / "results.json"))}
    assert len(done) == 1
    assert os.listdir(tmp_path / "lcr_lambda=0" / "seed_0.claims") == ["0.released"]
    second = []
    report = study.run_study(settings(*argv), second.append)
    trained = [line for line in second if "lcr_lambda=" in line and "seed" in line]
    assert len(trained) == 1 and "lcr_lambda=4" in trained[0], second
    assert {d: os.path.getmtime(d) for d in done} == done  # the finished run left alone
    assert [(r["arm"], r["seed"]) for r in report["runs"]] == [
        ("lcr_lambda=0", 0), ("lcr_lambda=4", 0)]
    assert all(r["status"] == "finished" for r in report["runs"])
    lcr = next(a for a in report["arms"] if a["arm"] == "lcr_lambda=4")
    assert lcr["test_accuracy"]["n"] == 1 and lcr["test_accuracy_vs_control"]["seeds"] == [0]
    # A third run of the command trains nothing and writes the same report.
    assert command.main(argv) == 0
    out = capsys.readouterr().out
    assert "| lcr_lambda=0 | 1 |" in out and "(control)" in out
    written = json.loads((tmp_path / "study.json").read_text())
    assert written["runs"] == json.loads(json.dumps(report["runs"]))
    for name in ("study.csv", "study.md", "study.png", "study.yaml"):
        assert (tmp_path / name).is_file()


def test_a_study_varies_mixed_precision(tmp_path, capsys):
    """``--vary mixed_precision=off,bfloat16``: each arm's runs train under
    its policy (results.json says so) and are compared as any other arm."""
    code = command.main(["--vary", "mixed_precision=off,bfloat16", "--seeds", "1",
                         "--lcr-lambda", "0", "--output-dir", str(tmp_path), *TINY])
    assert code == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "study.json").read_text())
    assert [a["arm"] for a in report["arms"]] == ["mixed_precision=off",
                                                   "mixed_precision=bfloat16"]
    for arm in ("off", "bfloat16"):
        with open(tmp_path / f"mixed_precision={arm}" / "seed_0" / "results.json") as handle:
            assert json.load(handle)["mixed_precision"] == arm
    assert all(r["status"] == "finished" for r in report["runs"])
    bfloat16 = report["arms"][1]
    assert bfloat16["test_accuracy_vs_control"]["seeds"] == [0]
    # Computed as trained: the bfloat16 network's own accuracy, the float32
    # run's test accuracy (it computes as trained), paired as any metric.
    runs = {r["arm"]: r for r in report["runs"]}
    with open(tmp_path / "mixed_precision=bfloat16" / "seed_0" / "results.json") as handle:
        as_trained = json.load(handle)["test_accuracy_as_trained"]
    assert runs["mixed_precision=bfloat16"]["test_accuracy_as_trained"] == as_trained
    off = runs["mixed_precision=off"]
    assert off["test_accuracy_as_trained"] == off["test_accuracy"]
    assert bfloat16["test_accuracy_as_trained_vs_control"]["mean"] == pytest.approx(
        as_trained - off["test_accuracy"])
    code = command.main(["--vary", "mixed_precision=off,float8", "--output-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--mixed-precision must be one of" in err and "float8" in err


def test_failed_runs_are_listed_never_dropped(tmp_path, capsys):
    # Teachers that exist but hold no model: the runs fail when they load them.
    empty = [tmp_path / "teacher_a", tmp_path / "teacher_b"]
    for folder in empty:
        folder.mkdir()
    code = command.main(["--vary", f"teacher={empty[0]},{empty[1]}", "--lcr-reference", "teacher",
                         "--teacher", str(empty[0]),
                         "--lcr-lambda", "4", "--seeds", "1", "--output-dir",
                         str(tmp_path / "study"), *TINY])
    assert code == 1
    report = json.loads((tmp_path / "study" / "study.json").read_text())
    assert [f["arm"] for f in report["failed"]] == [f"teacher={m}" for m in empty]
    assert all("holds no bnn.keras or model.keras" in f["message"] for f in report["failed"])
    assert [a["arm"] for a in report["arms"]] == [f"teacher={m}" for m in empty]
    assert report["metrics"] == [] and [r["status"] for r in report["runs"]] == ["failed"] * 2
    assert "failed or diverged" in capsys.readouterr().out


def test_a_study_of_missing_data_is_refused_before_it_starts(tmp_path, capsys):
    missing = tmp_path / "absent.npz"
    code = command.main(["--vary", f"dataset=digits,npz:{missing}", "--seeds", "1",
                         "--output-dir", str(tmp_path / "study"), *TINY])
    assert code == 2 and "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "study").exists()


# --------------------------------------------------------------------------- reports
def synthetic_report():
    runs = [{"arm": arm, "seed": seed, "status": "finished", "test_accuracy": acc}
            for arm, accs in (("lcr_lambda=0", [0.90, 0.92, 0.85]),
                              ("lcr_lambda=4", [0.94, 0.93, 0.92]))
            for seed, acc in enumerate(accs)]
    base = {r["seed"]: r["test_accuracy"] for r in runs if r["arm"] == "lcr_lambda=0"}
    arms = []
    for name in ("lcr_lambda=0", "lcr_lambda=4"):
        mine = {r["seed"]: r["test_accuracy"] for r in runs if r["arm"] == name}
        arm = {"arm": name, "values": {"lcr_lambda": float(name.split("=")[1])},
               "control": name == "lcr_lambda=0",
               "test_accuracy": statistics.summary(mine.values())}
        if not arm["control"]:
            arm["test_accuracy_vs_control"] = statistics.paired(mine, base)
        arms.append(arm)
    return {"control": "lcr_lambda=0", "vary": ["lcr_lambda=0,4"], "seeds": [0, 1, 2],
            "metrics": ["test_accuracy"], "confidence": 0.95, "arms": arms, "runs": runs,
            "failed": [{"arm": "lcr_lambda=4", "seed": 3, "message": "training diverged"}]}


def test_markdown_table_holds_the_numbers(tmp_path):
    report = synthetic_report()
    text = command.markdown(report)
    lcr = report["arms"][1]["test_accuracy_vs_control"]
    assert f"{100 * lcr['mean']:+.2f}" in text and f"{lcr['p_value']:.3g}" in text
    assert "| lcr_lambda=0 | 3 | 89.00 ± 3.61 |" in text
    assert "- lcr_lambda=4 seed 3: training diverged" in text
    from lcr_larq import plots

    path = plots.plot_study(report, str(tmp_path / "study.png"))
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_the_study_plot_names_every_arm_by_its_value():
    from lcr_larq import plots

    report = synthetic_report()
    extra = {**report["arms"][1], "arm": "lcr_lambda=0.5", "values": {"lcr_lambda": 0.5}}
    report["arms"].append(extra)
    report["runs"] += [{**r, "arm": "lcr_lambda=0.5"} for r in report["runs"]
                       if r["arm"] == "lcr_lambda=4"]
    figure = plots.build_study(report)
    left = figure.axes[0]
    # Every label stays readable at the figure's size (none thinned away).
    assert [t.get_text() for t in left.get_xticklabels()] == ["0 (control)", "4", "0.5"]
    assert left.get_xlabel() == "lcr_lambda"


RECIPES = sorted(glob.glob(os.path.join(ROOT, "configs", "studies", "*.yaml")))


def test_the_papers_studies_are_recipes():
    names = {os.path.basename(p) for p in RECIPES}
    assert {"study_table3_lambda.yaml", "study_table2_resnet20.yaml",
            "study_table2_resnet20_bireal.yaml", "study_table2_resnet20_1w32a.yaml",
            "study_table2_resnet18.yaml"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=os.path.basename)
def test_study_recipes_expand_to_their_arms_and_run_on_digits(path):
    s = settings("--config", path)
    arms = study.arms(s)
    lambdas = [dict(a.values)["lcr_lambda"] for a in arms]
    assert lambdas[0] == 0.0  # the IR-Net baseline is the control
    if "table3" in path:
        assert lambdas == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0]  # log2 λ from −1 to 3
    assert s.dataset == "cifar10" and s.seeds >= 3
    digits = settings("--config", path, "--dataset", "digits", "--epochs", "40",
                      "--validation-split", "0.1")
    assert digits.dataset == "digits" and len(study.jobs(digits)) == len(arms) * s.seeds


def test_a_run_recorded_at_the_size_its_model_raised_the_data_to_is_finished(tmp_path):
    """A run records the input size it used; a study's job without --input-size
    serves the same size, so the run is finished, not stale."""
    for model, recorded, finished in (("birealnet", 32, True), ("birealnet", None, True),
                                      ("birealnet", 48, False), ("resnet20", None, True),
                                      ("resnet20", 16, True), ("resnet20", 32, False)):
        s = settings("--vary", "lcr_lambda=0", "--seeds", "1", "--model", model,
                     "--output-dir", str(tmp_path / f"{model}_{recorded}"))
        job = study.jobs(s)[0]
        assert job.config.input_size is None
        os.makedirs(job.directory)
        cfg.save_recipe(dataclasses.replace(job.config, input_size=recorded),
                        os.path.join(job.directory, "config.yaml"))
        with open(os.path.join(job.directory, "results.json"), "w") as handle:
            json.dump({"test_accuracy": 0.5}, handle)
        assert (study.finished(job) is not None) == finished, (model, recorded)


def test_bad_vary_from_a_recipe_names_the_key(tmp_path):
    recipe = tmp_path / "s.yaml"
    recipe.write_text('vary: ["lcr_lambda=0,x"]\n')
    with pytest.raises(ConfigError, match="lcr_lambda needs a finite number"):
        settings("--config", str(recipe))

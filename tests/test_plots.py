"""python -m lcr_larq.plots: the figures of one or two runs are valid PNGs."""

import json

import matplotlib.image as mpimg
import numpy as np
import pytest
from test_evaluate import make_tiny_run

from lcr_larq import evaluate, plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    return make_tiny_run(base / "tiny_lcr", 4.0), make_tiny_run(base / "tiny_plain", 0.0, seed=1)


def assert_png(path):
    with open(path, "rb") as handle:
        assert handle.read(8) == PNG_MAGIC, path
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100, path
    assert image[..., :3].std() > 0.01, f"{path} is blank"


def test_history_columns_of_an_lcr_run(runs):
    history = plots.read_history(str(runs[0]))
    assert plots.sigma_ratio_columns(history) == ["sigma_ratio_1", "sigma_ratio_2"]
    assert len(history["sigma_ratio_1"]) == 2 and all(v > 0 for v in history["sigma_ratio_1"])
    assert plots.sigma_ratio_columns(plots.read_history(str(runs[1]))) == []


def test_plots_command_two_runs_with_reports(runs, tmp_path, capsys):
    lcr, plain = runs
    # robustness reports of both runs and a diagnostics report of the first
    for run_dir in runs:
        report = evaluate.evaluate_run(
            str(run_dir), corruptions=["contrast", "fog"], severities=[2, 5], max_images=24
        )
        evaluate.write_report(report, str(run_dir / "robustness.json"))
    from lcr_larq import diagnose

    rep = diagnose.diagnose_run(str(lcr), ["exact", "gram_bound", "retention_estimate"],
                                samples=8)
    (lcr / "lipschitz.json").write_text(json.dumps(rep))

    code = plots.main(["--model-dir", str(lcr), "--compare", str(plain),
                       "--output-dir", str(tmp_path), "--samples", "16",
                       "--group", f"both:{lcr},{plain}", "--group", f"plain:{plain}"])
    assert code == 0
    out = capsys.readouterr().out.splitlines()
    written = {line.split("/")[-1] for line in out if line.startswith("wrote ")}
    assert written == {plots.SIGMA_FILE, plots.HISTOGRAM_FILE, plots.CORRELATION_FILE,
                       plots.CORRUPTION_FILE, plots.LIPSCHITZ_FILE, plots.GROUPS_FILE}
    for name in written:
        assert_png(tmp_path / name)
    # the group summary: mean and sample std of the runs' mCE
    mces = [json.loads((d / "robustness.json").read_text())["mce"] for d in runs]
    both = next(line for line in out if line.startswith("both: "))
    assert f"mCE {np.mean(mces):.4f} ± {np.std(mces, ddof=1):.4f}" in both
    assert "over 2 runs" in both


def test_at_least_three_figures_for_a_plain_run(runs, tmp_path):
    paths = plots.make_plots(str(runs[1]), output_dir=str(tmp_path / "out"), samples=8)
    names = {p.split("/")[-1] for p in paths}
    assert {plots.SIGMA_FILE, plots.HISTOGRAM_FILE, plots.CORRELATION_FILE} <= names
    for path in paths:
        assert_png(path)


def test_correlation_measures():
    rng = np.random.default_rng(0)
    # independent ±1 channels over many positions: cosines near the identity
    x = np.where(rng.random((4, 64, 64, 8)) < 0.5, -1.0, 1.0)
    cos = plots.channel_cosines(x)
    assert np.allclose(np.diag(cos), 1) and np.abs(cos - np.eye(8)).max() < 0.05
    # a duplicated channel is perfectly correlated with its copy
    x[..., 1] = x[..., 0]
    assert plots.channel_cosines(x)[0, 1] == pytest.approx(1.0)
    # samples: a scaled copy correlates 1, a negated one -1
    a = rng.normal(size=(3, 5, 5, 2))
    a[1], a[2] = 3 * a[0], -a[0]
    corr = plots.sample_correlation(a)
    assert corr[0, 1] == pytest.approx(1.0) and corr[0, 2] == pytest.approx(-1.0)
    assert corr.shape == (3, 3)


@pytest.mark.parametrize("args, needle", [
    (lambda p: ["--model-dir", str(p / "missing")], "does not exist"),
    (lambda p: ["--model-dir", str(p), "--samples", "1"], "--samples must be >= 2"),
    (lambda p: ["--model-dir", str(p), "--group", "nolabel"], "write LABEL:DIR1,DIR2"),
    (lambda p: ["--model-dir", str(p), "--group", f"x:{p}"], "has no robustness.json"),
])
def test_bad_input_is_one_line(tmp_path, capsys, args, needle):
    code = plots.main(args(tmp_path))
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error:"), err
    assert needle in err


def test_corrupt_compare_dir_is_one_line(runs, tmp_path, capsys):
    (tmp_path / "bnn.keras").write_bytes(b"\x00" * 10)
    code = plots.main(["--model-dir", str(runs[0]), "--compare", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "not a loadable Keras model" in err

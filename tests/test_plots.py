"""lcr_larq.plots: figures drawn from small hand-made data (no training)
are PNGs a reader can read: labelled axes, legends off the data, distinct block
colours, severities only where run, no text under 7 pt, no overlapping labels."""

import itertools

import matplotlib.colors as mcolors
import matplotlib.image as mpimg
import numpy as np
import pytest
from matplotlib.text import Text

from lcr_larq import plots
from lcr_larq.errors import ConfigError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CORRUPTIONS = [
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
    "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
    "elastic_transform", "pixelate", "jpeg_compression", "speckle_noise", "gaussian_blur",
    "spatter", "saturate",
]


# --------------------------------------------------------------------------- data
def history(blocks: int, epochs: int = 12) -> dict[str, list[float]]:
    out = {"epoch": [float(e) for e in range(epochs)], "loss": [1.0] * epochs}
    t = np.arange(epochs)
    for k in range(1, blocks + 1):
        out[f"sigma_ratio_{k}"] = list(1.0 + 0.3 * np.sin(t / 3 + k) / k)
    return out


def final_rows(blocks: int, offset: float = 0.0) -> list[dict]:
    return [{"block": f"block{k}_out", "sigma_ratio": 0.8 + 0.05 * k + offset,
             "samples": 16} for k in range(1, blocks + 1)]


def robustness_report(severities, clean=0.9, corruptions=CORRUPTIONS, normalized=False):
    return {
        "severities": list(severities), "clean_accuracy": clean, "normalized": normalized,
        "mce": 1.0 + (1 - clean),
        "accuracy": {c: {str(s): clean - 0.1 * s - 0.005 * i for s in severities}
                     for i, c in enumerate(corruptions)},
        "corruption_error": {c: 0.5 + 0.01 * i + (1 - clean) for i, c in enumerate(corruptions)},
    }


def lipschitz_report(layers: int, with_blocks: bool = True) -> dict:
    rows = [{"name": f"stage{i // 4 + 1}_block{i}_conv{i % 2 + 1}", "exact": 2.0,
             "exact_latent": 1.0, "gram_bound": 2.4 + 0.01 * i, "gram_bound_latent": 1.2,
             "toeplitz_bound": 3.0, "toeplitz_bound_latent": 1.5}
            for i in range(layers)]
    methods = ["exact", "gram_bound", "toeplitz_bound"]
    blocks = [{"block": f"block{k}_out", "exact_product": 4.0 * k,
               "exact_product_latent": 1.0 * k, "sigma_rm_binary": 2.0 * k,
               "sigma_rm_latent": 0.9 * k} for k in range(1, layers // 2 + 1)]
    return {
        "model": "tiny", "methods": methods + (["retention_estimate"] if with_blocks else []),
        "layers": rows, "blocks": blocks if with_blocks else [],
        "summary": {"methods": {m: {"seconds_total": 0.5 + i, "seconds_total_latent": 0.25}
                                for i, m in enumerate(methods)}},
        "retention": {"seconds": 2.0},
    }


# --------------------------------------------------------------------------- checks
def assert_png(path):
    with open(path, "rb") as handle:
        assert handle.read(8) == PNG_MAGIC, path
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100, path
    assert image.shape[0] < 3000 and image.shape[1] < 3000, f"{path}: {image.shape}"
    assert image[..., :3].std() > 0.01, f"{path} is blank"


def data_axes(fig):
    """Axes that draw data (colorbars and switched-off panels excluded)."""
    return [ax for ax in fig.axes
            if ax.axison and not hasattr(ax, "_colorbar")
            and (ax.lines or ax.patches or ax.images or ax.collections)]


def overlap(a, b) -> float:
    """Area (px²) shared by two window extents."""
    return max(0.0, min(a.x1, b.x1) - max(a.x0, b.x0)) * max(0.0, min(a.y1, b.y1)
                                                             - max(a.y0, b.y0))


def assert_readable(fig):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axes = data_axes(fig)
    assert axes, "no panel with data"
    for ax in axes:
        assert ax.get_xlabel().strip() and ax.get_ylabel().strip(), ax.get_title()
        assert ax.get_title().strip() or fig.get_suptitle().strip()
    # legends (of axes and of the figure) cover no data area
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + list(fig.legends)
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for ax in axes:
            assert overlap(box, ax.get_window_extent(renderer)) < 1.0, (
                f"legend {[t.get_text() for t in legend.get_texts()][:3]} covers "
                f"{ax.get_title()!r}")
    # no text under 7 pt
    for text in fig.findobj(Text):
        if text.get_visible() and text.get_text().strip():
            assert text.get_fontsize() >= 7, (text.get_text(), text.get_fontsize())
    # neighbouring tick labels do not collide
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            boxes = [t.get_window_extent(renderer) for t in axis.get_ticklabels()
                     if t.get_visible() and t.get_text().strip()]
            for a, b in itertools.combinations(boxes, 2):
                assert overlap(a, b) < 1.0, f"overlapping tick labels in {ax.get_title()!r}"


def rgb_distance(colors) -> float:
    rgb = np.array([mcolors.to_rgb(c) for c in colors])
    gaps = np.linalg.norm(rgb[:, None] - rgb[None], axis=-1)
    return float(gaps[~np.eye(len(rgb), dtype=bool)].min())


# --------------------------------------------------------------------------- σ_B/σ_F
def test_sigma_ratio_columns_in_block_order():
    assert plots.sigma_ratio_columns(history(11)) == [f"sigma_ratio_{k}" for k in range(1, 12)]
    assert plots.sigma_ratio_columns({"loss": [1.0], "sigma_ratio_mean": [1.0]}) == []


@pytest.mark.parametrize("blocks", [2, 9, 16])
def test_sigma_ratio_blocks_are_told_apart(blocks):
    fig = plots.build_sigma_ratio([("λ=4 (LCR)", history(blocks), final_rows(blocks)),
                                   ("λ=0", {}, final_rows(blocks, 0.1))])
    assert_readable(fig)
    history_ax = fig.axes[0]
    lines = [line for line in history_ax.get_lines() if line.get_label().startswith("block")]
    assert [line.get_label() for line in lines] == [f"block {k}" for k in range(1, blocks + 1)]
    assert rgb_distance([line.get_color() for line in lines]) > 0.2
    for a, b in zip(lines, lines[1:]):  # neighbours differ in marker and line style too
        assert a.get_marker() != b.get_marker() and a.get_linestyle() != b.get_linestyle()
    # the final panel: block k's bars have block k's colour; runs are hatched apart
    bars = fig.axes[1].patches
    solid = [p for p in bars if not p.get_hatch()]
    assert [mcolors.to_rgb(p.get_facecolor()) for p in solid] == [
        mcolors.to_rgb(line.get_color()) for line in lines]
    assert len(bars) == 2 * blocks and len(solid) == blocks
    # the block legend is the figure's, outside the panels, one entry per block
    (legend,) = fig.legends
    assert len(legend.get_texts()) == blocks + 1


def test_sigma_ratio_final_only_and_nothing_to_draw(tmp_path):
    fig = plots.build_sigma_ratio([("λ=0", {}, final_rows(9))])
    assert_readable(fig)
    assert len(data_axes(fig)) == 1 and not fig.legends
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels[0] == "1: block1_out" and len(labels) == 9
    with pytest.raises(ConfigError, match="no σ_B/σ_F"):
        plots.plot_sigma_ratio([("λ=0", {"loss": [1.0]}, None)], str(tmp_path / "s.png"))


def test_sigma_ratio_png(tmp_path):
    path = str(tmp_path / "sub" / plots.SIGMA_FILE)
    assert plots.plot_sigma_ratio([("λ=4", history(9, 40), final_rows(9))], path) == path
    assert_png(path)


# --------------------------------------------------------------------------- weights
def test_weight_histograms(tmp_path):
    rng = np.random.default_rng(0)
    first = {f"block{i}_conv{j}": rng.normal(0, 0.1 * i, 4000) for i in range(1, 5)
             for j in (1, 2)}
    second = {name: 2 * w for name, w in first.items()}
    fig = plots.build_weight_histograms([("λ=4", first), ("λ=0", second)], samples=1000)
    assert_readable(fig)
    axes = data_axes(fig)
    assert len(axes) == 8
    assert {ax.get_xlabel() for ax in axes} == {"latent weight"}
    # Three panels a row: 8 layers take 3 rows, at most 10.3 inches wide.
    assert len({round(ax.get_position().y0, 3) for ax in axes}) == 3
    assert fig.get_figwidth() <= 10.3
    assert "std" in axes[0].get_title() and "1,000 sampled" in fig.get_suptitle()
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["λ=4", "λ=0"]
    path = plots.plot_weight_histograms([("λ=4", first)], str(tmp_path / plots.HISTOGRAM_FILE))
    assert_png(path)
    with pytest.raises(ConfigError, match="no binary convolution"):
        plots.build_weight_histograms([("x", {})])


# --------------------------------------------------------------------------- correlation
def test_activation_correlation(tmp_path):
    rng = np.random.default_rng(0)
    binary = np.sign(rng.normal(size=(12, 4, 4, 20)))
    latent = rng.normal(size=(12, 4, 4, 20))
    fig = plots.build_activation_correlation("block3", binary, latent, "λ=4")
    assert_readable(fig)
    axes = data_axes(fig)
    assert [(ax.get_xlabel(), ax.get_ylabel()) for ax in axes] == [
        ("sample", "sample"), ("channel", "channel")] * 2
    assert [ax.images[0].get_array().shape for ax in axes] == [(12, 12), (20, 20)] * 2
    assert "block3" in fig.get_suptitle() and "12 test images" in fig.get_suptitle()
    path = plots.plot_activation_correlation("block3", binary, latent,
                                             str(tmp_path / plots.CORRELATION_FILE), "λ=4")
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
    # a constant sample: 0 off the diagonal, not NaN
    b = rng.normal(size=(3, 6))
    b[2] = 5.0
    corr = plots.sample_correlation(b)
    assert corr[2, 2] == 1.0 and corr[0, 2] == 0.0 and np.isfinite(corr).all()


# --------------------------------------------------------------------------- robustness
def severity_axes(fig):
    return fig.axes[1]


@pytest.mark.parametrize("severities, ticks, segments", [
    ([1, 3, 5], [0, 1, 3, 5], [[0, 1], [3], [5]]),
    ([1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5], [[0, 1, 2, 3, 4, 5]]),
    ([3], [0, 3], [[0], [3]]),
    ([2, 5], [0, 2, 5], [[0], [2], [5]]),
])
def test_corruption_accuracy_draws_only_the_severities_run(severities, ticks, segments):
    reports = [("λ=4", robustness_report(severities)),
               ("λ=0", robustness_report(severities, clean=0.8))]
    fig = plots.build_corruption_accuracy(reports)
    assert_readable(fig)
    ax = severity_axes(fig)
    assert ax.get_xticks().tolist() == ticks
    assert [t.get_text() for t in ax.get_xticklabels()][0] == "clean"
    drawn = [line for line in ax.get_lines()]
    assert len(drawn) == 2 * len(segments)
    for line, segment in zip(drawn, segments * 2):
        assert line.get_xdata().tolist() == segment
        # a single point is a marker, never a line to a severity not run
        assert line.get_marker() == "o"
        if len(segment) == 1:
            assert line.get_linestyle() == "None"
    # clean accuracy, then the mean over corruptions at each severity run
    first = drawn[0]
    assert first.get_ydata()[0] == pytest.approx(90.0)


def test_corruption_accuracy_labels_every_corruption(tmp_path):
    reports = [("λ=4", robustness_report([1, 2, 3, 4, 5]))]
    fig = plots.build_corruption_accuracy(reports)
    assert_readable(fig)
    names = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert names == CORRUPTIONS  # 19 corruptions fit: none thinned away
    path = plots.plot_corruption_accuracy(reports, str(tmp_path / plots.CORRUPTION_FILE))
    assert_png(path)


def test_group_summary():
    reports = [robustness_report([1, 2], clean=c) for c in (0.9, 0.8, 0.7)]
    s = plots.group_summary(reports)
    assert s["runs"] == 3 and s["normalized"] is False
    assert s["clean_accuracy_mean"] == pytest.approx(0.8)
    assert s["clean_accuracy_std"] == pytest.approx(0.1)  # sample std (ddof=1)
    assert s["mce_mean"] == pytest.approx(1.2) and s["mce_std"] == pytest.approx(0.1)
    assert s["corruption_error"]["fog"]["mean"] == pytest.approx(0.5 + 0.09 + 0.2)
    single = plots.group_summary(reports[:1])
    assert single["mce_std"] == 0.0 and single["runs"] == 1
    with pytest.raises(ConfigError, match="at least one"):
        plots.group_summary([])
    with pytest.raises(ConfigError, match="mixes normalized"):
        plots.group_summary([reports[0], robustness_report([1], normalized=True)])


def test_corruption_groups(tmp_path):
    groups = [("λ=4", [robustness_report([1, 2], clean=c) for c in (0.9, 0.88, 0.86)]),
              ("λ=0", [robustness_report([1, 2], clean=c) for c in (0.8, 0.82)]),
              ("full precision", [robustness_report([1, 2], clean=0.95)])]
    fig = plots.build_corruption_groups(groups)
    assert_readable(fig)
    ax = fig.axes[0]
    assert len(ax.patches) == 3 * len(CORRUPTIONS)
    colors = {mcolors.to_rgb(p.get_facecolor()) for p in ax.patches}
    assert len(colors) == 3 and rgb_distance(colors) > 0.2
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert texts[0].startswith("λ=4: mCE") and "(3 runs)" in texts[0]
    path = plots.plot_corruption_groups(groups, str(tmp_path / plots.GROUPS_FILE))
    assert_png(path)


# --------------------------------------------------------------------------- Lipschitz
@pytest.mark.parametrize("layers", [6, 36])
def test_lipschitz(layers, tmp_path):
    report = lipschitz_report(layers)
    fig = plots.build_lipschitz(report)
    assert_readable(fig)
    assert len(data_axes(fig)) == 4
    ratio = fig.axes[0]
    labels = [t.get_text() for t in ratio.get_xticklabels()]
    assert labels[0] == report["layers"][0]["name"] and len(labels) == layers
    (gram,) = [line for line in ratio.get_lines() if line.get_label() == "gram_bound"]
    assert gram.get_ydata()[0] == pytest.approx(1.2)
    path = plots.plot_lipschitz(report, str(tmp_path / plots.LIPSCHITZ_FILE))
    assert_png(path)


def test_lipschitz_without_blocks():
    fig = plots.build_lipschitz(lipschitz_report(4, with_blocks=False))
    assert_readable(fig)
    assert not fig.axes[3].axison and len(data_axes(fig)) == 3


def test_crowded_category_labels_are_thinned_not_overlapping():
    report = lipschitz_report(160)
    fig = plots.build_lipschitz(report)
    assert_readable(fig)
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    shown = [i for i, t in enumerate(labels) if t]
    assert shown[0] == 0 and 10 < len(shown) < 160
    steps = set(np.diff(shown).tolist())
    assert len(steps) == 1  # every k-th label
    assert labels[shown[1]] == report["layers"][shown[1]]["name"]


# --------------------------------------------------------------------------- labels
def test_labels():
    assert plots.run_label(4.0, 1, "runs/x") == "λ=4 (LCR), seed 1"
    assert plots.run_label(4.0, None, "runs/x", full_precision=True) == "λ=4"
    assert plots.run_label(0.0, 2, "runs/x") == "λ=0, seed 2"
    assert plots.report_label({"model_dir": "/a/baseline"}) == "baseline"
    assert plots.report_label({"lcr_lambda": 2.5, "train_seed": 3}) == "λ=2.5 (LCR), seed 3"


def test_block_colors_beyond_the_palette():
    for count in (1, 16, 17, 24):
        colors = plots.block_colors(count)
        assert len(colors) == count and len(set(colors)) == count
    assert rgb_distance(plots.block_colors(16)) > 0.2

"""lcr-diagnose: spectral norms of the binary convolutions of a run."""

import json
import shutil

import larq as lq
import numpy as np
import pytest
import tensorflow as tf
from helpers import RUN_BLOCKS, RUN_SETTINGS

from lcr_larq import plots, spectral
from lcr_larq.cli import diagnose as command
from lcr_larq.cli import plots as plots_command
from lcr_larq.diagnostics import kernels, retention
from lcr_larq.graph import find_blocks
from lcr_larq.lipschitz import conv_matrix
from lcr_larq.training import runs

SIZE = RUN_SETTINGS["input_size"]
#: The binary convolutions of the trained run: two per block.
CONVS = [f"block{k}_conv{i}" for k in range(1, RUN_BLOCKS + 1) for i in (1, 2)]


@pytest.fixture(scope="module")
def report(trained_run):
    code = command.main(["--model-dir", str(trained_run), "--samples", "48", "--batch-size", "24",
                          "--quiet"])
    assert code == 0
    return json.loads((trained_run / "lipschitz.json").read_text())


def test_report_rows_and_bounds(report, trained_run):
    names = [row["name"] for row in report["layers"]]
    assert names == CONVS
    keys = ("exact", "toeplitz_bound", "gram_bound", "reshaped_kernel", "retention_estimate")
    for row in report["layers"]:
        for key in keys:
            assert row[key] > 0 and row[key + "_latent"] > 0, (row["name"], key)
            assert key in row["seconds"]
        for suffix in ("", "_latent"):
            exact = row["exact" + suffix]
            assert row["exact_info" + suffix]["converged"]
            assert row["toeplitz_bound" + suffix] >= exact * (1 - 1e-9), row["name"]
            assert row["gram_bound" + suffix] >= exact * (1 - 1e-9), row["name"]
        # the kernel, stride and padding measured are those the layer applies
        assert row["operator_check"] < 1e-5, row
        assert row["pad_values"] == 1.0
    assert report["summary"]["bounds_hold"] == {"toeplitz_bound": True, "gram_bound": True}
    assert (trained_run / "lipschitz.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_exact_matches_dense_svd_of_the_layer(report, trained_run):
    model = runs.load_model(str(trained_run))
    layer = model.get_layer("block2_conv1")  # stride 2, 8x8x16 -> 4x4x32
    binary, latent = kernels.layer_kernels(layer)
    # LibraSign: per output channel a single magnitude, a power of two
    mags = np.abs(binary).reshape(-1, binary.shape[-1])
    assert np.allclose(mags, mags[:1]) and np.allclose(np.log2(mags[0]) % 1, 0)
    assert np.array_equal(latent, layer.kernel.latent_variable.numpy())
    row = next(r for r in report["layers"] if r["name"] == "block2_conv1")
    shape = (SIZE, SIZE, 16)
    assert row["strides"] == [2, 2] and row["input_shape"] == list(shape)
    for kernel, key in ((binary, "exact"), (latent, "exact_latent")):
        svd = np.linalg.norm(conv_matrix(kernel, shape, 2, "same"), 2)
        assert row[key] == pytest.approx(svd, rel=1e-5)
    # the batch norm folded in: the deployed linear map conv -> BN (inference mode)
    bn = model.get_layer("block2_bn1")
    scale = kernels.batchnorm_scale(bn)
    svd = np.linalg.norm(conv_matrix(binary * scale, shape, 2, "same"), 2)
    assert row["batchnorm"] == "block2_bn1" and row["exact_bn"] == pytest.approx(svd, rel=1e-5)


def test_retention_estimate_is_the_converged_block_sigma(report, trained_run):
    run = runs.load_run(str(trained_run))
    images = retention.sample_images(run.dataset, 24)
    rows = retention.retention_sigmas(run.model, images, iterations=200)
    assert [r["block"] for r in rows] == [f"block{k}_out" for k in range(1, RUN_BLOCKS + 1)]
    assert {"block2_conv1", "block2_conv2", "block2_shortcut_pad"} <= set(rows[1]["layers"])
    assert "block1_conv1" not in rows[1]["layers"]
    # sigma = top singular value of the cross matrix (SVD), averaged over samples
    block = find_blocks(run.model)[1]
    x, y = tf.keras.Model(run.model.inputs, [block.input, block.output])(images)
    m = spectral.cross_matrix(x, y).numpy()
    svd = np.linalg.svd(m, compute_uv=False)[:, 0].mean()
    assert rows[1]["sigma_binary"] == pytest.approx(svd, rel=1e-3)
    # the block rows of the report map sigma_RM to the block's binary convs
    blocks = {b["block"]: b for b in report["blocks"]}
    assert blocks["block2_out"]["binary_convs"] == ["block2_conv1", "block2_conv2"]
    layer = {r["name"]: r for r in report["layers"]}
    assert layer["block2_conv2"]["retention_estimate"] == blocks["block2_out"]["sigma_rm_binary"]
    assert blocks["block2_out"]["exact_product"] == pytest.approx(
        layer["block2_conv1"]["exact"] * layer["block2_conv2"]["exact"])
    tracking = report["summary"]["retention_tracking"]["exact"]
    assert tracking["blocks_compared"] == RUN_BLOCKS


@pytest.mark.parametrize("kind", ["depthwise", "groups", "dilation"])
def test_expanded_kernels_apply_the_same_operator(kind, rng):
    x = rng.normal(size=(1, 9, 9, 4))
    if kind == "depthwise":
        layer = tf.keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same",
                                                use_bias=False)
        y = layer(x)
        dense = kernels.expand_kernel(layer.depthwise_kernel.numpy(), depthwise=True)
    elif kind == "groups":
        layer = tf.keras.layers.Conv2D(6, 3, groups=2, padding="same", use_bias=False)
        y = layer(x)
        dense = kernels.expand_kernel(layer.kernel.numpy(), groups=2)
    else:
        layer = tf.keras.layers.Conv2D(3, 3, dilation_rate=2, padding="same", use_bias=False)
        y = layer(x)
        dense = kernels.expand_kernel(layer.kernel.numpy(), dilation=(2, 2))
    got = tf.nn.conv2d(x, dense, 1, "SAME").numpy()
    np.testing.assert_allclose(got, y.numpy(), atol=1e-5)


def test_ste_sign_kernel_is_plus_minus_one_and_padding_is_affine():
    layer = lq.layers.QuantConv2D(4, 3, padding="same", pad_values=1.0, use_bias=False,
                                  input_quantizer="ste_sign", kernel_quantizer="ste_sign")
    layer.build((None, 6, 6, 2))
    binary, latent = kernels.layer_kernels(layer)
    assert set(np.unique(binary)) <= {-1.0, 1.0} and not np.array_equal(binary, latent)
    geometry = {"input_shape": [6, 6, 2], "strides": [1, 1], "padding": "same"}
    assert kernels.operator_check(layer, binary, geometry) < 1e-6
    # the offset of the one-padding is real: the layer is not linear
    ones = tf.ones((1, 6, 6, 2))
    zero_padded = tf.nn.conv2d(ones, binary.astype("float32"), 1, "SAME")
    assert not np.allclose(layer(ones).numpy(), zero_padded.numpy())


def test_layer_filters_and_method_choice(trained_run, capsys):
    out = trained_run / "filtered.json"
    code = command.main(["--model-dir", str(trained_run), "--layers", "block2_*",
                          "--max-layers", "1", "--methods", "exact", "gram_bound",
                          "--output", str(out), "--no-plot", "--quiet"])
    assert code == 0
    rep = json.loads(out.read_text())
    assert [r["name"] for r in rep["layers"]] == ["block2_conv1"]
    assert "toeplitz_bound" not in rep["layers"][0] and rep["blocks"] == []
    assert rep["layers"][0]["gram_bound"] >= rep["layers"][0]["exact"]
    assert "gram" in capsys.readouterr().out


@pytest.mark.parametrize("args, needle", [
    (["--methods", "svd"], "unknown method 'svd'"),
    (["--layers", "nope*"], "no binary convolution matches --layers nope*"),
    (["--max-layers", "0"], "--max-layers must be >= 1"),
])
def test_bad_options_are_one_line(trained_run, capsys, args, needle):
    code = command.main(["--model-dir", str(trained_run), "--quiet", "--no-plot", *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and needle in err, err


@pytest.mark.parametrize("make, needle", [
    (lambda p: p / "missing", "does not exist"),
    (lambda p: (p / "bnn.keras").write_text("garbage") and p, "not a loadable Keras model"),
])
def test_bad_model_dir_is_one_line(tmp_path, capsys, make, needle):
    code = command.main(["--model-dir", str(make(tmp_path)), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("error:"), err
    assert needle in err


def test_plots_command_draws_the_run(report, trained_run, tmp_path, capsys):
    """lcr-plots end to end on a trained run (and itself as --compare): every
    figure written, the σ ratios of history.csv the ones drawn."""
    out = tmp_path / "figures"
    code = plots_command.main(["--model-dir", str(trained_run), "--compare", str(trained_run),
                               "--samples", "16", "--output-dir", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    for name in (plots.SIGMA_FILE, plots.HISTOGRAM_FILE, plots.CORRELATION_FILE,
                 plots.LIPSCHITZ_FILE):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert name in printed
    history = runs.read_history(str(trained_run))
    figure = plots.build_sigma_ratio([("run", history, None)])
    drawn = {line.get_label(): line.get_ydata() for line in figure.axes[0].get_lines()
             if line.get_label().startswith("block")}
    blocks = sorted(k for k in history if k.startswith("sigma_ratio_") and k[12:].isdigit())
    assert len(drawn) == len(blocks) == RUN_BLOCKS
    for key in blocks:
        np.testing.assert_allclose(drawn[f"block {key[12:]}"], history[key])


def test_plots_command_malformed_history_is_one_line(trained_run, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(trained_run, broken)
    (broken / "history.csv").write_text("epoch,loss\n0,1.0,7\nnot a number,\n")
    code = plots_command.main(["--model-dir", str(broken), "--samples", "16"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "history.csv" in err[0], err

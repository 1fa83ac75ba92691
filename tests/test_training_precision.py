"""``lcr-train --mixed-precision`` and ``--jit-compile`` end to end: the run
computes under its policy and leaves Keras' global policy as it found it,
resumes exactly (the loss scale of float16 included), records both settings,
saves and scores the network deployed (the float32 copy of the 16-bit one,
whose own accuracy is reported beside it), and the commands that read a run
take that network. The library-level checks (float32 LCR math, loss scaling,
XLA against the graph) are in test_mixed_precision.py and test_jit_compile.py.

Float16 convolutions have no oneDNN kernel on CPUs without AVX-512 FP16, so
the runs here are ResNet-8 on 8×8 digits for a few steps."""

import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

import lcr_larq
import train
from lcr_larq import export as lcr_export
from lcr_larq import graph, layers, optimizers
from lcr_larq.cli import diagnose as diagnose_cli
from lcr_larq.cli import evaluate as evaluate_cli
from lcr_larq.cli import export as export_cli
from lcr_larq.cli import plots as plots_cli
from lcr_larq.cli import train as train_cli
from lcr_larq.errors import ConfigError
from lcr_larq.training import TrainConfig, compile_model, runs
from lcr_larq.training import run as run_training
from models import build_model

#: ResNet-8 on 8×8 digits for 2 epochs of 2 steps (a resume needs an epoch
#: before and after it), LCR off (its tracing dominates tiny runs), no
#: validation split (one more step to trace, and nothing here reads it).
FAST = dict(model="resnet8", epochs=2, steps_per_epoch=2, batch_size=32, verbose=0,
            lcr_lambda=0.0, input_size=8, validation_split=0.0)
#: The float16 case: LCR on (one power iteration), whose gradients overflow
#: float16 at the first loss scale (2^15), so the dynamic loss scale moves in
#: epoch 1.
FLOAT16 = dict(FAST, lcr_lambda=4.0, lcr_samples=8, power_iterations=1,
               mixed_precision="float16")
BFLOAT16 = dict(FAST, mixed_precision="bfloat16")


class Interrupt(tf.keras.callbacks.Callback):
    """Ctrl-C at the end of epoch ``after_epoch``, after every other callback."""

    def __init__(self, after_epoch=0):
        super().__init__()
        self.after_epoch = after_epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.after_epoch:
            raise KeyboardInterrupt


class Observed(tf.keras.callbacks.Callback):
    """What the run trains: the global policy, the compute dtypes of the
    blocks and of LCR, the optimizer, whether the step is XLA-compiled, and
    the loss scale when training begins and after every epoch."""

    def on_train_begin(self, logs=None):
        model, optimizer = self.model, self.model.optimizer
        self.global_policy = tf.keras.mixed_precision.global_policy().name
        bnn = lcr_larq.strip_lcr(model)
        self.block_dtypes = {block.output.dtype.name for block in lcr_larq.find_blocks(bnn)}
        lcr = lcr_larq.lcr_layer(model)
        self.lcr_dtype = lcr.compute_dtype if lcr is not None else None
        self.optimizer = optimizer
        self.jit_compile = model.jit_compile
        self.scales = [self._scale()]
        self.first_step = int(optimizer.iterations)

    def on_epoch_end(self, epoch, logs=None):
        self.scales.append(self._scale())

    def _scale(self):
        scale = getattr(self.model.optimizer, "loss_scale", None)
        return None if scale is None else float(scale)


def trained(out, settings, *callbacks):
    return run_training(TrainConfig(output_dir=str(out), **settings),
                        extra_callbacks=list(callbacks))


def killed_and_resumed(out, settings, global_policy="float32"):
    """A run killed after its first epoch, then resumed: (results, what the
    killed run saw, what the resumed run saw). The killed run starts under
    Keras' global policy ``global_policy`` (the resumed one under float32);
    ``killed.policy_after`` is the global policy the interrupted run left."""
    killed = Observed()
    tf.keras.mixed_precision.set_global_policy(global_policy)
    try:
        with pytest.raises(KeyboardInterrupt):
            trained(out, settings, killed, Interrupt(after_epoch=0))
        killed.policy_after = tf.keras.mixed_precision.global_policy().name
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")
    # Keras' global policy is back after the interrupted run.
    assert killed.policy_after == global_policy
    resumed = Observed()
    return trained(out, settings, resumed), killed, resumed


def whole_and_resumed(tmp_path_factory, name, settings, global_policy="float32"):
    """``(directory, results, what it saw, killed_and_resumed(...))`` of a run
    of ``settings`` trained whole, and of the same run killed and resumed."""
    whole_dir = tmp_path_factory.mktemp(f"{name}-whole")
    observed = Observed()
    whole = trained(whole_dir, settings, observed)
    resumed = killed_and_resumed(tmp_path_factory.mktemp(f"{name}-resumed"), settings,
                                 global_policy)
    return whole_dir, whole, observed, resumed


@pytest.fixture(scope="module")
def bfloat16_runs(tmp_path_factory):
    """The bfloat16 run; its killed copy starts under the global policy
    mixed_float16 (a user's own), which it must leave as it found it."""
    return whole_and_resumed(tmp_path_factory, "bf16", BFLOAT16, global_policy="mixed_float16")


@pytest.fixture(scope="module")
def float16_runs(tmp_path_factory):
    return whole_and_resumed(tmp_path_factory, "f16", FLOAT16)


def test_a_bfloat16_run_trains_in_16_bits_and_resumes_exactly(bfloat16_runs):
    whole_dir, whole, observed, (resumed, killed, again) = bfloat16_runs
    assert observed.global_policy == "mixed_bfloat16"
    assert observed.block_dtypes == {"bfloat16"}
    assert not isinstance(observed.optimizer, tf.keras.mixed_precision.LossScaleOptimizer)
    assert tf.keras.mixed_precision.global_policy().name == "float32"  # restored
    assert whole["mixed_precision"] == "bfloat16" and whole["jit_compile"] is False
    # Killed after epoch 1 of 2, resumed from its checkpoint: the same network.
    assert again.first_step == 2 and resumed["resumed_from_epoch"] == 1
    assert resumed["weights_sha256"] == whole["weights_sha256"]
    assert resumed["test_loss"] == whole["test_loss"]
    # The saved BNN is the network deployed: the float32 copy, the run's own.
    bnn = runs.load_model(str(whole_dir))
    assert graph.computes_in_float32(bnn)
    assert runs.weights_digest(bnn) == whole["weights_sha256"]
    # The accuracy beside it is the 16-bit network's with the same weights and
    # BN statistics: model.keras stripped, given bnn.keras' weights.
    trained_model = tf.keras.models.load_model(whole_dir / runs.MODEL, compile=False)
    as_trained = lcr_larq.strip_lcr(trained_model)
    assert {layer.compute_dtype for layer in as_trained.layers
            if layer.name.endswith("_conv1")} == {"bfloat16"}
    as_trained.set_weights(bnn.get_weights())
    images, labels = zip(*runs.load_run(str(whole_dir)).dataset.test)
    predicted = np.concatenate([as_trained(x, training=False).numpy().argmax(1)
                                for x in images])
    assert whole["test_accuracy_as_trained"] == pytest.approx(
        float(np.mean(predicted == np.concatenate(labels))), abs=1e-6)


def test_a_float16_run_scales_its_loss_and_resumes_with_its_loss_scale(float16_runs):
    _, whole, observed, (resumed, killed, again) = float16_runs
    assert observed.global_policy == "mixed_float16" and observed.block_dtypes == {"float16"}
    assert observed.lcr_dtype == "float32"
    assert isinstance(observed.optimizer, tf.keras.mixed_precision.LossScaleOptimizer)
    assert isinstance(observed.optimizer.inner_optimizer, optimizers.SGD)
    assert whole["optimizer"].endswith("coupled weight decay 0.0001 on all, dynamic loss scaling)")
    # Overflowing steps halved the loss scale in epoch 1; the resumed run
    # continues from the killed run's scale, not from a fresh 2^15.
    initial = observed.scales[0]
    assert initial == 2.0**15 and killed.scales[1] < initial
    assert again.scales[0] == killed.scales[1]
    assert again.scales[1:] == observed.scales[2:]
    assert resumed["weights_sha256"] == whole["weights_sha256"]
    assert resumed["test_accuracy"] == whole["test_accuracy"]


def test_the_results_table_names_the_computation(float16_runs, bfloat16_runs, capsys):
    whole_dir, whole, _, _ = bfloat16_runs
    flags = ["--output-dir", str(whole_dir)]
    for key, value in BFLOAT16.items():
        flags += [f"--{key.replace('_', '-')}", str(value)]
    assert train.main(flags) == 0  # finished: its results printed again
    out = capsys.readouterr().out
    assert "already holds this run" in out
    assert "| computation" in out and "mixed bfloat16 (16-bit layers" in out
    assert f"| as trained    | {100 * whole['test_accuracy_as_trained']:.2f}% computed in " \
        "bfloat16" in out
    assert "computation" not in train_cli.results_table({**whole, "mixed_precision": "off"})


def test_lcr_export_converts_the_network_a_16_bit_run_scored(float16_runs, bfloat16_runs,
                                                             tmp_path):
    for whole_dir, whole in ((float16_runs[0], float16_runs[1]),
                             (bfloat16_runs[0], bfloat16_runs[1])):
        out = tmp_path / whole["mixed_precision"]
        assert export_cli.main(["--model-dir", str(whole_dir), "--output-dir", str(out)]) == 0
        report = json.loads((out / lcr_export.REPORT_FILE).read_text())
        # LCE computes the float32 network as Keras does, but for a sign at 0,
        # and Keras' is the one the run scored.
        assert report["argmax_agreement"] >= 0.95 and report["lcr_trace"] == []
        assert report["lce_bconv_ops"] == report["binary_conv_layers"] == 6
        assert report["keras_accuracy"] == pytest.approx(whole["test_accuracy"], abs=1e-6)


@pytest.mark.parametrize("runs_of, dtype", [("bfloat16_runs", tf.bfloat16),
                                            ("float16_runs", tf.float16)])
def test_evaluate_diagnose_and_plots_read_a_16_bit_run(runs_of, dtype, request, tmp_path):
    whole_dir, whole, _, _ = request.getfixturevalue(runs_of)
    report_path = tmp_path / "robustness.json"
    assert evaluate_cli.main(["--model-dir", str(whole_dir), "--output", str(report_path),
                              "--corruptions", "gaussian_noise", "--severities", "1"]) == 0
    report = json.loads(report_path.read_text())
    # lcr-evaluate scores the network deployed: the clean accuracy is the run's.
    assert report["clean_accuracy"] == pytest.approx(whole["test_accuracy"], abs=1e-6)
    diagnosis_path = tmp_path / "lipschitz.json"
    assert diagnose_cli.main(["--model-dir", str(whole_dir), "--output", str(diagnosis_path),
                              "--samples", "16"]) == 0
    diagnosis = json.loads(diagnosis_path.read_text())
    # Measured on the float32 network: the retention estimates are float32
    # numbers, not 16-bit ones (8 significant bits in bfloat16, 11 in float16).
    estimates = np.array([row["retention_estimate"] for row in diagnosis["layers"]], np.float32)
    assert np.all(np.isfinite(estimates))
    assert np.any(estimates != tf.cast(tf.cast(estimates, dtype), tf.float32).numpy())
    figures = tmp_path / "figures"
    assert plots_cli.main(["--model-dir", str(whole_dir), "--output-dir", str(figures),
                           "--samples", "16"]) == 0
    assert {"sigma_ratio.png", "weight_histograms.png", "activation_correlation.png"} <= {
        path.name for path in figures.iterdir() if path.stat().st_size > 0}


#: XLA's runs: 2 epochs of 1 step (its compilation dominates), no validation
#: split (which XLA would compile a test step for).
XLA = dict(FAST, steps_per_epoch=1, jit_compile=True)


@pytest.mark.stack
def test_lcr_train_jit_compile_trains_as_the_graph_and_resumes(tmp_path, capsys):
    """``--jit-compile``: the step is XLA-compiled; its weights are the graph's
    up to float32 rounding (XLA fuses and sums in another order, see
    test_jit_compile.py), and a killed run resumes to the same digest."""
    observed = Observed()
    xla = trained(tmp_path / "xla", XLA, observed)
    assert observed.jit_compile is True and xla["jit_compile"] is True
    assert "compiled by XLA" in train_cli.results_table(xla)
    graph_run = trained(tmp_path / "graph", dict(XLA, jit_compile=False))
    xla_weights = runs.load_model(str(tmp_path / "xla")).get_weights()
    graph_weights = runs.load_model(str(tmp_path / "graph")).get_weights()
    for a, b in zip(xla_weights, graph_weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert graph_run["jit_compile"] is False
    resumed, _, again = killed_and_resumed(tmp_path / "resumed", XLA)
    assert again.jit_compile is True and resumed["resumed_from_epoch"] == 1
    assert resumed["weights_sha256"] == xla["weights_sha256"]


@pytest.mark.parametrize("argv, needle", [
    (["--mixed-precision", "float8"], "--mixed-precision must be one of ['off', 'float16', "
                                      "'bfloat16'], got 'float8'"),
    (["--jit-compile", "maybe"], "--jit-compile"),
])
def test_bad_settings_are_one_line_errors(argv, needle, capsys):
    try:
        code = train.main([*argv, "--epochs", "1"])
    except SystemExit as exit:  # argparse's own errors
        code = exit.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:"), err
    assert needle in err


def test_a_model_xla_cannot_compile_is_a_config_error_naming_the_flag():
    """LCR on every 2nd step wired without the schedule's count (an earlier
    lcr-larq's models) cannot be compiled: refused before training."""
    model = lcr_larq.attach_lcr(build_model("resnet8", (8, 8, 1), 4), lcr_every=2)
    older = tf.keras.Model(
        model.inputs, layers.LipschitzRetention(lcr_every=2)(lcr_larq.lcr_layer(model).input)
    )
    with pytest.raises(ConfigError) as error:
        compile_model(older, TrainConfig(jit_compile=True), steps_per_epoch=2)
    assert str(error.value).startswith("--jit-compile: LCR layer")
    assert "\n" not in str(error.value)
    compile_model(older, TrainConfig(), steps_per_epoch=2)  # without XLA it compiles


def test_the_global_policy_is_restored_when_a_run_fails(bfloat16_runs):
    """The bfloat16 run killed after its first epoch (bfloat16_runs) started
    under the global policy mixed_float16, trained under its own, and left
    mixed_float16 behind it."""
    _, _, _, (_, killed, _) = bfloat16_runs
    assert killed.global_policy == "mixed_bfloat16"
    assert killed.policy_after == "mixed_float16"


def test_as_float32_copies_a_16_bit_bnn_with_its_quantizers(rng):
    """The float32 copy of a mixed-precision ResNet-8: every layer and every
    quantizer (Larq's quantizers are layers) in float32, the same weights,
    and the 16-bit model's logits up to its rounding."""
    with optimizers.dtype_policy("mixed_bfloat16"):
        mixed = build_model("resnet8", (8, 8, 1), 10, precision="1w32a",
                            weight_quantizer="ste_sign")
    copy = graph.as_float32(mixed)
    assert not graph.computes_in_float32(mixed) and graph.computes_in_float32(copy)
    quantizers = [q for layer in copy.layers
                  for q in (getattr(layer, "kernel_quantizer", None),) if q is not None]
    assert quantizers and {q.compute_dtype for q in quantizers} == {"float32"}
    for a, b in zip(mixed.get_weights(), copy.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert graph.as_float32(copy) is copy
    x = tf.constant(rng.normal(size=(4, 8, 8, 1)).astype(np.float32))
    full, rounded = copy(x).numpy(), mixed(x).numpy()
    # Real activations (1w32a): the 16-bit forward pass is the float32 one
    # rounded; bfloat16 keeps 8 bits (2^-8 relative) through 8 layers.
    scale = np.abs(full).max()
    assert np.abs(full - rounded).max() < 8 * 2.0**-8 * scale
    assert not np.array_equal(full, rounded)  # the copy really computes in float32


def test_copies_of_runs_keep_their_policy_when_loaded(float16_runs, tmp_path):
    """A 16-bit run's model.keras loads with its 16-bit layers (LCR float32)
    under the float32 global policy (what lcr-evaluate scores)."""
    whole_dir, _, _, _ = float16_runs
    shutil.copy(whole_dir / runs.MODEL, tmp_path / "model.keras")
    model = tf.keras.models.load_model(tmp_path / "model.keras", compile=False)
    assert lcr_larq.lcr_layer(model).compute_dtype == "float32"
    blocks = lcr_larq.find_blocks(lcr_larq.strip_lcr(model))
    assert {block.output.dtype.name for block in blocks} == {"float16"}

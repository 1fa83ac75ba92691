"""The model zoo: every network builds, trains with LCR and profiles as published."""

import importlib
import json

import larq as lq
import numpy as np
import pytest
import tensorflow as tf
from larq.layers_base import BaseLayer

import lcr_larq
import train
from lcr_larq import layers
from lcr_larq.data import load_dataset
from lcr_larq.data.digits import DIGITS_SIZE
from lcr_larq.experiments import study
from lcr_larq.experiments.tuning import TuneConfig
from lcr_larq.experiments.tuning.search import load_split
from lcr_larq.surgery import without_quantizers
from lcr_larq.training import (
    TrainConfig,
    build_training_model,
    input_size_note,
    with_input_size,
)
from lcr_larq.training.runs import load_model as load_trained_model
from lcr_larq.training.runs import read_recipe
from models import MODELS, build_model
from models.resnet_cifar import DEPTHS, IMAGENET_STAGES
from models.zoo import logits_model

CE = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
config_module = importlib.import_module("lcr_larq.training.config")
CIFAR, IMAGENET = ((32, 32, 1), 10), ((224, 224, 3), 1000)


def stage_blocks(stages):
    return sum(blocks for _, blocks in stages)


# Regularized blocks, from the architectures: ResNets one per basic block;
# ReActNet-A 13 blocks; Bi-Real Net-18 and ResNetE-18 one shortcut around each
# of their 16 binary convolutions; QuickNet sections of 4, 4, 4, 4 residual
# blocks, QuickNetLarge 6, 8, 12, 6.
BLOCKS = {
    "resnet8": 3 * 1,
    "resnet20": 3 * 3,
    "resnet18": 2 + 2 + 2 + 2,
    "resnet34": 3 + 4 + 6 + 3,
    "reactnet": 13,
    "birealnet": 16,
    "resnet_e": 16,
    "quicknet": 4 * 4,
    "quicknet_small": 4 * 4,
    "quicknet_large": 6 + 8 + 12 + 6,
}
ZOO = ("birealnet", "resnet_e", "quicknet", "quicknet_small", "quicknet_large")


def binary_layers(model):
    """Layers with binary weights (quantized kernels)."""
    keys = ("kernel_quantizer", "depthwise_quantizer")
    return [
        layer for layer in model.layers
        if isinstance(layer, BaseLayer) and any(getattr(layer, k, None) for k in keys)
    ]


def quantizers_of(model):
    found = []
    for layer in model.layers:
        if isinstance(layer, lq.quantizers.Quantizer):
            found.append(layer)
        for key in ("input_quantizer", "kernel_quantizer", "depthwise_quantizer"):
            if getattr(layer, key, None) is not None:
                found.append(getattr(layer, key))
    return found


def test_block_counts_follow_the_architectures():
    assert BLOCKS["resnet20"] == stage_blocks(DEPTHS[20])
    assert BLOCKS["resnet18"] == stage_blocks(IMAGENET_STAGES[18])
    assert BLOCKS["resnet34"] == stage_blocks(IMAGENET_STAGES[34])


def lcr_step(bnn, x, y):
    """One SGD step of ``bnn`` with LCR (eager: no tracing, the same train step)."""
    model = lcr_larq.attach_lcr(bnn, lcr_lambda=4.0)
    model.compile(optimizer=tf.keras.optimizers.SGD(0.1), loss=CE, run_eagerly=True)
    latent = [layer.kernel.latent_variable for layer in binary_layers(bnn)]
    before = [v.numpy() for v in latent]
    logs = model.train_on_batch(x, y, return_dict=True)
    changed = [not np.array_equal(b, v.numpy()) for b, v in zip(before, latent)]
    return logs, changed


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_every_model_builds_and_trains_with_lcr(name):
    # CIFAR size: the BNN, its blocks, its full-precision version, one LCR step.
    bnn = build_model(name, *CIFAR)
    assert bnn.input_shape == (None, *CIFAR[0]) and bnn.output_shape == (None, CIFAR[1])
    blocks = lcr_larq.find_blocks(bnn)
    assert len(blocks) == BLOCKS[name]
    if name in ("birealnet", "resnet_e") or name.startswith("quicknet"):
        # A shortcut around every binary convolution, one block each.
        assert len(binary_layers(bnn)) == BLOCKS[name]
    # Logits, not probabilities: Larq-Zoo's softmax is cut off.
    assert isinstance(bnn.layers[-1], tf.keras.layers.Dense)
    assert bnn.layers[-1].get_config()["activation"] == "linear"
    fp = build_model(name, *CIFAR, quantized=False)
    assert binary_layers(bnn) and not quantizers_of(fp)
    fp_blocks = lcr_larq.find_blocks(fp)
    assert [b.output.shape for b in fp_blocks] == [b.output.shape for b in blocks]

    x = tf.random.stateless_normal((2, *CIFAR[0]), seed=(1, 2))
    logs, changed = lcr_step(bnn, x, tf.constant([3, 7]))
    assert np.isfinite(logs["loss"])
    # The binary and latent paths differ, so the regularizer is active.
    assert np.isfinite(logs["lcr_lip"]) and logs["lcr_lip"] > 0
    ratios = [logs[f"sigma_ratio_{k}"] for k in range(1, BLOCKS[name] + 1)]
    assert np.all(np.isfinite(ratios))
    assert all(changed), f"{changed.count(False)} of {len(changed)} binary kernels unchanged"

    # ImageNet size: the same blocks, finite logits for a batch of one.
    big = build_model(name, *IMAGENET)
    assert big.output_shape == (None, IMAGENET[1])
    assert len(lcr_larq.find_blocks(big)) == BLOCKS[name]
    logits = big(tf.random.stateless_normal((1, *IMAGENET[0]), seed=(3, 4)), training=False)
    assert logits.shape == (1, IMAGENET[1]) and np.isfinite(logits).all()


def test_imagenet_resnet18_trains_with_lcr_at_224():
    bnn = build_model("resnet18", *IMAGENET)
    assert bnn.get_layer("stem_out").output_shape == (None, 56, 56, 64)
    x = tf.random.stateless_normal((2, *IMAGENET[0]), seed=(3, 4))
    logs, changed = lcr_step(bnn, x, tf.constant([1, 999]))
    assert np.isfinite(logs["loss"]) and logs["lcr_lip"] > 0
    assert len(changed) == 16 and all(changed)


def macs(model, bits):
    return lq.models.ModelProfile(model).op_count("mac", bits)


def test_imagenet_resnet18_profile_matches_the_paper():
    model = build_model("resnet18", *IMAGENET)
    # Closed form: binary 3×3 convolutions of the four stages at 56, 28, 14, 7 px.
    binary = 4 * 9 * 64 * 64 * 56**2
    for c, size in ((128, 28), (256, 14), (512, 7)):
        binary += 9 * c // 2 * c * size**2 + 3 * 9 * c * c * size**2
    # Float: 7×7 stem at 112 px, 1×1 downsampling shortcuts, classifier.
    floats = 49 * 3 * 64 * 112**2 + sum(
        c // 2 * c * size**2 for c, size in ((128, 28), (256, 14), (512, 7))
    ) + 512 * 1000
    assert macs(model, 1) == binary
    # Larq's profile also counts the scalar EDE variables (t, k) of the two
    # IR-Net quantizers of every binary convolution as float MACs, one per
    # output pixel each: 4 × 4,165 in all, 0.05% of the float MACs.
    ede = sum(4 * int(np.prod(layer.output_shape[1:3])) for layer in binary_layers(model))
    assert ede == 4 * 4 * (56**2 + 28**2 + 14**2 + 7**2)
    assert macs(model, 32) == floats + ede
    # The paper's Table 5: 1.676×10⁹ BOPs and 1.544×10⁸ FLOPs.
    assert abs(macs(model, 1) / 1.676e9 - 1) < 0.05
    assert 0.5 < macs(model, 32) / 1.544e8 < 2


def test_reactnet_profile_matches_its_paper():
    model = build_model("reactnet", *IMAGENET)
    # ReActNet paper: 4.82×10⁹ BOPs and 0.87×10⁸ OPs (BOPs/64 + FLOPs).
    assert abs(macs(model, 1) / 4.82e9 - 1) < 0.05
    assert abs((macs(model, 1) / 64 + macs(model, 32)) / 0.87e8 - 1) < 0.05


def test_registry_picks_the_resnet_layout_by_input_size():
    cifar = build_model("resnet18", (99, 99, 3), 10)
    assert cifar.name == "resnet18_1w1a" and cifar.get_layer("stem_conv").strides == (1, 1)
    resnet20 = build_model("resnet20", (128, 128, 3), 10)
    assert resnet20.name == "resnet20_1w1a"
    assert resnet20.get_layer("stem_conv").kernel_size == (3, 3)
    # From 100 px: the ImageNet stem (odd sizes too), here with Bi-Real shortcuts.
    bireal = build_model("resnet18", (101, 101, 3), 10, bireal=True)
    assert bireal.name == "resnet18_imagenet_bireal_1w1a"
    assert bireal.get_layer("stem_conv").kernel_size == (7, 7)
    assert bireal.get_layer("block8_out").output_shape == (None, 4, 4, 512)
    adds = [layer for layer in bireal.layers if isinstance(layer, tf.keras.layers.Add)]
    assert len(adds) == 2 * 8 and len(lcr_larq.find_blocks(bireal)) == 8
    with pytest.raises(ValueError, match="--bireal applies to"):
        build_model("birealnet", (32, 32, 3), 10, bireal=True)
    with pytest.raises(ValueError, match="--weight-quantizer proxconnect applies to"):
        build_model("reactnet", (32, 32, 3), 10, weight_quantizer="proxconnect")


def test_zoo_quantizer_switches():
    bnn = build_model("birealnet", (32, 32, 3), 10)
    assert isinstance(bnn.layers[-1], tf.keras.layers.Dense)
    assert all(isinstance(layer.input_quantizer, lq.quantizers.ApproxSign)
               for layer in binary_layers(bnn))
    w32a = build_model("birealnet", (32, 32, 3), 10, precision="1w32a")
    assert len(binary_layers(w32a)) == 16
    assert all(layer.input_quantizer is None for layer in binary_layers(w32a))
    fp = without_quantizers(bnn)
    assert not quantizers_of(fp)
    assert all(getattr(layer, "kernel_constraint", None) is None for layer in fp.layers)
    # Same weights: the full-precision copy computes the latent path of the BNN.
    x = tf.random.stateless_normal((4, 32, 32, 3), seed=(5, 6))
    for a, b in zip(bnn.weights, fp.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    latent = lcr_larq.full_precision_path(bnn, bnn.outputs)[0]
    np.testing.assert_allclose(
        tf.keras.Model(bnn.inputs, latent)(x, training=True), fp(x, training=True),
        rtol=1e-3, atol=1e-3,
    )


def test_logits_model_cuts_only_a_final_softmax():
    inputs = tf.keras.Input((4,))
    dense = tf.keras.layers.Dense(3)
    probs = tf.keras.layers.Activation("softmax")(dense(inputs))
    cut = logits_model(tf.keras.Model(inputs, probs), name="cut")
    x = tf.random.stateless_normal((2, 4), seed=(0, 1))
    np.testing.assert_allclose(cut(x), dense(x))
    plain = tf.keras.Model(inputs, dense(inputs))
    assert logits_model(plain).outputs[0] is plain.outputs[0]


def test_find_blocks_takes_operator_adds():
    inputs = tf.keras.Input((8, 8, 2))
    h = tf.keras.layers.Conv2D(2, 3, padding="same")(inputs)
    shortcut = tf.keras.layers.ReLU()(h)
    y = tf.keras.layers.Conv2D(2, 3, padding="same")(shortcut) + shortcut
    z = y * 2.0 + 1.0  # not residual: one Keras tensor
    model = tf.keras.Model(inputs, z)
    (block,) = lcr_larq.find_blocks(model)
    assert block.input is shortcut and block.output is y


# --- ReActNet's RSign and RPReLU -------------------------------------------


def test_rsign_with_zero_thresholds_is_sign():
    x = tf.constant([[-2.0, -0.3, 0.0, 0.3, 5.0, -1e-6]])
    rsign = layers.RSign()
    np.testing.assert_array_equal(rsign(x), np.where(x.numpy() >= 0, 1.0, -1.0))
    np.testing.assert_array_equal(rsign.threshold.numpy(), np.zeros(6))


def test_rsign_thresholds_and_gradients(rng):
    x = tf.constant(rng.uniform(-1.5, 1.5, size=(5, 4, 4, 3)).astype(np.float32))
    dy = tf.constant(rng.normal(size=(5, 4, 4, 3)).astype(np.float32))
    alpha = np.array([0.2, -0.4, 0.7], np.float32)
    rsign = layers.RSign(threshold_initializer=tf.keras.initializers.Constant(alpha))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        out = rsign(x)
        loss = tf.reduce_sum(out * dy)
    shifted = x.numpy() - alpha
    np.testing.assert_array_equal(out, np.where(shifted >= 0, 1.0, -1.0))
    # ApproxSign: d sign(u)/du ≈ 2 − 2|u| on |u| ≤ 1.
    local = np.where(np.abs(shifted) <= 1, 2 - 2 * np.abs(shifted), 0.0) * dy.numpy()
    np.testing.assert_allclose(tape.gradient(loss, x), local, rtol=1e-5, atol=1e-6)
    grad_alpha = tape.gradient(loss, rsign.threshold).numpy()
    np.testing.assert_allclose(grad_alpha, -local.sum(axis=(0, 1, 2)), rtol=1e-4, atol=1e-5)
    assert np.all(grad_alpha != 0)
    # Full precision: the real value before the sign.
    np.testing.assert_allclose(rsign(x, full_precision=True), shifted, atol=1e-6)
    real = layers.RSign(binarize=False, threshold_initializer=tf.keras.initializers.Constant(alpha))
    np.testing.assert_allclose(real(x), shifted, atol=1e-6)


def test_rprelu_closed_form_and_gradients(rng):
    x = tf.constant(rng.normal(size=(6, 3, 3, 4)).astype(np.float32))
    dy = tf.constant(rng.normal(size=(6, 3, 3, 4)).astype(np.float32))
    gamma, beta, zeta = (rng.normal(size=4).astype(np.float32) for _ in range(3))
    act = layers.RPReLU()
    act.build(x.shape)
    act.shift_in.assign(gamma)
    act.slope.assign(beta)
    act.shift_out.assign(zeta)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = act(x)
        loss = tf.reduce_sum(out * dy)
    grads = tape.gradient(loss, [x, act.shift_in, act.slope, act.shift_out])
    u = x.numpy() - gamma
    positive = u > 0
    np.testing.assert_allclose(out, np.where(positive, u, beta * u) + zeta, rtol=1e-6, atol=1e-6)
    d_u = dy.numpy() * np.where(positive, 1.0, beta)
    axes = (0, 1, 2)
    np.testing.assert_allclose(grads[0], d_u, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grads[1], -d_u.sum(axes), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        grads[2], (dy.numpy() * np.where(positive, 0.0, u)).sum(axes), rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(grads[3], dy.numpy().sum(axes), rtol=1e-4, atol=1e-5)
    assert all(np.all(g.numpy() != 0) for g in grads[1:])
    # Default: a PReLU with slope 0.25 and no shifts.
    np.testing.assert_allclose(layers.RPReLU()(tf.constant([[-2.0, 3.0]])), [[-0.5, 3.0]])


def test_reactnet_layers_serialize(tmp_path):
    inputs = tf.keras.Input((4, 4, 3))
    h = layers.RSign(threshold_initializer=tf.keras.initializers.Constant(0.1))(inputs)
    h = layers.RPReLU(slope_initializer=tf.keras.initializers.Constant(0.5))(h)
    h = layers.RSign(binarize=False)(h)
    model = tf.keras.Model(inputs, h)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = tf.keras.models.load_model(path)
    x = tf.random.stateless_normal((2, 4, 4, 3), seed=(7, 8))
    np.testing.assert_allclose(loaded(x), model(x))
    assert [type(layer).__name__ for layer in loaded.layers[1:]] == ["RSign", "RPReLU", "RSign"]
    assert loaded.layers[3].binarize is False


def test_reactnet_latent_path_uses_real_values():
    bnn = build_model("reactnet", (32, 32, 3), 10)
    sign = bnn.get_layer("block1_sign1")
    (real,) = lcr_larq.full_precision_path(bnn, [sign.output])
    x = tf.random.stateless_normal((2, 32, 32, 3), seed=(9, 9))
    stem = tf.keras.Model(bnn.inputs, bnn.get_layer("stem_out").output)(x, training=True)
    np.testing.assert_allclose(
        tf.keras.Model(bnn.inputs, real)(x, training=True), stem - sign.threshold, atol=1e-5
    )
    # The binary convolutions declare binary inputs to Larq (summary, converter).
    conv = bnn.get_layer("block1_conv3x3")
    assert conv.input_quantizer.precision == 1 and conv.kernel.precision == 1


# --- train.py ---------------------------------------------------------------


def test_summary_prints_the_larq_profile_and_exits(tmp_path, capsys):
    out = tmp_path / "run"
    binary = 4 * 9 * 64 * 64 * 56**2 + sum(
        9 * c // 2 * c * s**2 + 3 * 9 * c * c * s**2 for c, s in ((128, 28), (256, 14), (512, 7))
    )
    shortcuts = sum(c // 2 * c * s**2 for c, s in ((128, 28), (256, 14), (512, 7)))
    ede = 4 * 4 * (56**2 + 28**2 + 14**2 + 7**2)  # see the profile test above
    # ImageNet needs no data for its shape; digits at --input-size 224 is 1-channel.
    for args, channels, classes in (
        (["--dataset", "imagenet2012"], 3, 1000),
        (["--input-size", "224"], 1, 10),
    ):
        code = train.main(["--model", "resnet18", "--summary", "--output-dir", str(out), *args])
        printed = capsys.readouterr().out
        assert code == 0
        assert "resnet18_imagenet_1w1a" in printed and "1-bit MACs" in printed
        floats = 49 * channels * 64 * 112**2 + shortcuts + 512 * classes + ede
        total = next(line for line in printed.splitlines() if line.startswith("| Total "))
        assert total.split()[-3:-1] == [str(binary), str(floats)], total
    assert not out.exists()  # nothing trained, nothing written


def test_input_size_sets_the_model_input_and_errors_are_one_line(capsys):
    config = TrainConfig(model="resnet20", input_size=48, lcr_lambda=0.0)
    model = build_training_model(config, (32, 32, 1), 10)
    assert model.input_shape == (None, 48, 48, 1)
    code = train.main(["--model", "quicknet", "--bireal", "--epochs", "1", "--input-size", "64"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--bireal applies to" in err


#: The design card's command, as typed (with one epoch).
DESIGN_CARD = ["--model=birealnet", "--lcr-lambda=4", "--epochs", "1", "--steps-per-epoch", "2"]


def smallest_downsampled(model):
    """The smallest image side any strided layer of ``model`` is handed."""
    sides = []
    for layer in model.layers:
        strides = getattr(layer, "strides", None)
        strides = (strides, strides) if isinstance(strides, int) else strides
        if strides and max(strides) > 1:
            shape = layer.input_shape[0] if isinstance(layer.input_shape, list) \
                else layer.input_shape
            sides.append(min(shape[1:3]))
    return min(sides)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_registered_model_trains_at_the_defaults(name, tmp_path, monkeypatch, capsys):
    """``python train.py --model NAME`` trains at the dataset's 16×16 raised to
    the model's minimum, said in the run's first line and recorded; the
    minimum is the smallest side on which no downsampling layer is handed a
    single pixel (at half of it one is).

    ``birealnet`` runs the design card's own command, one epoch of two steps,
    LCR on (λ = 4), validated every epoch as by default. The others take one
    step of the default batch (a smaller one costs more: the 360 test images
    are evaluated twice at the run's batch size) with λ = 0 and no validation
    split: tracing LCR's reference path costs some 2.5 times a run, tracing a
    validation step one more, and LCR on every model is
    ``test_every_model_builds_and_trains_with_lcr``'s."""
    entry = MODELS[name]
    size = max(DIGITS_SIZE, entry.min_input_size)
    built = []  # the network of the run, as train.py builds it
    monkeypatch.setattr(config_module, "build_model",  # what build_network calls
                        lambda *args, **kwargs: built.append(build_model(*args, **kwargs))
                        or built[-1])
    monkeypatch.chdir(tmp_path)  # the default output directory: ./runs/
    argv = DESIGN_CARD if name == "birealnet" else [
        "--model", name, "--epochs", "1", "--steps-per-epoch", "1", "--lcr-lambda", "0",
        "--bn-recalibration-batches", "1", "--validation-split", "0"]
    lcr_lambda = 4.0 if name == "birealnet" else 0.0
    assert train.main(argv, prog="train.py") == 0
    printed = capsys.readouterr().out
    first = printed.splitlines()[0]
    if size > DIGITS_SIZE:
        assert first == (f"{name} needs images of at least {size}×{size}: digits (16×16) "
                         f"resized to {size}×{size} (--input-size N for another size)")
    else:  # the epoch's own line (Keras names no epoch of a single one)
        assert first.startswith("1/1 - "), first
    run_dir = tmp_path / "runs" / f"{name}_digits_1w1a_lambda{lcr_lambda:g}_seed0"
    results = json.loads((run_dir / "results.json").read_text())
    assert results["input_size"] == size and results["input_shape"] == [size, size, 1]
    assert read_recipe(str(run_dir)).input_size == size
    assert f"{results['model']} on digits" in printed and 0 <= results["test_accuracy"] <= 1
    assert (run_dir / "bnn.keras").is_file() and results["lcr_lambda"] == lcr_lambda
    bnn = built[0]
    assert bnn.input_shape == (None, size, size, 1)
    if name in BLOCKS:
        assert results["blocks"] == BLOCKS[name] == len(lcr_larq.find_blocks(bnn))
    least = entry.min_input_size
    at_least = bnn if size == least else build_model(name, (least, least, 1), 10)
    assert smallest_downsampled(at_least) >= 2
    if least > 2:
        try:
            half = build_model(name, (least // 2, least // 2, 1), 10)
        except ValueError:
            half = None  # it cannot even be built there
        assert half is None or smallest_downsampled(half) == 1
    if name == "birealnet":  # the design card's run reads back; the same command again
        assert results["model"] == "birealnet_1w1a" and results["epochs"] == 1
        loaded = load_trained_model(str(run_dir))
        assert lcr_larq.lcr_layer(loaded) is None and len(lcr_larq.find_blocks(loaded)) == 16
        assert train.main(DESIGN_CARD, prog="train.py") == 0  # finished, not "other settings"
        assert "already holds this run, finished" in capsys.readouterr().out


def test_the_library_path_serves_the_size_lcr_train_trains_at():
    """The README's load_dataset(…, min_input_size=MODELS[name].min_input_size) then
    build_model(name, data.input_shape, …): the size a run of the model uses."""
    served = {}  # digits at each minimum, loaded once
    for name, entry in MODELS.items():
        least = entry.min_input_size
        if least not in served:
            served[least] = load_dataset("digits", batch_size=32, min_input_size=least)
        size = with_input_size(TrainConfig(model=name)).input_size
        assert served[least].input_shape == (size, size, 1) and size == max(16, least)
    assert load_dataset("digits", input_size=48, min_input_size=64).input_shape == (48, 48, 1)
    # lcr-tune and lcr-study check their data as a run does, and say the size
    assert load_split(TuneConfig(model="reactnet")).input_shape == (32, 32, 1)
    notes = study.check_data(study.StudySettings(model="reactnet", seeds=2))
    assert notes == [input_size_note(TrainConfig(model="reactnet"))] and "32×32" in notes[0]


def test_zero_pad_shortcut_is_option_a_of_he_et_al(rng):
    x = rng.normal(size=(2, 7, 7, 16)).astype("float32")
    y = layers.ZeroPadShortcut(32, 2)(x).numpy()
    # PyTorch (IR-Net): F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))
    expected = np.pad(x[:, ::2, ::2, :], [(0, 0), (0, 0), (0, 0), (8, 8)])
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize(
    "name, shape, kind",
    [("resnet20", (32, 32, 3), "pad"), ("resnet18", (32, 32, 3), "conv"),
     ("resnet18", (224, 224, 3), "pool")],
)
def test_default_shortcut_is_the_paper_baselines(name, shape, kind):
    model = build_model(name, shape, 10)
    names = {layer.name.rsplit("_", 1)[-1] for layer in model.layers if "_shortcut_" in layer.name}
    assert kind in names
    if kind == "conv":  # IR-Net's CIFAR ResNet-18: strided 1×1 conv, no pooling
        assert "pool" not in names
        assert model.get_layer("block3_shortcut_conv").strides == (2, 2)


def test_shortcut_choices_and_parameter_counts():
    counts = {
        shortcut: build_model("resnet20", (32, 32, 3), 10, shortcut=shortcut).count_params()
        for shortcut in ("zero-pad", "conv", "avgpool-conv")
    }
    # Two projection shortcuts: 16·32 + 32·64 weights, BN 4·(32 + 64).
    assert counts["conv"] - counts["zero-pad"] == 16 * 32 + 32 * 64 + 4 * (32 + 64)
    assert counts["conv"] == counts["avgpool-conv"]
    with pytest.raises(ValueError, match="keeps its published quantizers and shortcuts"):
        build_model("reactnet", (32, 32, 3), 10, shortcut="conv")

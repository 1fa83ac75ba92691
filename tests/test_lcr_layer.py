"""The LipschitzRetention layer, the full-precision path and serialization."""

import larq as lq
import numpy as np
import pytest
import tensorflow as tf
from helpers import batch, small_bnn

import lcr_larq
from lcr_larq import layers, spectral
from models import build_model

CE = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)


#: ResNet-8: ResNet-20's layout with one block per stage, so 3 blocks.
BLOCKS = 3


def test_latent_path_shares_weights_and_bypasses_quantizers(rng):
    bnn = small_bnn()
    model = lcr_larq.attach_lcr(bnn, lcr_lambda=4.0, lcr_every=1)
    # Tied, never copied: the training model owns exactly the BNN's variables,
    # and LCR on every 2nd step (the default) adds its step count only.
    assert {id(v) for v in model.weights} == {id(v) for v in bnn.weights}
    assert model.count_params() == bnn.count_params()
    scheduled = lcr_larq.attach_lcr(bnn, lcr_lambda=4.0)
    (schedule,) = [la for la in scheduled.layers if isinstance(la, layers.ScheduledSampleCount)]
    added = [v for v in scheduled.weights if id(v) not in {id(w) for w in bnn.weights}]
    assert added == [schedule.step] and scheduled.count_params() == bnn.count_params() + 1
    blocks = lcr_larq.find_blocks(bnn)
    assert len(blocks) == BLOCKS
    binary_out = tf.keras.Model(bnn.inputs, blocks[0].output)
    reference = lcr_larq.full_precision_path(bnn, [blocks[0].output])[0]
    latent_out = tf.keras.Model(bnn.inputs, reference)
    x, _ = batch(rng)
    # By hand: block 1 with latent weights, no sign, batch statistics.
    stem = tf.keras.Model(bnn.inputs, bnn.get_layer("stem_out").output)(x, training=True)
    h = stem
    for name in ("conv1", "bn1", "act1", "conv2", "bn2"):
        layer = bnn.get_layer(f"block1_{name}")
        if name.startswith("conv"):
            # 1w1a convolutions pad with ones (binary borders).
            padded = tf.pad(h, [[0, 0], [1, 1], [1, 1], [0, 0]], constant_values=1.0)
            with lq.context.quantized_scope(False):
                h = tf.nn.conv2d(padded, layer.kernel, 1, "VALID")
        elif name.startswith("bn"):
            mean, var = tf.nn.moments(h, [0, 1, 2])
            h = tf.nn.batch_normalization(h, mean, var, layer.beta, layer.gamma, layer.epsilon)
        else:
            h = tf.clip_by_value(h, -1, 1)
    expected = tf.clip_by_value(h + stem, -1, 1)
    np.testing.assert_allclose(latent_out(x, training=True), expected, atol=1e-4)
    assert not np.allclose(binary_out(x, training=True), expected, atol=1e-2)


def test_full_precision_batch_norm_keeps_moving_averages(rng):
    x, y = batch(rng)
    weights = None
    moving = []
    for lcr in (False, True):
        tf.keras.utils.set_random_seed(7)
        bnn = small_bnn()
        if weights is None:
            weights = bnn.get_weights()
        bnn.set_weights(weights)
        model = lcr_larq.attach_lcr(bnn, lcr_lambda=0.0, power_iterations=1) if lcr else bnn
        model.compile(optimizer=tf.keras.optimizers.SGD(0.0), loss=CE)
        model.train_on_batch(x, y)
        moving.append([bn.moving_mean.numpy() for bn in bnn.layers if hasattr(bn, "moving_mean")])
    for plain, with_lcr in zip(*moving):
        np.testing.assert_allclose(plain, with_lcr, rtol=1e-6)
    assert any(np.abs(m).max() > 0 for m in moving[0])  # moving averages did move


@pytest.mark.parametrize("shape", [(6, 5, 4, 3), (6, 3)])
@pytest.mark.parametrize("scale,center", [(True, True), (False, False)])
def test_full_precision_batch_norm_uses_batch_statistics(rng, shape, scale, center):
    # Rank 4 takes the fused kernel, rank 2 the moments; both are plain BN
    # with the batch's own (biased) statistics.
    x = tf.constant(rng.normal(2.0, 3.0, size=shape).astype(np.float32))
    bn = layers.BatchNormalization(scale=scale, center=center, epsilon=1e-3)
    bn.build(x.shape)
    if scale:
        bn.gamma.assign(rng.normal(size=shape[-1]).astype(np.float32))
    if center:
        bn.beta.assign(rng.normal(size=shape[-1]).astype(np.float32))
    axes = tuple(range(len(shape) - 1))
    expected = (x.numpy() - x.numpy().mean(axes)) / np.sqrt(x.numpy().var(axes) + 1e-3)
    if scale:
        expected = expected * bn.gamma.numpy()
    if center:
        expected = expected + bn.beta.numpy()
    np.testing.assert_allclose(bn(x, full_precision=True), expected, atol=1e-4)
    np.testing.assert_array_equal(bn.moving_mean.numpy(), np.zeros(shape[-1]))
    np.testing.assert_array_equal(bn.moving_variance.numpy(), np.ones(shape[-1]))


def test_gradient_reaches_latent_weights_and_not_the_reference(rng):
    bnn = small_bnn()
    model = lcr_larq.attach_lcr(bnn, lcr_lambda=4.0)
    x, _ = batch(rng)
    with tf.GradientTape() as tape:
        model(x, training=True)
        lcr_loss = tf.add_n(model.losses)
    kernels = [bnn.get_layer(f"block{k}_conv1").kernel.latent_variable for k in (1, 2, 3)]
    grads = tape.gradient(lcr_loss, kernels)
    assert float(lcr_loss) > 0
    assert all(g is not None and float(tf.norm(g)) > 0 for g in grads)

    lcr = layers.LipschitzRetention(lcr_lambda=2.0)
    xb, yb = tf.random.normal((4, 8, 8, 3)), tf.random.normal((4, 8, 8, 3))
    xf, yf = tf.random.normal((4, 8, 8, 3)), tf.random.normal((4, 8, 8, 3))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([xb, yb, xf, yf])
        lcr([tf.zeros((4, 2)), xb, yb, xf, yf])
        loss = lcr.losses[0]
    assert tape.gradient(loss, xf) is None and tape.gradient(loss, yf) is None
    assert float(tf.norm(tape.gradient(loss, yb))) > 0


def test_layer_loss_is_half_lambda_times_lip(rng):
    xb, yb = tf.random.normal((4, 8, 8, 3)), tf.random.normal((4, 4, 4, 5))
    xf, yf = tf.random.normal((4, 8, 8, 3)), tf.random.normal((4, 4, 4, 5))
    lcr = layers.LipschitzRetention(lcr_lambda=3.0, lcr_beta=2.0, power_iterations=30)
    lcr([tf.zeros((4, 2)), xb, yb, xf, yf])
    sb = spectral.block_sigma(xb, yb, 30)
    sf = spectral.block_sigma(xf, yf, 30)
    expected = 1.5 * np.mean((sb.numpy() / sf.numpy() - 1.0) ** 2)
    np.testing.assert_allclose(float(lcr.losses[0]), expected, rtol=1e-4)


def test_identical_paths_give_zero_loss():
    lcr = layers.LipschitzRetention(lcr_lambda=4.0)
    x, y = tf.random.normal((4, 8, 8, 3)), tf.random.normal((4, 8, 8, 6))
    lcr([tf.zeros((4, 2)), x, y, x, y])
    assert float(lcr.losses[0]) == 0.0


def test_metrics_reach_history(rng):
    model = lcr_larq.attach_lcr(small_bnn(), lcr_lambda=4.0, block_metrics="sigma",
                                power_iterations=1)
    model.compile(optimizer="sgd", loss=CE)
    x, y = batch(rng, 16)
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0).history
    assert "lcr_lip" in history
    for k in range(1, BLOCKS + 1):
        ratio = history[f"sigma_ratio_{k}"][0]
        assert ratio > 0 and np.isfinite(ratio)
        assert history[f"sigma_b_{k}"][0] > 0 and history[f"sigma_f_{k}"][0] > 0


def test_save_load_round_trip(tmp_path, rng):
    model = lcr_larq.attach_lcr(small_bnn(), lcr_lambda=2.5, lcr_beta=3.0, lcr_form="mse",
                                power_iterations=2)
    model.compile(optimizer="sgd", loss=CE)
    x, y = batch(rng)
    model.fit(x, y, epochs=1, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = tf.keras.models.load_model(path)
    config = lcr_larq.lcr_layer(loaded).get_config()
    assert (config["lcr_lambda"], config["beta"], config["form"], config["power_iterations"]) == (
        2.5, 3.0, "mse", 2)
    np.testing.assert_allclose(model.predict(x, verbose=0), loaded.predict(x, verbose=0),
                               atol=1e-5)
    model(x, training=True)
    loaded(x, training=True)
    np.testing.assert_allclose(float(model.losses[0]), float(loaded.losses[0]), rtol=1e-5)
    # The latent path is still tied after loading (+1: the schedule's step count).
    assert loaded.count_params() == lcr_larq.strip_lcr(loaded).count_params() + 1


def test_teacher_reference_is_frozen_and_shape_checked(rng):
    teacher = small_bnn(quantized=False)
    bnn = small_bnn()
    model = lcr_larq.attach_lcr(bnn, lcr_lambda=4.0, lcr_reference="teacher", teacher=teacher,
                                power_iterations=1)
    before = [w.numpy().copy() for w in teacher.weights]
    model.compile(optimizer=tf.keras.optimizers.SGD(0.5), loss=CE)
    x, y = batch(rng)
    model.fit(x, y, epochs=1, verbose=0)
    for b, w in zip(before, teacher.weights):
        np.testing.assert_array_equal(b, w.numpy())
    other = build_model("resnet18", (16, 16, 1), 4, quantized=False)
    with pytest.raises(ValueError, match="blocks"):
        lcr_larq.attach_lcr(small_bnn(), lcr_reference="teacher", teacher=other)


def test_stock_larq_layers_need_conversion():
    import larq as lq

    inputs = tf.keras.Input((8, 8, 1))
    h = lq.layers.QuantConv2D(4, 3, padding="same", input_quantizer="ste_sign",
                              kernel_quantizer="ste_sign")(inputs)
    h = tf.keras.layers.BatchNormalization()(h)
    out = tf.keras.layers.Dense(2)(tf.keras.layers.Flatten()(h))
    stock = tf.keras.Model(inputs, out)
    with pytest.raises(ValueError, match="make_full_precision_aware"):
        lcr_larq.attach_lcr(stock)
    converted = lcr_larq.make_full_precision_aware(stock)
    x = tf.random.normal((2, 8, 8, 1))
    np.testing.assert_allclose(stock(x), converted(x), atol=1e-6)
    model = lcr_larq.attach_lcr(converted, lcr_lambda=1.0)
    assert len(lcr_larq.find_blocks(converted)) == 1
    model(x, training=True)
    assert np.isfinite(float(model.losses[0]))


def test_a_sequential_model_needs_an_input_and_its_quantized_layers_are_its_blocks():
    def layers_():
        return [lq.layers.QuantConv2D(4, 3, padding="same", input_quantizer="ste_sign",
                                      kernel_quantizer="ste_sign", name=f"binary_{i}")
                for i in range(2)] + [tf.keras.layers.Flatten(), tf.keras.layers.Dense(2)]

    class Subclassed(tf.keras.Model):
        def __init__(self):
            super().__init__()
            self.conv, *_ = layers_()

        def call(self, x):
            return self.conv(x)

    subclassed = Subclassed()
    subclassed(tf.zeros((1, 8, 8, 1)))
    for no_graph in (tf.keras.Sequential(layers_()), subclassed):
        with pytest.raises(ValueError, match=r"not a graph of layers.*tf.keras.Input"):
            lcr_larq.attach_lcr(no_graph)
    sequential = tf.keras.Sequential([tf.keras.Input((8, 8, 1)), *layers_()])
    blocks = lcr_larq.find_blocks(sequential)
    assert [(b.name, b.input.shape[-1], b.output.shape[-1]) for b in blocks] == [
        ("binary_0", 1, 4), ("binary_1", 4, 4)]
    model = lcr_larq.attach_lcr(lcr_larq.make_full_precision_aware(sequential))
    x = tf.random.normal((2, 8, 8, 1))
    np.testing.assert_allclose(lcr_larq.strip_lcr(model)(x), sequential(x), atol=1e-6)


def test_layer_samples_estimate_on_the_first_samples(rng):
    xb, yb = tf.random.normal((8, 8, 8, 3)), tf.random.normal((8, 4, 4, 5))
    xf, yf = tf.random.normal((3, 8, 8, 3)), tf.random.normal((3, 4, 4, 5))
    sub = layers.LipschitzRetention(lcr_lambda=2.0, lcr_samples=3)
    sub([tf.zeros((8, 2)), xb, yb, xf, yf])
    full = layers.LipschitzRetention(lcr_lambda=2.0)
    full([tf.zeros((3, 2)), xb[:3], yb[:3], xf, yf])
    np.testing.assert_allclose(float(sub.losses[0]), float(full.losses[0]), rtol=1e-6)


def test_layer_samples_shared_features_loss_and_gradient_by_hand(rng):
    # Block 1's output is block 2's input (one tensor, cut once); the last
    # block has dense features. Loss and gradient equal the paper's formula on
    # the first 3 samples, written out with plain slicing.
    a = tf.Variable(tf.random.normal((8, 6, 6, 3)))
    b = tf.Variable(tf.random.normal((8, 6, 6, 3)))
    c = tf.Variable(tf.random.normal((8, 4)))
    ref = [tf.random.normal((3, 6, 6, 3)), tf.random.normal((3, 6, 6, 3)), tf.random.normal((3, 4))]
    lcr = layers.LipschitzRetention(lcr_lambda=2.0, lcr_beta=2.0, lcr_samples=3)
    with tf.GradientTape(persistent=True) as tape:
        lcr([tf.zeros((8, 2)), a, b, b, c, ref[0], ref[1], ref[1], ref[2]])
        loss = lcr.losses[0]
        sigma_b = [spectral.block_sigma(a[:3], b[:3]), spectral.block_sigma(b[:3], c[:3])]
        sigma_f = [spectral.block_sigma(ref[0], ref[1]), spectral.block_sigma(ref[1], ref[2])]
        expected = 0.5 * 2.0 * spectral.lipschitz_retention_loss(sigma_b, sigma_f, 2.0)
    np.testing.assert_allclose(float(loss), float(expected), rtol=1e-5)
    for got, want in zip(tape.gradient(loss, [a, b, c]), tape.gradient(expected, [a, b, c])):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-7)
        assert np.all(got.numpy()[3:] == 0)


def test_attach_samples_runs_reference_on_the_first_samples(rng):
    bnn = small_bnn()
    sampled = lcr_larq.attach_lcr(bnn, lcr_lambda=4.0, lcr_samples=3)
    whole = lcr_larq.attach_lcr(bnn, lcr_lambda=4.0, lcr_samples=0)
    x, _ = batch(rng, 8)
    # Inference-mode binary features do not depend on the rest of the batch,
    # so the estimate on 3 samples equals the whole-batch loss of those 3.
    sampled(x, training=False)
    whole(x[:3], training=False)
    np.testing.assert_allclose(float(sampled.losses[0]), float(whole.losses[0]), rtol=1e-5)
    whole(x, training=False)
    assert abs(float(whole.losses[0]) - float(sampled.losses[0])) > 1e-6


def test_attach_taps_block_features_and_keeps_loss_and_gradients(rng):
    """The SampleTaps only reroute gradients: the training model's loss and
    gradients equal those of the same LCR wired without taps (the layer
    cutting the BNN's own block features)."""
    tf.keras.utils.set_random_seed(3)
    bnn = small_bnn()
    tapped = lcr_larq.attach_lcr(bnn, lcr_lambda=4.0, lcr_samples=3, lcr_every=1)
    taps = [layer for layer in tapped.layers if isinstance(layer, layers.SampleTap)]
    assert len(taps) == len(lcr_larq.find_blocks(bnn)) + 1  # stem + every block
    blocks = lcr_larq.find_blocks(bnn)
    binary = [t for b in blocks for t in (b.input, b.output)]
    sliced = layers.SampleSlice(3)(bnn.inputs[0])
    reference = lcr_larq.full_precision_path(bnn, binary, [sliced])
    lcr = layers.LipschitzRetention(lcr_lambda=4.0, lcr_samples=3)
    untapped = tf.keras.Model(bnn.inputs, lcr([bnn.outputs[0], *binary, *reference]))
    x, y = batch(rng, 8)
    results = []
    for model in (tapped, untapped):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = CE(y, logits) + tf.add_n(model.losses)
        results.append((logits, model.losses[0], tape.gradient(loss, bnn.trainable_weights)))
    (logits_a, lip_a, grads_a), (logits_b, lip_b, grads_b) = results
    np.testing.assert_allclose(logits_a.numpy(), logits_b.numpy(), rtol=1e-5, atol=1e-6)
    assert float(lip_a) > 0
    np.testing.assert_allclose(float(lip_a), float(lip_b), rtol=1e-5)
    for a, b in zip(grads_a, grads_b):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-6)


def test_strip_removes_the_taps(rng):
    bnn = small_bnn()
    stripped = lcr_larq.strip_lcr(lcr_larq.attach_lcr(bnn, lcr_lambda=4.0, lcr_samples=3))
    assert [layer.name for layer in stripped.layers] == [layer.name for layer in bnn.layers]
    x, _ = batch(rng, 8)
    np.testing.assert_array_equal(stripped(x).numpy(), bnn(x).numpy())


def test_metrics_are_means_over_batches_and_no_weights(rng):
    # One metric object reports every scalar; its logs must still be the mean
    # of the per-batch values, reset between runs, and hold no model weights.
    model = lcr_larq.attach_lcr(small_bnn(), lcr_lambda=4.0, power_iterations=1)
    model.compile(optimizer="sgd", loss=CE)
    x, y = batch(rng, 16)
    halves = [model.evaluate(x[i : i + 8], y[i : i + 8], verbose=0, return_dict=True)
              for i in (0, 8)]
    both = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    for name in ["lcr_lip"] + [f"sigma_ratio_{k}" for k in range(1, BLOCKS + 1)]:
        expected = np.mean([h[name] for h in halves])
        np.testing.assert_allclose(both[name], expected, rtol=1e-5)
    assert halves[0]["lcr_lip"] != halves[1]["lcr_lip"]
    assert lcr_larq.lcr_layer(model).weights == []


def test_mse_form_divides_by_the_batch_not_the_samples():
    """The public code divides by its batch size: with identical samples the
    loss does not depend on how many of them L_lip is estimated on."""
    x = tf.tile(tf.random.normal((1, 8, 8, 3)), [16, 1, 1, 1])
    y = tf.tile(tf.random.normal((1, 4, 4, 5)), [16, 1, 1, 1])
    xf = tf.tile(tf.random.normal((1, 8, 8, 3)), [16, 1, 1, 1])
    yf = tf.tile(tf.random.normal((1, 4, 4, 5)), [16, 1, 1, 1])
    losses = {}
    for samples in (0, 2, 8):
        lcr = layers.LipschitzRetention(lcr_lambda=2.0, lcr_form="mse", lcr_samples=samples)
        n = samples or 16
        lcr([tf.zeros((16, 2)), x, y, xf[:n], yf[:n]])
        losses[samples] = float(lcr.losses[0])
    assert losses[0] > 0
    np.testing.assert_allclose([losses[2], losses[8]], [losses[0]] * 2, rtol=1e-5)
    # Closed form: λ/2 · (σ_B − σ_F)² / (B · 10⁴) with B = 16, one block.
    sigma_b = float(spectral.block_sigma(x[:1], y[:1], 20)[0])
    sigma_f = float(spectral.block_sigma(xf[:1], yf[:1], 20)[0])
    np.testing.assert_allclose(losses[0], (sigma_b - sigma_f) ** 2 / (16 * 1e4), rtol=1e-3)


def test_building_a_model_on_the_layer_traces_no_loss_and_a_step_adds_it(
    rng, tmp_path, monkeypatch
):
    """``attach_lcr`` and ``load_model`` trace the LCR layer only for its
    output's shape (tf-keras' scratch graph): no σ and no loss there; every
    call still adds ``(λ/2)·L_lip``."""
    traced = []
    loss_of = layers.LipschitzRetention._loss_and_metrics
    monkeypatch.setattr(layers.LipschitzRetention, "_loss_and_metrics",
                        lambda self, *args: traced.append(self.name) or loss_of(self, *args))
    model = lcr_larq.attach_lcr(small_bnn(), lcr_lambda=4.0, lcr_every=1, power_iterations=1)
    assert traced == []  # with the loss in the shape-only trace: ["lcr"]
    model.save(tmp_path / "model.keras")
    loaded = tf.keras.models.load_model(tmp_path / "model.keras")
    assert traced == []
    x, _ = batch(rng)
    added = []
    for net in (model, loaded):
        net(x, training=True)
        (loss,) = net.losses
        lip = lcr_larq.lcr_layer(net)._means.result()["lcr_lip"]
        np.testing.assert_allclose(float(loss), 2.0 * float(lip), rtol=1e-5)
        added.append(float(loss))
    assert len(traced) == 2 and added[0] > 0
    np.testing.assert_allclose(added[1], added[0], rtol=1e-5)  # the same weights

"""LCR under Keras' mixed-precision policies: the network computes in 16 bits,
LCR's math, the logits and the losses stay float32, and loss scaling leaves
the papers' optimizers as they are."""

import numpy as np
import pytest
import tensorflow as tf
from helpers import batch, small_bnn

import lcr_larq
from lcr_larq import graph, layers, optimizers, spectral
from lcr_larq.batchnorm import recalibrate_batchnorm

CE = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
POLICIES = ("mixed_float16", "mixed_bfloat16")
#: Half the spacing of 16-bit numbers around 1 (unit roundoff): float16 keeps
#: 11 significant bits, bfloat16 8.
UNIT_ROUNDOFF = {"mixed_float16": 2.0**-11, "mixed_bfloat16": 2.0**-8}


@pytest.fixture(params=POLICIES)
def policy(request):
    """A 16-bit policy name; the global policy is float32 again afterwards."""
    yield request.param
    tf.keras.mixed_precision.set_global_policy("float32")
    tf.keras.backend.clear_session()


def twins(policy, **lcr):
    """The same LCR training model (ResNet-8) built under float32 and under
    ``policy``, with the float32 model's weights copied into the other."""
    tf.keras.mixed_precision.set_global_policy("float32")
    bnn32 = small_bnn()
    model32 = lcr_larq.attach_lcr(bnn32, **lcr)
    tf.keras.mixed_precision.set_global_policy(policy)
    bnn16 = small_bnn()
    bnn16.set_weights(bnn32.get_weights())
    return model32, lcr_larq.attach_lcr(bnn16, **lcr)


def exact_sigmas(x, y):
    """σ1 of every sample's cross matrix, by SVD in float64."""
    a, b, n = spectral.cross_factors(tf.cast(x, tf.float64), tf.cast(y, tf.float64))
    m = np.einsum("bpi,bpj->bij", a.numpy(), b.numpy()) / float(n)
    return m, np.linalg.svd(m, compute_uv=False)[:, 0]


def test_network_is_16_bit_and_lcr_logits_and_losses_float32(policy, rng):
    """The blocks compute in the policy's 16 bits; LCR's every floating op,
    the logits, the loss and the gradients are float32."""
    _, model = twins(policy, lcr_samples=4, lcr_every=1)
    compute = tf.keras.mixed_precision.Policy(policy).compute_dtype
    bnn = lcr_larq.strip_lcr(model)
    assert all(block.output.dtype == compute for block in lcr_larq.find_blocks(bnn))
    assert bnn.output.dtype == tf.float32 and model.output.dtype == tf.float32
    lcr = lcr_larq.lcr_layer(model)
    assert lcr.compute_dtype == "float32"
    x, y = batch(rng, 8)

    def step(x):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = CE(y, logits) + tf.add_n(model.losses)
        return logits, model.losses[0], loss, tape.gradient(loss, model.trainable_weights)

    graph_of_step = tf.function(step).get_concrete_function(x).graph
    lcr_ops = [op for op in graph_of_step.get_operations() if f"/{lcr.name}/" in op.name]
    dtypes = {(op.type == "Cast", out.dtype.name)
              for op in lcr_ops for out in op.outputs if out.dtype.is_floating}
    # Forward and backward, every op of LCR (cross matrices, power iteration,
    # σ, L_lip) is float32 but the casts that take the gradient back to the
    # 16-bit features.
    assert dtypes == {(False, "float32"), (True, "float32"), (True, compute)}
    logits, lip, loss, gradients = step(x)
    assert logits.dtype == lip.dtype == loss.dtype == tf.float32
    assert float(lip) > 0 and np.isfinite(float(loss))
    assert {g.dtype for g in gradients} == {tf.float32}
    assert all(np.all(np.isfinite(g)) for g in gradients)


def test_sigma_matches_float32_within_the_cross_matrix_difference(policy, rng):
    """σ of every block on both paths, under the policy and under float32.

    Tolerance: σ1 is 1-Lipschitz in the spectral norm (Weyl), so a 16-bit
    network whose block features give cross matrices M′ in place of M can
    move σ by at most ‖M′ − M‖₂ per sample, however its features came to
    differ (16-bit rounding, and in the binary path the signs of activations
    within rounding of 0, which flip). LCR's own math must add no more than
    float32 rounding: it is checked against the exact σ1 of the policy's own
    features to 1e-4, tighter than 16-bit math could be (the unit roundoff
    is 4.9e-4 for float16, 3.9e-3 for bfloat16); 50 power iterations make
    the estimate σ1 itself.
    """
    x, _ = batch(rng, 16)
    models = twins(policy, lcr_samples=0, lcr_every=1, block_metrics="sigma", power_iterations=50)
    sigma, cross = [], []
    for model in models:
        lcr = lcr_larq.lcr_layer(model)
        model(x, training=False)
        (means,) = lcr.metrics
        reported = {k: float(v) for k, v in means.result().items()}
        features = tf.keras.Model(model.inputs, lcr.input)(x, training=False)[1:]
        pairs = list(zip(features[0::2], features[1::2]))
        k_blocks = len(pairs) // 2
        exact = [exact_sigmas(a, b) for a, b in pairs]
        lcr_sigma = [reported[f"sigma_{path}_{k}"] for path in "bf" for k in range(1, k_blocks + 1)]
        np.testing.assert_allclose(lcr_sigma, [s.mean() for _, s in exact], rtol=1e-4)
        sigma.append(np.array(lcr_sigma))
        cross.append([m for m, _ in exact])
    weyl = np.array([np.linalg.norm(m16 - m32, ord=2, axis=(1, 2)).mean()
                     for m32, m16 in zip(*cross)])
    np.testing.assert_array_less(np.abs(sigma[1] - sigma[0]), weyl + 2e-4 * sigma[0])
    # The reference path has no sign to flip: only rounding separates it
    # from float32, a few units of roundoff after the five blocks' layers.
    reference = slice(k_blocks, None)
    relative = np.abs(sigma[1] - sigma[0])[reference] / sigma[0][reference]
    assert relative.max() < 16 * UNIT_ROUNDOFF[policy], relative


def test_reference_batch_norm_is_keras_batch_norm_under_the_policy(policy, rng):
    """The full-precision path's batch statistics normalize 16-bit features
    exactly as Keras' own batch normalization does in training, fused (conv
    features) or not (dense features), with float32 statistics."""
    tf.keras.mixed_precision.set_global_policy(policy)
    for shape in ((8, 5, 5, 6), (32, 6)):
        bn = layers.BatchNormalization(epsilon=1e-5)
        x = tf.constant(rng.normal(2.0, 3.0, shape).astype(np.float32))
        bn(x)  # builds it
        bn.gamma.assign(rng.uniform(0.5, 2.0, bn.gamma.shape).astype(np.float32))
        bn.beta.assign(rng.normal(size=bn.beta.shape).astype(np.float32))
        moving = [w.numpy() for w in bn.non_trainable_weights]
        ours = bn(x, training=True, full_precision=True)
        for before, after in zip(moving, bn.non_trainable_weights):
            np.testing.assert_array_equal(before, after.numpy())  # left alone
        expected = bn(x, training=True)
        assert not np.array_equal(moving[0], bn.moving_mean.numpy())  # Keras' own moves them
        assert ours.dtype == expected.dtype == bn.compute_dtype
        np.testing.assert_array_equal(ours.numpy(), expected.numpy())
        # What it computes: float64 statistics of the 16-bit inputs.
        x16 = tf.cast(x, bn.compute_dtype).numpy().astype(np.float64)
        axes = tuple(range(x16.ndim - 1))
        by_hand = (x16 - x16.mean(axes)) / np.sqrt(x16.var(axes) + 1e-5)
        by_hand = by_hand * bn.gamma.numpy() + bn.beta.numpy()
        tolerance = 2 * UNIT_ROUNDOFF[policy]  # the output rounded to 16 bits
        np.testing.assert_allclose(ours.numpy().astype(np.float64), by_hand,
                                   rtol=tolerance, atol=tolerance * np.abs(by_hand).max())


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_loss_scaling_keeps_the_papers_optimizers(name):
    """One step through LossScaleOptimizer equals one without it on float32
    variables: SGD with coupled weight decay, AdamW with decoupled decay,
    both on a warm-up + cosine schedule (at step 2 of 10). The loss scale is
    a power of two, so scaling and unscaling are exact."""
    schedule = optimizers.WarmupDecay(0.1, total=10, warmup=2)
    a = np.array([[2.0, -1.0, 0.5], [0.3, 1.5, -2.0]], np.float32)
    results = []
    for wrap in (False, True):
        optimizer = optimizers.make_optimizer(name, schedule, weight_decay=0.1)
        if wrap:
            optimizer = optimizers.for_policy(optimizer, "mixed_float16")
            assert isinstance(optimizer, tf.keras.mixed_precision.LossScaleOptimizer)
        w = tf.Variable([0.7, -1.2, 0.4])
        for _ in range(3):
            with tf.GradientTape() as tape:
                loss = 0.5 * tf.reduce_sum(tf.square(tf.linalg.matvec(a, w) - 1.0))
                scaled = optimizer.get_scaled_loss(loss) if wrap else loss
            gradient = tape.gradient(scaled, w)
            if wrap:
                (gradient,) = optimizer.get_unscaled_gradients([gradient])
            optimizer.apply_gradients([(gradient, w)])
        results.append((w.numpy(), int(optimizer.iterations)))
    (plain, steps), (scaled, scaled_steps) = results
    assert steps == scaled_steps == 3
    np.testing.assert_allclose(scaled, plain, rtol=1e-6)
    decayed = optimizers.make_optimizer(name, 0.1, weight_decay=0.1)
    assert optimizers.for_policy(decayed, "mixed_bfloat16") is decayed  # no scaling
    assert optimizers.for_policy(decayed, "float32") is decayed
    with pytest.raises(ValueError):
        optimizers.for_policy(decayed, "float17")


def test_step_with_loss_scaling_is_close_to_float32(policy, rng):
    """One training step of an LCR model (SGD, coupled weight decay, one
    power iteration) under the policy, with loss scaling for float16 (``for_policy``): its update is
    finite and close to float32's.

    The network has binary weights and real activations (1w32a, sign
    weights), so that its step is float32's step rounded: rounding never
    flips the sign of a weight, but it does flip binary activations within
    rounding of 0, and in a 1w1a network the flips multiply layer after
    layer (under float16, 1e-4 of the stem's outputs, a fifth of block 3's),
    which makes it another step altogether.

    Tolerance: the forward pass is continuous, off by a few units of
    roundoff u; the backward pass is not, through ReLU's derivative: the
    units within rounding of 0 (a fraction ∝ u) change their mask, each by
    O(1) at random, so the gradient moves by ∝ √u in norm. Measured with
    five power iterations: about 0.5·√u (1 % for float16, 3 % for
    bfloat16); the bound is 2·√u (4.4 % and 12.5 %), far below the √2 of
    an unrelated update.
    """
    tf.keras.mixed_precision.set_global_policy("float32")
    options = dict(precision="1w32a", weight_quantizer="ste_sign")
    bnn32 = small_bnn(**options)
    tf.keras.mixed_precision.set_global_policy(policy)
    bnn16 = small_bnn(**options)
    bnn16.set_weights(bnn32.get_weights())
    x, y = batch(rng, 8)
    updates = []
    for bnn, name in ((bnn32, "float32"), (bnn16, policy)):
        model = lcr_larq.attach_lcr(bnn, lcr_samples=4, lcr_every=1, power_iterations=1)
        optimizer = optimizers.for_policy(optimizers.make_optimizer("sgd", 0.1, 1e-4), name)
        model.compile(optimizer=optimizer, loss=CE)
        before = [w.numpy() for w in model.trainable_weights]
        # Dynamic loss scaling starts high (2^15) and skips the steps whose
        # gradients overflow float16, halving the scale: the first applied
        # step is the one compared (SGD's state starts with it).
        for _ in range(16):
            model.train_on_batch(x, y)
            update = np.concatenate([(w.numpy() - b).ravel()
                                     for w, b in zip(model.trainable_weights, before)])
            if np.any(update):
                break
        updates.append(update)
    if policy == "mixed_float16":
        assert isinstance(optimizer, tf.keras.mixed_precision.LossScaleOptimizer)
    full, mixed = updates
    assert np.all(np.isfinite(mixed))
    error = np.linalg.norm(mixed - full) / np.linalg.norm(full)
    assert error < 2 * np.sqrt(UNIT_ROUNDOFF[policy]), error


def test_strip_save_and_load_under_the_policy(policy, rng, tmp_path):
    """A 16-bit training model (LCR on every 2nd step, one power iteration)
    strips to its BNN and saves and loads as ``.keras`` with its schedule,
    dtypes and outputs."""
    tf.keras.mixed_precision.set_global_policy(policy)
    model = lcr_larq.attach_lcr(small_bnn(), lcr_samples=4, lcr_every=2, power_iterations=1)
    model.compile(optimizer="sgd", loss=CE)
    x, y = batch(rng, 8)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)  # steps 1 (LCR) and 2 (none)
    bnn = lcr_larq.strip_lcr(model)
    assert lcr_larq.lcr_layer(bnn) is None and bnn.count_params() == model.count_params() - 1
    np.testing.assert_array_equal(bnn(x, training=False), model(x, training=False))
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = tf.keras.models.load_model(path)
    for saved, restored in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(saved.numpy(), restored.numpy())
    (schedule,) = [la for la in loaded.layers if isinstance(la, layers.ScheduledSampleCount)]
    assert int(schedule.step) == 2
    assert lcr_larq.lcr_layer(loaded).compute_dtype == "float32"
    assert lcr_larq.strip_lcr(loaded).output.dtype == tf.float32
    graph.check_jit_compile(loaded)  # the count still reaches the LCR layer
    np.testing.assert_array_equal(loaded(x, training=False), model(x, training=False))
    # And it trains on: step 3 has LCR, step 4 has not.
    lip = []
    for _ in range(2):
        loaded(x, training=True)
        lip.append(float(tf.add_n(loaded.losses)))
    assert lip[0] > 0 and lip[1] == 0.0 and int(schedule.step) == 4


def test_batchnorm_recalibration_under_the_policy(policy, rng):
    """Re-estimated statistics are the float64 moments of the 16-bit
    activations each BN sees, to float32 accuracy (1e-5, where statistics
    summed in 16 bits would be off by the unit roundoff or more)."""
    tf.keras.mixed_precision.set_global_policy(policy)
    bnn = small_bnn()
    model = lcr_larq.attach_lcr(bnn, lcr_samples=4, lcr_every=2)
    x = rng.normal(size=(24, 16, 16, 1)).astype(np.float32)
    report = recalibrate_batchnorm(model, [x[:12], x[12:]])
    found = [graph.batchnorm_inputs(bnn, tf.constant(part)) for part in (x[:12], x[12:])]
    assert report["layers"] == len(found[0]) and report["samples"] == 24
    for (layer, first), (_, second) in zip(*found):
        assert first.dtype == bnn.compute_dtype
        inputs = np.concatenate([first.numpy(), second.numpy()]).astype(np.float64)
        axes = tuple(range(inputs.ndim - 1))
        np.testing.assert_allclose(layer.moving_mean.numpy(), inputs.mean(axes),
                                   rtol=1e-5, atol=1e-5 * np.abs(inputs).max())
        np.testing.assert_allclose(layer.moving_variance.numpy(), inputs.var(axes), rtol=1e-5)

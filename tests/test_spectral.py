"""The regularizer's math against numpy SVD and the paper's closed forms."""

import numpy as np
import pytest
import tensorflow as tf

from lcr_larq import layers, spectral


def matrices_with_gap(rng, batch, rows, cols, ratio=0.8):
    """Random matrices whose second singular value is ``ratio`` times the first."""
    k = min(rows, cols)
    out = []
    for _ in range(batch):
        u, _ = np.linalg.qr(rng.normal(size=(rows, rows)))
        v, _ = np.linalg.qr(rng.normal(size=(cols, cols)))
        s = np.sort(rng.uniform(0.1, 1.0, size=k))[::-1] * rng.uniform(0.5, 5.0)
        s[0] = s[1] / ratio
        out.append(u[:, :k] @ np.diag(s) @ v[:, :k].T)
    return np.stack(out).astype(np.float32)


def relative_errors(m, iterations):
    exact = np.linalg.svd(m, compute_uv=False)[:, 0]
    sigma = spectral.top_singular_value(tf.constant(m), iterations)[0].numpy()
    return np.abs(sigma - exact) / exact


def test_power_iteration_matches_svd(rng):
    m = matrices_with_gap(rng, 16, 12, 7)
    assert relative_errors(m, 20).max() < 1e-3


def test_power_iteration_error_shrinks_with_iterations(rng):
    m = matrices_with_gap(rng, 32, 16, 16, ratio=0.95)
    errors = [relative_errors(m, n).mean() for n in (1, 2, 5, 20)]
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.1 * errors[0]


def test_sigma_gradient_is_the_rayleigh_quotient_gradient(rng):
    """With the vector v held constant, σ = ‖Mᵀv‖ has gradient v (Mᵀv)ᵀ / σ
    after any number of steps, and at convergence that is u₁v₁ᵀ, the
    gradient of the top singular value (from SVD)."""
    m = tf.Variable(matrices_with_gap(rng, 6, 7, 5, ratio=0.5))
    for iterations in (1, 60):
        with tf.GradientTape() as tape:
            sigma, v = spectral.top_singular_value(m, iterations)
            total = tf.reduce_sum(sigma * tf.range(1.0, 7.0))  # a weight per matrix
        grad = tape.gradient(total, m).numpy()
        v, sigma = v.numpy(), sigma.numpy()
        u = np.einsum("bij,bi->bj", m.numpy(), v)  # Mᵀ v
        weights = np.arange(1.0, 7.0)[:, None, None]
        expected = weights * v[:, :, None] * u[:, None, :] / sigma[:, None, None]
        np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-6)
    left, _, right = np.linalg.svd(m.numpy())
    exact = weights * left[:, :, :1] * right[:, :1, :]  # u₁ v₁ᵀ, sign-free
    np.testing.assert_allclose(grad, exact, rtol=1e-3, atol=1e-4)


def test_eigenvalue_form_agrees_with_matrix_free_form(rng):
    m = tf.constant(matrices_with_gap(rng, 8, 10, 6))
    rm = tf.matmul(m, m, transpose_b=True)
    eigen, _ = spectral.power_iteration(rm, 20)
    sigma, _ = spectral.top_singular_value(m, 20)
    np.testing.assert_allclose(np.sqrt(eigen.numpy()), sigma.numpy(), rtol=1e-4)
    exact = np.linalg.eigvalsh(rm.numpy())[:, -1]
    np.testing.assert_allclose(eigen.numpy(), exact, rtol=1e-3)


def test_retention_matrix_is_cross_matrix_gram(rng):
    x = tf.constant(rng.normal(size=(3, 8, 8, 4)), tf.float32)
    y = tf.constant(rng.normal(size=(3, 4, 4, 6)), tf.float32)
    # By hand: 2×2 average pooling of x, then X̂ Ŷᵀ / P.
    pooled = x.numpy().reshape(3, 4, 2, 4, 2, 4).mean(axis=(2, 4)).reshape(3, 16, 4)
    m = np.einsum("bpi,bpj->bij", pooled, y.numpy().reshape(3, 16, 6)) / 16
    np.testing.assert_allclose(spectral.cross_matrix(x, y).numpy(), m, rtol=1e-5, atol=1e-6)
    rm = spectral.retention_matrix(x, y).numpy()
    np.testing.assert_allclose(rm, m @ m.transpose(0, 2, 1), rtol=1e-4, atol=1e-6)


def decorrelated_maps(rng, batch, size, channels):
    """Feature maps whose channels are orthogonal over positions: X̂ X̂ᵀ / P = I."""
    positions = size * size
    maps = []
    for _ in range(batch):
        q, _ = np.linalg.qr(rng.normal(size=(positions, positions)))
        maps.append(np.sqrt(positions) * q[:, :channels])  # P × C1
    return np.stack(maps).reshape(batch, size, size, channels).astype(np.float32)


@pytest.mark.parametrize("quantizer", ["ste_sign", None])
def test_conv_retention_sigma_is_weight_spectral_norm(rng, quantizer):
    """Paper Eq. 7–9: a linear 1×1 conv on decorrelated inputs gives σ = ‖W‖₂."""
    x = tf.constant(decorrelated_maps(rng, 4, 4, 6))
    conv = layers.QuantConv2D(5, 1, kernel_quantizer=quantizer, use_bias=False)
    binary = conv(x)
    latent = conv(x, full_precision=True)
    kernel = conv.kernel.latent_variable.numpy()[0, 0] if quantizer else conv.kernel.numpy()[0, 0]
    w_binary = np.where(kernel >= 0, 1.0, -1.0) if quantizer else kernel
    for y, w in ((binary, w_binary), (latent, kernel)):
        sigma = spectral.block_sigma(x, y, iterations=50).numpy()
        exact = np.linalg.svd(w, compute_uv=False)[0]
        np.testing.assert_allclose(sigma, np.full(4, exact), rtol=1e-4)


def test_dense_retention_sigma_is_weight_spectral_norm(rng):
    batch, c_in = 32, 6
    q, _ = np.linalg.qr(rng.normal(size=(batch, batch)))
    x = tf.constant(np.sqrt(batch) * q[:, :c_in], tf.float32)  # Xᵀ X / B = I
    dense = layers.QuantDense(4, kernel_quantizer="ste_sign", use_bias=False)
    kernel = None
    for full_precision in (False, True):
        y = dense(x, full_precision=full_precision)
        kernel = dense.kernel.latent_variable.numpy()
        w = kernel if full_precision else np.where(kernel >= 0, 1.0, -1.0)
        sigma = spectral.block_sigma(x, y, iterations=50).numpy()
        assert sigma.shape == (1,)
        np.testing.assert_allclose(sigma[0], np.linalg.svd(w, compute_uv=False)[0], rtol=1e-4)


def test_loss_is_zero_for_identical_paths_and_positive_otherwise(rng):
    sig = [tf.constant(rng.uniform(0.5, 2, size=8), tf.float32) for _ in range(3)]
    for form in spectral.LOSS_FORMS:
        assert float(spectral.lipschitz_retention_loss(sig, sig, 2.0, form)) == 0.0
        other = [s * 1.1 for s in sig]
        assert float(spectral.lipschitz_retention_loss(other, sig, 2.0, form)) > 0.0


def test_beta_weighting_two_blocks_by_hand():
    sigma_b = [tf.constant([2.0, 1.0]), tf.constant([3.0, 2.0])]
    sigma_f = [tf.constant([1.0, 1.0]), tf.constant([2.0, 4.0])]
    # β = 2, K = 2: block 1 weight 2^-1, block 2 weight 1.
    # sample 1: ((2/1 − 1)·½)² + ((3/2 − 1)·1)² = 0.25 + 0.25 = 0.5
    # sample 2: ((1/1 − 1)·½)² + ((2/4 − 1)·1)² = 0 + 0.25 = 0.25
    ratio = spectral.lipschitz_retention_loss(sigma_b, sigma_f, beta=2.0, form="ratio")
    np.testing.assert_allclose(float(ratio), (0.5 + 0.25) / 2, rtol=1e-6)
    # β = 3: ((1)·⅓)² = 1/9 for sample 1's block 1.
    ratio3 = spectral.lipschitz_retention_loss(sigma_b, sigma_f, beta=3.0, form="ratio")
    np.testing.assert_allclose(float(ratio3), ((1 / 9 + 0.25) + 0.25) / 2, rtol=1e-6)
    # mse: Σ_k β^(k−K) · mean((σ_B − σ_F)²) / (B · 10⁴), B = 2
    # block 1: ½ · (1 + 0)/2 = 0.25; block 2: 1 · (1 + 4)/2 = 2.5
    mse = spectral.lipschitz_retention_loss(sigma_b, sigma_f, beta=2.0, form="mse")
    np.testing.assert_allclose(float(mse), (0.25 + 2.5) / (2 * 1e4), rtol=1e-6)


def test_all_zero_activations_give_finite_loss_and_gradient():
    x = tf.zeros((4, 8, 8, 3))
    y = tf.Variable(tf.zeros((4, 8, 8, 5)))
    with tf.GradientTape() as tape:
        sigma_b = spectral.block_sigma(x, y)
        sigma_f = spectral.block_sigma(x, tf.zeros((4, 8, 8, 5)))
        loss = spectral.lipschitz_retention_loss([sigma_b], [sigma_f])
    grad = tape.gradient(loss, y)
    assert np.all(sigma_b.numpy() == 0)
    assert np.isfinite(float(loss))
    assert np.all(np.isfinite(grad.numpy()))
    # Only the reference is zero: the block is skipped, never NaN.
    lone = spectral.lipschitz_retention_loss([tf.ones(4)], [tf.zeros(4)])
    assert float(lone) == 0.0


def test_power_iteration_runs_in_tf_function(rng):
    m = tf.constant(matrices_with_gap(rng, 4, 6, 6))
    compiled = tf.function(lambda a: spectral.top_singular_value(a, 20)[0])
    np.testing.assert_allclose(
        compiled(m).numpy(), np.linalg.svd(m.numpy(), compute_uv=False)[:, 0], rtol=1e-3
    )


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError, match="iterations"):
        spectral.top_singular_value(tf.ones((1, 2, 2)), 0)
    with pytest.raises(ValueError, match="form"):
        spectral.lipschitz_retention_loss([tf.ones(1)], [tf.ones(1)], form="l1")
    with pytest.raises(ValueError, match="β"):
        layers.LipschitzRetention(lcr_beta=1.0)
    with pytest.raises(ValueError, match="λ"):
        layers.LipschitzRetention(lcr_lambda=-1.0)


def test_block_sigmas_equal_each_block_alone_and_svd(rng):
    # Shapes that group (two 8×8×4→8×8×4 blocks on batches of 3 and 2), a
    # pooled stage transition, a dense pair and two factored pairs; inside a tf.function with an
    # unknown batch size, as in model.fit.
    pairs = [
        (rng.normal(size=(3, 8, 8, 4)), rng.normal(size=(3, 8, 8, 4))),
        (rng.normal(size=(2, 8, 8, 4)), rng.normal(size=(2, 8, 8, 4))),
        (rng.normal(size=(3, 8, 8, 4)), rng.normal(size=(3, 4, 4, 6))),
        (rng.normal(size=(5, 7)), rng.normal(size=(5, 3))),
        # fewer positions than channels: the factored route, grouped too
        (rng.normal(size=(3, 2, 2, 12)), rng.normal(size=(3, 2, 2, 20))),
        (rng.normal(size=(4, 2, 2, 12)), rng.normal(size=(4, 2, 2, 20))),
    ]
    pairs = [(tf.constant(x, tf.float32), tf.constant(y, tf.float32)) for x, y in pairs]
    specs = [
        (tf.TensorSpec((None, *x.shape[1:])), tf.TensorSpec((None, *y.shape[1:])))
        for x, y in pairs
    ]
    fused = tf.function(lambda p: spectral.block_sigmas(p, 30), input_signature=[specs])
    for (x, y), sigma in zip(pairs, fused(pairs)):
        alone = spectral.block_sigma(x, y, 30).numpy()
        exact = np.linalg.svd(spectral.cross_matrix(x, y).numpy(), compute_uv=False)[:, 0]
        assert sigma.shape == alone.shape
        np.testing.assert_allclose(sigma.numpy(), alone, rtol=1e-5)
        np.testing.assert_allclose(sigma.numpy(), exact, rtol=1e-3)


def test_block_sigmas_gradient_equals_each_block_alone(rng):
    xs = [tf.Variable(rng.normal(size=(2, 4, 4, 3)).astype(np.float32)) for _ in range(2)]
    y = tf.constant(rng.normal(size=(2, 4, 4, 3)).astype(np.float32))
    grads = []
    for fn in (
        lambda: spectral.block_sigmas([(xs[0], y), (xs[1], y)]),
        lambda: [spectral.block_sigma(xs[0], y), spectral.block_sigma(xs[1], y)],
    ):
        with tf.GradientTape() as tape:
            a, b = fn()
            total = tf.reduce_sum(a) + 2.0 * tf.reduce_sum(b)
        grads.append(tape.gradient(total, xs))
    for fused, alone in zip(*grads):
        np.testing.assert_allclose(fused.numpy(), alone.numpy(), rtol=1e-5, atol=1e-7)


def test_first_samples_value_and_gradient_match_slicing(rng):
    x = tf.Variable(rng.normal(size=(6, 3, 3, 2)).astype(np.float32))
    w = tf.constant(rng.normal(size=(4, 3, 3, 2)).astype(np.float32))
    grads = []
    for cut in (lambda t: spectral.first_samples(t, 4), lambda t: t[:4]):
        with tf.GradientTape() as tape:
            out = cut(x)
            loss = tf.reduce_sum(out * w)
        grads.append(tape.gradient(loss, x).numpy())
        np.testing.assert_array_equal(out.numpy(), x.numpy()[:4])
    np.testing.assert_array_equal(grads[0], grads[1])
    assert np.all(grads[0][4:] == 0) and np.any(grads[0][:4] != 0)
    # A batch smaller than ``samples`` is taken whole.
    np.testing.assert_array_equal(spectral.first_samples(x[:2], 4).numpy(), x.numpy()[:2])


def test_sample_tap_gradient_is_the_sum_of_both_uses(rng):
    x = tf.Variable(rng.normal(size=(6, 3, 3, 2)).astype(np.float32))
    w_whole = tf.constant(rng.normal(size=(6, 3, 3, 2)).astype(np.float32))
    for samples in (4, 9):  # 9: a batch smaller than ``samples`` is taken whole
        kept = min(samples, 6)
        w_cut = tf.constant(rng.normal(size=(kept, 3, 3, 2)).astype(np.float32))
        grads = []
        for split in (
            lambda t, samples=samples: spectral.sample_tap(t, samples),
            lambda t, samples=samples: (t, t[:samples]),  # two uses: TF sums them
        ):
            with tf.GradientTape() as tape:
                whole, cut = split(x)
                loss = tf.reduce_sum(whole * w_whole) + tf.reduce_sum(tf.sin(cut) * w_cut)
            grads.append(tape.gradient(loss, x).numpy())
            np.testing.assert_array_equal(whole.numpy(), x.numpy())
            np.testing.assert_array_equal(cut.numpy(), x.numpy()[:samples])
        np.testing.assert_allclose(grads[0], grads[1], rtol=1e-6)
        # Closed form: w_whole everywhere, plus cos(x)·w_cut on the first samples.
        expected = w_whole.numpy().copy()
        expected[:kept] += np.cos(x.numpy()[:kept]) * w_cut.numpy()
        np.testing.assert_allclose(grads[0], expected, rtol=1e-5, atol=1e-6)
    # Only one output used: the other contributes nothing.
    for pick, rows in ((0, 6), (1, 4)):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(spectral.sample_tap(x, 4)[pick])
        grad = tape.gradient(loss, x).numpy()
        assert np.all(grad[:rows] == 1) and np.all(grad[rows:] == 0)


def test_factored_route_matches_svd_and_matrix_route(rng):
    # 2×2 positions against 12 and 20 channels: the factored route is taken.
    x = tf.constant(rng.normal(size=(5, 2, 2, 12)), tf.float32)
    y = tf.constant(rng.normal(size=(5, 2, 2, 20)), tf.float32)
    assert spectral.factored_is_cheaper(4, 12, 20)
    assert not spectral.factored_is_cheaper(64, 16, 16)
    a, b, n = spectral.cross_factors(x, y)
    m = spectral.cross_matrix(x, y)
    np.testing.assert_allclose((tf.matmul(a, b, transpose_a=True) / n).numpy(), m.numpy(),
                               rtol=1e-5)
    a, b = a / tf.sqrt(n), b / tf.sqrt(n)  # M = Aᵀ B
    factored = spectral.top_singular_value_factored(a, b, 40)[0].numpy()
    exact = np.linalg.svd(m.numpy(), compute_uv=False)[:, 0]
    np.testing.assert_allclose(factored, exact, rtol=1e-4)
    np.testing.assert_allclose(spectral.block_sigma(x, y, 40).numpy(), exact, rtol=1e-4)
    # Same iterates as the matrix route, so the same estimate after 1 step.
    np.testing.assert_allclose(
        spectral.top_singular_value_factored(a, b, 1)[0].numpy(),
        spectral.top_singular_value(m, 1)[0].numpy(), rtol=1e-4,
    )


def test_factored_route_gradient_equals_matrix_route(rng):
    x = tf.Variable(rng.normal(size=(3, 2, 2, 10)).astype(np.float32))
    y = tf.Variable(rng.normal(size=(3, 2, 2, 10)).astype(np.float32))
    grads = []
    for route in ("factored", "matrix"):
        with tf.GradientTape() as tape:
            a, b, _ = spectral.cross_factors(x, y)
            if route == "factored":
                sigma = spectral.top_singular_value_factored(a, b, 5)[0]
            else:
                sigma = spectral.top_singular_value(tf.matmul(a, b, transpose_a=True), 5)[0]
            total = tf.reduce_sum(sigma * tf.range(1.0, 4.0))
        grads.append(tape.gradient(total, [x, y]))
    for got, want in zip(*grads):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-6)


def test_sample_tap_gradient_under_xla_is_the_same(rng):
    """Compiled by XLA (no InplaceAdd there), the tap's gradient is the same sum."""
    x = tf.constant(rng.normal(size=(6, 3, 3, 2)).astype(np.float32))
    w_whole = tf.constant(rng.normal(size=(6, 3, 3, 2)).astype(np.float32))
    for samples in (4, 9):
        w_cut = tf.constant(rng.normal(size=(min(samples, 6), 3, 3, 2)).astype(np.float32))

        def gradient(x, samples=samples, w_cut=w_cut):
            with tf.GradientTape() as tape:
                tape.watch(x)
                whole, cut = spectral.sample_tap(x, samples)
                loss = tf.reduce_sum(whole * w_whole) + tf.reduce_sum(tf.sin(cut) * w_cut)
            return tape.gradient(loss, x)

        graph = tf.function(gradient)(x).numpy()
        xla = tf.function(gradient, jit_compile=True)(x).numpy()
        np.testing.assert_allclose(xla, graph, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("sizes", [((7, 7), (4, 4)), ((5, 9), (3, 4))])
def test_pooling_to_sizes_that_do_not_divide_is_area_resizing_with_a_gradient(rng, sizes):
    """A 7×7 block input against a 4×4 output (odd sizes halved by a strided
    conv): X̂ is TensorFlow's area resizing, whose op has no gradient and no
    XLA kernel; this one has both, and its gradient is the adjoint."""
    (h, w), (h2, w2) = sizes
    x = tf.constant(rng.normal(size=(2, h, w, 3)).astype(np.float32))
    y = tf.constant(rng.normal(size=(2, h2, w2, 5)).astype(np.float32))
    upstream = tf.constant(rng.normal(size=(2, h2 * w2, 3)).astype(np.float32))

    def pooled_and_gradient(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            a, _, n = spectral.cross_factors(x, y)
            loss = tf.reduce_sum(a * upstream)
        return a, n, tape.gradient(loss, x)

    a, n, gradient = pooled_and_gradient(x)
    area = tf.image.resize(x, (h2, w2), method="area")
    np.testing.assert_allclose(a.numpy(), tf.reshape(area, (2, -1, 3)).numpy(), atol=1e-6)
    assert float(n) == h2 * w2
    # The pooling is linear: ⟨gradient, x′⟩ = ⟨pool(x′), upstream⟩ for any x′.
    probe = rng.normal(size=x.shape).astype(np.float32)
    pooled_probe = tf.reshape(tf.image.resize(probe, (h2, w2), method="area"), (2, -1, 3))
    np.testing.assert_allclose(
        np.sum(gradient.numpy() * probe), np.sum(pooled_probe.numpy() * upstream.numpy()),
        rtol=1e-5,
    )
    xla = tf.function(pooled_and_gradient, jit_compile=True)(x)
    np.testing.assert_allclose(xla[0].numpy(), a.numpy(), atol=1e-6)
    np.testing.assert_allclose(xla[2].numpy(), gradient.numpy(), atol=1e-6)

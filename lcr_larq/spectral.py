"""The linear algebra of Lipschitz Continuity Retention, as pure functions.

Everything here is plain TensorFlow on tensors: no Keras layers, no state. The
Keras glue lives in :mod:`lcr_larq.layers`.

For a block that maps input activations ``x`` to output activations ``y`` the
retention matrix is ``RM = M Mᵀ`` with the cross matrix ``M = X̂ Ŷᵀ / P``
(conv features, one matrix per sample) or ``M = Xᵀ Y / B`` (dense features,
one matrix per batch). If the input channels are decorrelated and the block is
linear, ``y = W x``, then ``M = Wᵀ`` and the top singular value of ``M`` is the
spectral norm ``‖W‖₂`` (Shang et al., ECCV 2022, Eq. 7–9).

Example:
    >>> import numpy as np, tensorflow as tf
    >>> w = np.array([[3.0, 0.0], [0.0, 1.0]], dtype="float32")
    >>> x = tf.eye(2) * np.sqrt(2.0)          # decorrelated: Xᵀ X / B = I
    >>> m = cross_matrix(x, tf.matmul(x, w))  # dense features: M = W
    >>> round(float(top_singular_value(m, iterations=20)[0]), 4)
    3.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from lcr_larq.compat import compiling_with_xla

__all__ = [
    "LOSS_FORMS",
    "MSE_FORM_SCALE",
    "block_sigma",
    "block_sigmas",
    "block_weights",
    "cross_factors",
    "cross_matrix",
    "factored_is_cheaper",
    "first_samples",
    "lipschitz_retention_loss",
    "power_iteration",
    "retention_matrix",
    "sample_tap",
    "top_singular_value",
    "top_singular_value_factored",
]

LOSS_FORMS = ("ratio", "mse")

# Scale of the public code's MSE form: the squared difference of two spectral
# norms is divided by (batch size · 10⁴).
MSE_FORM_SCALE = 1e-4


def _area_weights(size: int, target: int) -> np.ndarray:
    """``target``×``size`` weights of area averaging along one axis: output
    ``i`` averages the input interval ``[i·s, (i+1)·s)``, ``s = size/target``,
    each input pixel weighted by the part of it inside (``tf.image.resize``'s
    ``area`` method)."""
    scale = size / target
    weights = np.zeros((target, size))
    for i in range(target):
        start, end = i * scale, (i + 1) * scale
        for j in range(int(start), min(size, math.ceil(end))):
            weights[i, j] = (min(end, j + 1) - max(start, j)) / scale
    return weights


def _pool_to(x: tf.Tensor, height: int, width: int) -> tf.Tensor:
    """Average-pools ``x`` (B×H×W×C) down to ``height``×``width``.

    Example (3 positions to 2: windows of 1.5, the middle one shared half-half):
        >>> x = tf.reshape([0.0, 3.0, 6.0], (1, 3, 1, 1))
        >>> [round(v, 5) for v in _pool_to(x, 2, 1).numpy().ravel().tolist()]
        [1.0, 5.0]
    """
    in_h, in_w = x.shape[1], x.shape[2]
    if (in_h, in_w) == (height, width):
        return x
    if in_h % height == 0 and in_w % width == 0:
        window = (in_h // height, in_w // width)
        return tf.nn.avg_pool2d(x, ksize=window, strides=window, padding="VALID")
    # Sizes that do not divide: the average over the (fractional) window each
    # output pixel covers, as a product with per-axis weights; TensorFlow's
    # area resizing computes the same but has neither a gradient nor XLA.
    rows = tf.constant(_area_weights(in_h, height), x.dtype)
    cols = tf.constant(_area_weights(in_w, width), x.dtype)
    return tf.einsum("ih,bhwc,jw->bijc", rows, x, cols)


def cross_factors(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """``(A, B, n)`` with ``M = Aᵀ B / n``: the flattened features of a block.

    Conv features (rank 4, B×H×W×C): the larger feature map is average-pooled
    to the smaller one's spatial size and space is flattened to ``n = P``
    positions; ``A = X̂`` (B×P×C1) and ``B = Ŷ`` (B×P×C2), reshaped views
    rather than scaled copies (the scale is applied to the small results).

    Dense features (rank 2, B×C): samples play the role of positions,
    ``A = X`` and ``B = Y`` with a leading axis of 1 (one matrix for the
    batch) and ``n = B``.

    A conv input feeding a dense output (or the reverse) is global-average
    pooled to dense features first.
    """
    x = tf.convert_to_tensor(x)
    y = tf.convert_to_tensor(y, dtype=x.dtype)
    if x.shape.rank != y.shape.rank:
        if x.shape.rank == 4:
            x = tf.reduce_mean(x, axis=[1, 2])
        if y.shape.rank == 4:
            y = tf.reduce_mean(y, axis=[1, 2])
    if x.shape.rank == 2:
        return x[tf.newaxis], y[tf.newaxis], tf.cast(tf.shape(x)[0], x.dtype)
    if x.shape.rank != 4:
        raise ValueError(
            f"cross_matrix takes rank-2 or rank-4 features, got rank {x.shape.rank}"
        )
    height = min(x.shape[1], y.shape[1])
    width = min(x.shape[2], y.shape[2])
    x = _pool_to(x, height, width)
    y = _pool_to(y, height, width)
    positions = height * width
    a = tf.reshape(x, (-1, positions, x.shape[-1]))  # B×P×C1
    b = tf.reshape(y, (-1, positions, y.shape[-1]))  # B×P×C2
    return a, b, tf.constant(positions, x.dtype)


def cross_matrix(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """Cross matrix ``M`` of a block's input ``x`` and output ``y``.

    Conv features: ``M = X̂ Ŷᵀ / P`` per sample, shape B×C1×C2 (see
    :func:`cross_factors` for pooling and flattening). Dense features:
    ``M = Xᵀ Y / B``, shape 1×C1×C2.
    """
    a, b, n = cross_factors(x, y)
    return tf.matmul(a, b, transpose_a=True) / n


def retention_matrix(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """Retention matrix ``RM = M Mᵀ`` of a block (paper Eq. 8 and 10).

    Symmetric positive semi-definite, shape B×C1×C1 (conv) or 1×C1×C1 (dense).
    Its top eigenvalue is the squared top singular value of :func:`cross_matrix`.
    """
    m = cross_matrix(x, y)
    return tf.matmul(m, m, transpose_b=True)


def _safe_normalize(v: tf.Tensor) -> tf.Tensor:
    """Normalizes the last axis to unit length; zero vectors stay zero."""
    norm = tf.norm(v, axis=-1, keepdims=True)
    return tf.math.divide_no_nan(v, norm)


def _safe_sqrt(s: tf.Tensor) -> tf.Tensor:
    """``sqrt`` with a zero (not infinite) gradient at 0."""
    positive = s > 0
    return tf.where(positive, tf.sqrt(tf.where(positive, s, tf.ones_like(s))), 0.0)


def _matvec(m: tf.Tensor, v: tf.Tensor, transpose: bool = False) -> tf.Tensor:
    """``M v`` (or ``Mᵀ v``) for a batch of matrices.

    Written as ``BatchMatMulV3``: TensorFlow's oneDNN build rewrites
    ``tf.linalg.matvec`` to oneDNN's batched matmul, whose fixed cost per call
    dominates on the many tiny matrices of a power iteration (2–3× slower
    there); this op keeps TensorFlow's own kernel.
    """
    product = tf.raw_ops.BatchMatMulV3(
        x=m, y=tf.expand_dims(v, -1), Tout=m.dtype, adj_x=transpose
    )
    return tf.squeeze(product, -1)


@tf.custom_gradient
def _transposed_times_constant(m: tf.Tensor, v: tf.Tensor):
    """``Mᵀ v`` with ``v`` a constant: the gradient reaches ``M`` only, as the
    outer product ``v duᵀ`` (a broadcast multiply, not a batched matmul)."""

    def grad(du):
        return v[..., :, tf.newaxis] * du[..., tf.newaxis, :], None

    return _matvec(m, v, transpose=True), grad


def _iterate(apply, vector: tf.Tensor, iterations: int) -> tf.Tensor:
    """``v ← A v / ‖A v‖``, ``iterations`` times from ``vector``, given
    ``v ↦ A v``; a constant for the gradient."""
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    v = _safe_normalize(tf.stop_gradient(vector))
    for _ in range(iterations):
        v = _safe_normalize(apply(v))
    return v


def _start_vector(vector: tf.Tensor | None, batch, size, dtype) -> tf.Tensor:
    """The given start vectors, or all-ones ``batch``×``size``."""
    if vector is None:
        return tf.ones(tf.stack([batch, size]), dtype=dtype)
    return tf.cast(vector, dtype)


def _length(u: tf.Tensor) -> tf.Tensor:
    """``‖u‖`` over the last axis, with a finite gradient at 0."""
    return _safe_sqrt(tf.reduce_sum(tf.square(u), axis=-1))


def power_iteration(
    matrix: tf.Tensor, iterations: int = 5, vector: tf.Tensor | None = None
) -> tuple[tf.Tensor, tf.Tensor]:
    """Top eigenvalue of a batch of symmetric PSD matrices (paper Algorithm 2).

    ``v ← A v / ‖A v‖`` for ``iterations`` steps, then ``λ ≈ vᵀ A v``. The
    vector is a constant for the gradient (as in spectral normalization), so
    the gradient of ``λ`` is the gradient of the Rayleigh quotient.

    Args:
        matrix: B×N×N symmetric positive semi-definite matrices.
        iterations: power-iteration steps (≥ 1).
        vector: B×N start vectors; all-ones when omitted.

    Returns:
        ``(eigenvalue, vector)``: shapes B and B×N. An all-zero matrix gives
        eigenvalue 0, never NaN.
    """
    matrix = tf.convert_to_tensor(matrix)
    vector = _start_vector(vector, tf.shape(matrix)[0], tf.shape(matrix)[1], matrix.dtype)
    frozen = tf.stop_gradient(matrix)
    v = _iterate(lambda v: _matvec(frozen, v), vector, iterations)
    eigenvalue = tf.reduce_sum(v * tf.linalg.matvec(matrix, v), axis=-1)
    return eigenvalue, v


def top_singular_value(
    m: tf.Tensor, iterations: int = 5, vector: tf.Tensor | None = None
) -> tuple[tf.Tensor, tf.Tensor]:
    """Top singular value of a batch of B×C1×C2 matrices, matrix-free.

    Runs :func:`power_iteration` on ``M Mᵀ`` without forming it:
    ``M Mᵀ v = M (Mᵀ v)``, and ``σ² = vᵀ M Mᵀ v = ‖Mᵀ v‖²``. The vector is a
    constant for the gradient.

    Returns:
        ``(sigma, vector)``: shapes B and B×C1. ``sigma`` is 0 (with a finite
        gradient) for an all-zero matrix.
    """
    m = tf.convert_to_tensor(m)
    vector = _start_vector(vector, tf.shape(m)[0], tf.shape(m)[1], m.dtype)
    frozen = tf.stop_gradient(m)

    def gram(v):  # M Mᵀ v
        return _matvec(frozen, _matvec(frozen, v, transpose=True))

    v = _iterate(gram, vector, iterations)
    return _length(_transposed_times_constant(m, v)), v


def top_singular_value_factored(
    a: tf.Tensor, b: tf.Tensor, iterations: int = 5, vector: tf.Tensor | None = None
) -> tuple[tf.Tensor, tf.Tensor]:
    """:func:`top_singular_value` of ``M = Aᵀ B`` without forming ``M``.

    ``Mᵀ v = Bᵀ (A v)`` and ``M u = Aᵀ (B u)``: with ``A`` B×P×C1 and ``B``
    B×P×C2 a step costs ``2P(C1 + C2)`` instead of ``2·C1·C2``, far less
    when there are fewer positions than channels (late stages: 4×4 positions
    against 512 channels).

    Returns:
        ``(sigma, vector)``: shapes B and B×C1.
    """
    a, b = tf.convert_to_tensor(a), tf.convert_to_tensor(b)
    vector = _start_vector(vector, tf.shape(a)[0], tf.shape(a)[2], a.dtype)

    def transposed(a, b):  # v ↦ Mᵀ v = Bᵀ (A v)
        return lambda v: _matvec(b, _matvec(a, v), transpose=True)

    frozen_a, frozen_b = tf.stop_gradient(a), tf.stop_gradient(b)
    frozen_t = transposed(frozen_a, frozen_b)

    def gram(v):  # M Mᵀ v = Aᵀ (B (Mᵀ v))
        return _matvec(frozen_a, _matvec(frozen_b, frozen_t(v)), transpose=True)

    v = _iterate(gram, vector, iterations)
    return _length(transposed(a, b)(v)), v


def factored_is_cheaper(positions: int, in_channels: int, out_channels: int) -> bool:
    """Whether :func:`top_singular_value_factored` reads less than forming
    ``M`` (P·C1·C2) and iterating on it: true when ``P (C1 + C2) < C1 C2``."""
    return positions * (in_channels + out_channels) < in_channels * out_channels


def block_sigma(x: tf.Tensor, y: tf.Tensor, iterations: int = 5) -> tf.Tensor:
    """σ = sqrt(λ_max(RM)) of one block: one value per sample (conv) or one
    value for the batch (dense)."""
    return block_sigmas([(x, y)], iterations)[0]


def block_sigmas(
    pairs: Sequence[tuple[tf.Tensor, tf.Tensor]], iterations: int = 5
) -> list[tf.Tensor]:
    """:func:`block_sigma` of many blocks in few ops.

    Each block takes the cheaper of two exact routes: the cross matrix ``M``
    formed once (:func:`top_singular_value`), or its factors when there are
    fewer positions than channels (:func:`top_singular_value_factored`).
    Blocks of one shape and route (the blocks of a stage, on both paths) are
    stacked along the batch axis and share one batched power iteration: a
    ResNet-20 runs 5 power iterations instead of 18. Each σ is the one of its
    own block; the iteration is independent per matrix.

    Args:
        pairs: ``(x, y)`` input and output features of each block.
        iterations: power-iteration steps.

    Returns:
        One σ tensor per pair: shape B (conv features) or 1 (dense).

    Example:
        >>> x, y = tf.random.normal((2, 4, 4, 3)), tf.random.normal((2, 4, 4, 5))
        >>> a, b = block_sigmas([(x, y), (2.0 * x, y)], iterations=20)
        >>> bool(tf.reduce_all(tf.abs(b - 2.0 * a) < 1e-4))
        True
    """
    operands = []  # per pair: (route, tensors, n)
    groups: dict[tuple, list[int]] = {}
    for i, (x, y) in enumerate(pairs):
        a, b, n = cross_factors(x, y)
        positions, c1, c2 = a.shape[1], a.shape[2], b.shape[2]
        if positions is not None and factored_is_cheaper(positions, c1, c2):
            operands.append(("factored", (a, b), n))
        else:
            operands.append(("matrix", (tf.matmul(a, b, transpose_a=True),), n))
        route, tensors, _ = operands[-1]
        key = (route, *(tuple(t.shape[1:]) for t in tensors), a.dtype)
        groups.setdefault(key, []).append(i)
    sigmas: list[tf.Tensor | None] = [None] * len(operands)
    for (route, *_), indices in groups.items():
        parts = [operands[i][1] for i in indices]
        stacked = parts[0] if len(parts) == 1 else [tf.concat(t, axis=0) for t in zip(*parts)]
        if route == "factored":
            sigma = top_singular_value_factored(*stacked, iterations)[0]
        else:
            sigma = top_singular_value(*stacked, iterations)[0]
        if len(indices) == 1:
            split = [sigma]
        else:
            sizes = tf.stack([tf.shape(p[0])[0] for p in parts])
            split = tf.split(sigma, sizes, num=len(indices))
        for i, part in zip(indices, split):
            sigmas[i] = part / operands[i][2]  # σ(Aᵀ B / n) = σ(Aᵀ B) / n
    return sigmas


def first_samples(x: tf.Tensor, samples: int) -> tf.Tensor:
    """``x[:samples]`` whose gradient is a zero-padded copy made by ``tf.pad``.

    TensorFlow's generic strided-slice gradient is several times slower than
    a pad on large activations, and LCR takes it once per block feature.
    """

    @tf.custom_gradient
    def cut(t):
        def grad(upstream):
            rest = tf.shape(t)[0] - tf.shape(upstream)[0]
            padding = [[0, rest]] + [[0, 0]] * (t.shape.rank - 1)
            return tf.pad(upstream, padding)

        return t[:samples], grad

    return cut(x)


def sample_tap(x: tf.Tensor, samples: int | tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """``(x, x[:samples])`` as one op whose gradient adds the cut's gradient
    into the first samples of the whole tensor's gradient.

    Why: a block feature feeds both the network and LCR, which sees its first
    samples only. LCR's gradient depends on the loss alone, so the executor
    computes it at the start of the backward pass; through a slice (or
    :func:`first_samples`) it becomes a zero-padded full-batch tensor held
    until the network's own gradient reaches the block, some 50 MiB for a
    ResNet-20 at batch 128. With both uses as outputs of one op, the sum waits
    for both gradients and only the small cut gradient is held meanwhile.

    Example:
        >>> x = tf.reshape(tf.range(6.0), (3, 2))
        >>> with tf.GradientTape() as tape:
        ...     tape.watch(x)
        ...     whole, cut = sample_tap(x, 2)
        ...     loss = tf.reduce_sum(whole) + 10 * tf.reduce_sum(cut)
        >>> tape.gradient(loss, x).numpy().tolist()
        [[11.0, 11.0], [11.0, 11.0], [1.0, 1.0]]
    """

    @tf.custom_gradient
    def tap(t):
        def grad(whole, cut):
            if cut is None:
                return whole
            if whole is None:
                whole = tf.zeros_like(t)
            if compiling_with_xla():
                # XLA has no InplaceAdd; it fuses the padding into the sum
                # (no padded copy), and the sum is the same.
                rest = tf.shape(whole)[0] - tf.shape(cut)[0]
                return whole + tf.pad(cut, [[0, rest]] + [[0, 0]] * (cut.shape.rank - 1))
            # Adds into the first rows of the network's gradient, in its own
            # buffer when nothing else holds it: a concat would copy the
            # whole batch at every block feature (the padded sum and a
            # scatter-add take 1.5-2x as long on CPU).
            return tf.raw_ops.InplaceAdd(x=whole, i=tf.range(tf.shape(cut)[0]), v=cut)

        return (tf.identity(t), t[:samples]), grad

    return tap(x)


def block_weights(num_blocks: int, beta: float) -> tf.Tensor:
    """Weights ``β^(k−K)`` for blocks k = 1..K (the last block has weight 1)."""
    exponents = tf.range(1 - num_blocks, 1, dtype=tf.float32)
    return tf.pow(tf.constant(beta, tf.float32), exponents)


def lipschitz_retention_loss(
    sigma_binary: Sequence[tf.Tensor],
    sigma_full: Sequence[tf.Tensor],
    beta: float = 2.0,
    form: str = "ratio",
    batch_size: tf.Tensor | int | None = None,
) -> tf.Tensor:
    """``L_lip`` of the paper (Eq. 11) or of the public code.

    ``ratio`` (default, paper Eq. 11), mean over samples of
    ``Σ_k [(σ_B^k / σ_F^k − 1) · β^(k−K)]²``. A block whose reference σ_F is 0
    carries no information and contributes 0.

    ``mse`` (public code): ``Σ_k β^(k−K) · mean((σ_B^k − σ_F^k)²) / (B · 10⁴)``
    where B is the training batch size (``batch_size``; the public code
    divides by its ``--batch-size`` flag, the global batch), and the mean is
    over the σ values given, which may be a sample of the batch. Without
    ``batch_size``, B is the number of σ values per block.

    Args:
        sigma_binary: K tensors, σ_B of each block (per sample or per batch).
        sigma_full: K tensors of the same shapes, σ_F of the reference.
        beta: block weighting, > 1 weighs later blocks more.
        form: ``"ratio"`` or ``"mse"``.
        batch_size: B of the ``mse`` form.

    Returns:
        A scalar.
    """
    if form not in LOSS_FORMS:
        raise ValueError(f"form must be one of {LOSS_FORMS}, got {form!r}")
    if len(sigma_binary) != len(sigma_full) or not sigma_binary:
        raise ValueError(
            "need one σ_F per σ_B and at least one block, got "
            f"{len(sigma_binary)} and {len(sigma_full)}"
        )
    weights = block_weights(len(sigma_binary), beta)
    total = tf.constant(0.0)
    for k, (s_b, s_f) in enumerate(zip(sigma_binary, sigma_full)):
        s_b = tf.cast(s_b, tf.float32)
        s_f = tf.cast(s_f, tf.float32)
        if form == "ratio":
            gap = tf.where(s_f > 0, tf.math.divide_no_nan(s_b, s_f) - 1.0, 0.0)
            total += tf.reduce_mean(tf.square(gap * weights[k]))
        else:
            count = tf.size(s_b) if batch_size is None else batch_size
            mse = tf.reduce_mean(tf.square(s_b - s_f))
            total += weights[k] * mse * MSE_FORM_SCALE / tf.cast(count, tf.float32)
    return total

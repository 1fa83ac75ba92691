"""Spectral norm (Lipschitz constant) of 2-D convolutions seen as linear operators.

All functions use the Keras / TensorFlow conventions: channels-last tensors,
kernels of shape ``(kh, kw, c_in, c_out)`` and *cross-correlation*
``y[i, j, o] = sum_{a, b, c} x[i*s_h + a - p_top, j*s_w + b - p_left, c] K[a, b, c, o]``
with the padding amounts ``p_top``/``p_left`` that ``tf.nn.conv2d`` (and therefore
``tf.keras.layers.Conv2D``) uses for ``"same"`` and ``"valid"``.

Functions: ``conv_matrix``, the dense matrix of the convolution (the
reference for tiny inputs); ``conv_operator_norm``, the "exact" spectral norm
at a given input size by (block) power iteration on ``A^T A``
(``tf.nn.conv2d`` / ``tf.nn.conv2d_transpose``; dilation 1); the upper bounds
``toeplitz_bound``, input-size independent, from the generating function of
the doubly-block Toeplitz operator (Araujo et al., AAAI 2021) with a provable
correction for the sampling of the frequency torus, and ``gram_bound``, by
Gram iteration on the Fourier-diagonalised circulant embedding (Delattre et
al., ICML 2023); ``reshaped_kernel_norm``, the spectral norm of the kernel
reshaped to ``c_out x (kh*kw*c_in)`` (the spectral-normalisation heuristic;
*not* an upper bound).

Every public function accepts NumPy arrays, ``tf.Tensor`` or ``tf.Variable``
kernels, and computes in float64. Timing is left to the caller, e.g.::

    t0 = time.perf_counter(); s = gram_bound(k, (32, 32)); dt = time.perf_counter() - t0

(the bound functions also report their own wall time with ``return_info=True``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

__all__ = [
    "conv_output_size", "conv_matrix", "conv_operator_norm", "toeplitz_bound", "gram_bound",
    "reshaped_kernel_norm",
]

IntPair = tuple[int, int]
Matmul = Callable[[np.ndarray], np.ndarray]  # a linear map on blocks of column vectors


# --------------------------------------------------------------------------- helpers
def _as_kernel(kernel: Any) -> np.ndarray:
    """Return ``kernel`` as a float64 array of shape ``(kh, kw, c_in, c_out)``."""
    k = np.asarray(kernel.numpy() if hasattr(kernel, "numpy") else kernel).astype(np.float64)
    if k.ndim != 4:
        raise ValueError(f"kernel must have shape (kh, kw, c_in, c_out), got {k.shape}")
    return k


def _pair(value: int | Sequence[int], name: str) -> IntPair:
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    vals = tuple(int(v) for v in value)
    if len(vals) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return vals[0], vals[1]


def _spatial(input_shape: Sequence[int]) -> IntPair:
    """(H, W) from ``(H, W)``, ``(H, W, C)`` or ``(N, H, W, C)``."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) in (2, 3):
        return shape[0], shape[1]
    if len(shape) == 4:
        return shape[1], shape[2]
    raise ValueError(f"input_shape must be (H, W), (H, W, C) or (N, H, W, C): {shape}")


def _padding(padding: str) -> str:
    p = padding.lower()
    if p not in ("same", "valid"):
        raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")
    return p


def conv_output_size(size: int, k: int, stride: int, padding: str) -> tuple[int, int]:
    """Output length and leading zero-padding of a 1-D slice of ``tf.nn.conv2d``.

    ``"same"``:  ``out = ceil(n / s)``, total padding
    ``max((out - 1) * s + k - n, 0)`` of which ``floor(total / 2)`` goes before
    (TensorFlow's rule). ``"valid"``: ``out = ceil((n - k + 1) / s)``, no padding.

    Example:
        >>> conv_output_size(5, 3, 2, "same")
        (3, 1)
        >>> conv_output_size(6, 3, 2, "same")  # asymmetric: 0 before, 1 after
        (3, 0)
    """
    padding = _padding(padding)
    if padding == "same":
        out = -(-size // stride)
        total = max((out - 1) * stride + k - size, 0)
        return out, total // 2
    out = -(-(size - k + 1) // stride)
    if out <= 0:
        raise ValueError(f"'valid' convolution of size {size} with kernel {k} is empty")
    return out, 0


# --------------------------------------------------------------------------- dense
def conv_matrix(
    kernel: Any,
    input_shape: Sequence[int],
    strides: int | Sequence[int] = (1, 1),
    padding: str = "same",
) -> np.ndarray:
    """Explicit dense matrix ``A`` of the convolution, for tests on tiny inputs.

    ``A`` maps ``vec(x)`` to ``vec(y)`` where ``x`` has shape ``(H, W, c_in)``,
    ``y = tf.nn.conv2d(x[None], kernel, strides, padding)[0]`` has shape
    ``(H_out, W_out, c_out)`` and ``vec`` is the C-order (row-major, channels
    last) flattening, so ``A @ x.ravel() == y.ravel()``. Entry layout:
    ``A[(i, j, o), (i*s_h + a - p_top, j*s_w + b - p_left, c)] += K[a, b, c, o]``
    for in-range input positions (zero padding drops the others).

    Its largest singular value ``np.linalg.svd(A, compute_uv=False)[0]`` is the
    exact Lipschitz constant (l2) of the layer. Memory is
    ``H_out*W_out*c_out * H*W*c_in`` doubles: keep inputs tiny.

    Example:
        >>> k = np.ones((3, 3, 1, 1))
        >>> conv_matrix(k, (4, 4, 1)).shape
        (16, 16)
    """
    k = _as_kernel(kernel)
    kh, kw, cin, cout = k.shape
    h, w = _spatial(input_shape)
    sh, sw = _pair(strides, "strides")
    ho, ph = conv_output_size(h, kh, sh, padding)
    wo, pw = conv_output_size(w, kw, sw, padding)
    mat = np.zeros((ho, wo, cout, h, w, cin), dtype=np.float64)
    for i in range(ho):
        for j in range(wo):
            for a in range(kh):
                r = i * sh + a - ph
                if not 0 <= r < h:
                    continue
                for b in range(kw):
                    c = j * sw + b - pw
                    if 0 <= c < w:
                        mat[i, j, :, r, c, :] += k[a, b].T
    return mat.reshape(ho * wo * cout, h * w * cin)


# --------------------------------------------------------------------------- exact
def conv_operator_norm(
    kernel: Any,
    input_shape: Sequence[int],
    strides: int | Sequence[int] = (1, 1),
    padding: str = "same",
    iterations: int = 500,
    tol: float = 1e-6,
    seed: int = 0,
    block_size: int = 8,
) -> tuple[float, dict[str, Any]]:
    """Spectral norm ``||A||_2`` of the convolution at a given input size.

    Power iteration on ``A^T A`` (Golub & Van Loan, *Matrix Computations*,
    Secs. 8.2.1 and 8.2.4), where ``A x = tf.nn.conv2d(x, K, strides, padding)``
    and ``A^T y = tf.nn.conv2d_transpose(y, K, output_shape=x.shape, ...)`` (the
    exact adjoint: TensorFlow implements it as the input-gradient of
    ``conv2d``). To be robust to clustered top singular values (common for
    convolutions, whose spectrum is a union of per-frequency spectra) the
    iteration runs on a block of ``b = block_size`` vectors with Rayleigh-Ritz
    extraction (subspace iteration)::

        V_0 = orth(G), G ~ N(0, I) (seeded, n x b, n = H * W * c_in)
        U_t = A V_t;  S_t = U_t^T U_t (b x b);  theta_t = lambda_max(S_t)
        sigma_t = sqrt(theta_t);  V_{t+1} = orth(A^T U_t)  (QR)

    stopping when ``|sigma_t - sigma_{t-1}| / sigma_t < tol`` or after
    ``iterations`` steps. ``block_size=1`` is the textbook power iteration; it
    can stall near the second singular value when the first two are close (e.g.
    relative gap 2e-3: the Rayleigh quotient barely moves, so the stopping
    test fires while the error is still ~1e-3), while the top Ritz value of a
    block converges at rate ``(sigma_{b+1} / sigma_1)^2`` per step.

    ``sigma_t`` is a Ritz value, hence always a *lower* bound of the true norm
    (Cauchy interlacing). ``info["residual"]`` is
    ``||A^T A x - theta x|| / theta`` for the top Ritz vector ``x``; by the
    Bauer-Fike/Weyl argument some eigenvalue of ``A^T A`` lies within
    ``residual * theta`` of ``theta``. Computation is in float64 and
    deterministic for a given ``seed``.

    Padding ``"same"``/``"valid"`` and strides follow ``tf.nn.conv2d``, i.e.
    exactly what ``tf.keras.layers.Conv2D`` (dilation 1, no bias) computes.

    Args:
        kernel: ``(kh, kw, c_in, c_out)`` kernel (NumPy or TF).
        input_shape: ``(H, W)``, ``(H, W, c_in)`` or ``(N, H, W, c_in)``.
        strides: int or ``(s_h, s_w)``.
        padding: ``"same"`` or ``"valid"``.
        iterations: maximum number of iterations.
        tol: relative-change stopping tolerance.
        seed: seed of the start block.
        block_size: number of simultaneously iterated vectors (``>= 1``; capped
            at ``n``).

    Returns:
        ``(sigma, info)`` with ``info`` keys ``iterations``, ``converged``,
        ``rel_change``, ``residual``, ``output_shape``, ``block_size``,
        ``seconds``.

    Example:
        >>> k = np.random.default_rng(0).normal(size=(3, 3, 2, 4))
        >>> sigma, info = conv_operator_norm(k, (8, 8, 2), strides=2)
        >>> exact = np.linalg.norm(conv_matrix(k, (8, 8, 2), 2), 2)
        >>> bool(abs(sigma - exact) < 1e-4 * exact)
        True
    """
    t0 = time.perf_counter()
    k = _as_kernel(kernel)
    h, w = _spatial(input_shape)
    n = h * w * k.shape[2]
    b = max(1, min(int(block_size), n))
    forward, adjoint, out_shape = _conv_maps(k, (h, w), _pair(strides, "strides"), padding, b)
    sigma, info = _block_power_iteration(forward, adjoint, (n, b), int(iterations), tol, seed)
    info.update(output_shape=out_shape, block_size=b, seconds=time.perf_counter() - t0)
    return sigma, info


def _conv_maps(
    k: np.ndarray, hw: IntPair, strides: IntPair, padding: str, b: int
) -> tuple[Matmul, Matmul, tuple[int, int, int]]:
    """``(A, A^T, output shape)`` of the convolution on blocks of ``b`` vectors.

    ``A`` maps ``(H * W * c_in, b)`` to ``(H_out * W_out * c_out, b)`` columns
    with ``tf.nn.conv2d``; ``A^T`` is ``tf.nn.conv2d_transpose``, its exact adjoint.
    """
    kh, kw, cin, cout = k.shape
    (h, w), pad = hw, _padding(padding).upper()
    ho, _ = conv_output_size(h, kh, strides[0], padding)
    wo, _ = conv_output_size(w, kw, strides[1], padding)
    k_tf = tf.constant(k, dtype=tf.float64)
    in_shape = [b, h, w, cin]

    def forward(v: np.ndarray) -> np.ndarray:  # (n, b) -> (m, b)
        y = tf.nn.conv2d(tf.constant(v.T.reshape(in_shape)), k_tf, strides, padding=pad)
        return y.numpy().reshape(b, -1).T

    def adjoint(u: np.ndarray) -> np.ndarray:  # (m, b) -> (n, b)
        y = tf.constant(u.T.reshape(b, ho, wo, cout))
        x = tf.nn.conv2d_transpose(y, k_tf, output_shape=in_shape, strides=strides, padding=pad)
        return x.numpy().reshape(b, -1).T

    return forward, adjoint, (ho, wo, cout)


def _block_power_iteration(
    forward: Matmul, adjoint: Matmul, shape: IntPair, iterations: int, tol: float, seed: int
) -> tuple[float, dict[str, Any]]:
    """``(sigma, info)`` of subspace iteration on ``A^T A`` with ``shape = (n, b)``
    (see :func:`conv_operator_norm`); ``info``: ``iterations``, ``converged``,
    ``rel_change``, ``residual``."""
    rng = np.random.default_rng(seed)
    v, _ = np.linalg.qr(rng.standard_normal(shape))
    sigma, rel_change, residual, converged, n_done = 0.0, math.inf, math.inf, False, 0
    while n_done < iterations:
        n_done += 1
        u = forward(v)
        theta, vecs = np.linalg.eigh(u.T @ u)
        theta_max = float(theta[-1])
        g = adjoint(u)  # A^T A V
        if theta_max <= 0.0:  # zero kernel
            sigma, rel_change, residual, converged = 0.0, 0.0, 0.0, True
            break
        new_sigma = math.sqrt(theta_max)
        rel_change = abs(new_sigma - sigma) / new_sigma
        sigma = new_sigma
        y = vecs[:, -1]
        residual = float(np.linalg.norm(g @ y - theta_max * (v @ y))) / theta_max
        if rel_change < tol:
            converged = True
            break
        v, _ = np.linalg.qr(g)
    info = {"iterations": n_done, "converged": converged, "rel_change": rel_change,
            "residual": residual}
    return float(sigma), info


# --------------------------------------------------------------------------- Toeplitz
def _default_samples(k: int) -> int:
    """Grid size per axis keeping the sampling correction near 1 %.

    ``1`` for a 1-tap axis (the symbol is constant along it), else
    ``max(64, 32 (k - 1))``, which gives ``beta <= pi / 16`` per axis.
    """
    return 1 if k == 1 else max(64, 32 * (k - 1))


def _grid_correction(kernel_hw: IntPair, grid: IntPair) -> float:
    """Factor ``c >= 1`` with ``sup_torus sigma(w) <= c * max_grid sigma(w)``.

    See :func:`toeplitz_bound` for the derivation: ``1 / sqrt(1 - beta^2 / 2)``
    with ``beta = pi * ((kh - 1) / m_h + (kw - 1) / m_w)``.
    """
    (kh, kw), (mh, mw) = kernel_hw, grid
    beta = math.pi * ((kh - 1) / mh + (kw - 1) / mw)
    if beta * beta >= 2.0:
        raise ValueError(
            f"grid {grid} too coarse for a {kh}x{kw} kernel: beta^2/2 = "
            f"{beta * beta / 2:.3f} >= 1; use more samples"
        )
    return 1.0 / math.sqrt(1.0 - 0.5 * beta * beta)


_CHUNK_ENTRIES = 1 << 22  # complex entries per frequency chunk (64 MiB)


def _symbol_chunks(k: np.ndarray, grid: IntPair) -> Iterator[np.ndarray]:
    """Generating function on the ``m_h x m_w`` grid, in chunks of frequencies.

    Yields arrays of shape ``(n, c_in, c_out)``; the entry for frequency
    ``(p, q)`` is ``sum_{a,b} K[a, b] exp(-2 pi i (a p / m_h + b q / m_w))``, the
    transpose of the ``c_out x c_in`` matrix in the text evaluated at ``-w``
    (neither changes singular values; the grid is symmetric under ``w -> -w``).
    For a real kernel ``F(-w) = conj(F(w))`` has the same singular values and
    entry moduli, so only ``q = 0 .. m_w // 2`` is produced. Evaluated as a
    separable DFT (``tensordot``), which also handles kernels larger than the
    grid; chunking keeps memory at ``O(_CHUNK_ENTRIES)``.
    """
    kh, kw, cin, cout = k.shape
    mh, mw = grid
    eh = np.exp(-2j * np.pi * np.outer(np.arange(mh), np.arange(kh)) / mh)
    ew = np.exp(-2j * np.pi * np.outer(np.arange(mw // 2 + 1), np.arange(kw)) / mw)
    rows = max(1, _CHUNK_ENTRIES // (ew.shape[0] * cin * cout))
    for start in range(0, mh, rows):
        part = np.tensordot(eh[start : start + rows], k, axes=(1, 0))  # p,b,i,o
        part = np.tensordot(ew, part, axes=(1, 1))  # q,p,i,o
        yield part.reshape(-1, cin, cout)


def _batched_sigma_max(mats: np.ndarray) -> np.ndarray:
    """Largest singular value of each matrix in a ``(n, r, c)`` stack."""
    if mats.shape[1] < mats.shape[2]:
        gram = mats @ np.conj(np.swapaxes(mats, 1, 2))
    else:
        gram = np.conj(np.swapaxes(mats, 1, 2)) @ mats
    lam = np.linalg.eigvalsh(gram)[:, -1]
    return np.sqrt(np.maximum(lam, 0.0))


def toeplitz_bound(
    kernel: Any,
    n_samples: int | Sequence[int] | None = None,
    method: str = "araujo",
    correction: bool = True,
    return_info: bool = False,
) -> float | tuple[float, dict[str, Any]]:
    """Upper bound on ``||conv||_2`` from the Toeplitz generating function.

    Source: A. Araujo, B. Negrevergne, Y. Chevaleyre, J. Atif, "On Lipschitz
    Regularization of Convolutional Layers using Toeplitz Matrix Theory",
    AAAI 2021 (arXiv:2006.08391).

    A (zero-padded, stride-1) multi-channel convolution is a ``c_out x c_in``
    block matrix of doubly-block Toeplitz matrices ``T(f_oc)``, where the
    generating function (symbol) of block ``(o, c)`` is the bivariate
    trigonometric polynomial::

        f_oc(w1, w2) = sum_{a, b} K[a, b, c, o] exp(i (a w1 + b w2)),
        F(w) = [f_oc(w)]  (c_out x c_in),   (w1, w2) in [0, 2 pi)^2.

    Two bounds are available:

    ``method="araujo"`` (default, the bound of the paper, Theorem on
    multi-channel convolutions, as computed by their "LipGrid" algorithm)::

        ||conv||_2 <= sqrt( sum_o sup_w sum_c |f_oc(w)|^2 )

    where the outer sum runs over the smaller of ``c_out``/``c_in`` (the paper
    transposes the kernel so that it does; both orientations are valid).
    It follows from ``||[T_1 ... T_n]||^2 <= sup_w sum_c |f_c(w)|^2`` for a block
    row and ``||M||^2 <= sum_o ||row_o||^2``.

    ``method="symbol"``: the tighter ``sup_w sigma_max(F(w))``, which is exactly
    the norm of the convolution acting on ``l2(Z^2)`` (block Toeplitz operator /
    Fourier multiplier).  It is always ``<=`` the "araujo" value.

    Why these are upper bounds for Keras layers: the zero-padded convolution of a
    finite ``H x W`` input ("same" or "valid", any asymmetric padding) is a
    restriction of the infinite convolution to finitely supported inputs followed
    by the selection of some output pixels (a compression ``P A Q``), and a
    stride only selects fewer output pixels; compressions cannot increase the
    operator norm. Hence both values bound every input size, padding and stride.

    Sampling the torus. The supremum is evaluated on the uniform grid
    ``w = 2 pi (p / m_h, q / m_w)`` (via an FFT), which alone can *underestimate*
    it (the paper's code uses 50 samples per axis and no correction).  With
    ``correction=True`` the grid maximum is multiplied by
    ``1 / sqrt(1 - beta^2 / 2)``, ``beta = pi ((kh - 1) / m_h + (kw - 1) / m_w)``,
    which makes the result a *provable* upper bound of the supremum:
    every quantity maximised, ``g(w) = |u^H F(w) v|^2`` (for the maximising unit
    ``u, v``) or ``sum_c |f_oc(w)|^2``, is a non-negative real trigonometric
    polynomial with frequencies ``|n_1| <= kh - 1``, ``|n_2| <= kw - 1``.  Let
    ``w*`` maximise it (``g(w*) = M``) and ``w_g`` be the nearest grid point,
    ``|d_1| <= pi / m_h``, ``|d_2| <= pi / m_w``.  Along the segment,
    ``phi(t) = g(w* + t d)`` is of exponential type
    ``tau = (kh - 1)|d_1| + (kw - 1)|d_2| <= beta`` and bounded by ``M`` on the
    real line, so Bernstein's inequality gives ``|phi''| <= tau^2 M``; since
    ``phi'(0) = 0`` (interior maximum), Taylor's theorem yields
    ``g(w_g) >= M (1 - beta^2 / 2)``.  (This is the same second-order idea as
    the sampling results of Pfister & Bresler used in the paper.) The default
    grid, ``max(64, 32 (k - 1))`` samples per axis (1 for a 1-tap axis), keeps
    the factor at about ``1.0098`` (3x3 kernels: 64 samples; 128 would give
    ``1.0024``); 1x1 kernels need no correction. ``correction=False,
    n_samples=50`` mimics the paper's LipGrid setting (their code samples
    ``linspace(0, 2 pi, 50)``, endpoint included).  With ``correction=False`` and
    ``m >= H + kh - 1`` (per axis) the "symbol" grid maximum is still a valid
    bound for inputs of size ``H x W`` (it is the norm of a circular convolution
    in which the zero-padded one embeds; see :func:`gram_bound`).

    Args:
        kernel: ``(kh, kw, c_in, c_out)`` kernel.
        n_samples: grid points per axis (int or ``(m_h, m_w)``); default
            ``max(64, 32 (k - 1))`` per axis, 1 for a 1-tap axis.
        method: ``"araujo"`` or ``"symbol"``.
        correction: multiply by the provable grid-sampling correction.
        return_info: also return a dict with ``grid_max``, ``correction``,
            ``grid``, ``method``, ``seconds``.

    Returns:
        The bound (float), or ``(bound, info)`` if ``return_info``.

    Example:
        >>> k = np.zeros((3, 3, 1, 1)); k[1, 1, 0, 0] = 2.0  # 2 * identity
        >>> round(toeplitz_bound(k, correction=False), 6)
        2.0
    """
    t0 = time.perf_counter()
    k = _as_kernel(kernel)
    kh, kw, cin, cout = k.shape
    if n_samples is None:
        grid = (_default_samples(kh), _default_samples(kw))
    else:
        grid = _pair(n_samples, "n_samples")
    if min(grid) < 1:
        raise ValueError("n_samples must be positive")
    fac = _grid_correction((kh, kw), grid) if correction else 1.0
    if method == "araujo":
        # rows indexed by the smaller channel dimension, summed over the other
        axis = 1 if cout <= cin else 2
        row_max = np.zeros(min(cin, cout))
        for chunk in _symbol_chunks(k, grid):
            power = (chunk.real**2 + chunk.imag**2).sum(axis=axis)
            row_max = np.maximum(row_max, power.max(axis=0))
        grid_max = math.sqrt(float(row_max.sum()))
    elif method == "symbol":
        grid_max = max(
            float(_batched_sigma_max(chunk).max()) for chunk in _symbol_chunks(k, grid)
        )
    else:
        raise ValueError(f"method must be 'araujo' or 'symbol', got {method!r}")
    bound = grid_max * fac
    if not return_info:
        return bound
    info = {"grid_max": grid_max, "correction": fac, "grid": grid, "method": method,
            "seconds": time.perf_counter() - t0}
    return bound, info


# --------------------------------------------------------------------------- Gram
def _gram_log_bound(mats: np.ndarray, iterations: int) -> np.ndarray:
    """``log ||G_t||_F^(1 / 2^t)`` for each matrix of a ``(n, r, c)`` stack.

    Gram iteration with Frobenius rescaling in log space (see
    :func:`gram_bound`); ``-inf`` for zero matrices.
    """
    g = mats
    if g.shape[1] < g.shape[2]:  # G^H G is (cols x cols): use the smaller side
        g = np.conj(np.swapaxes(g, 1, 2))
    log_c = np.zeros(g.shape[0])
    nonzero = np.ones(g.shape[0], dtype=bool)
    for _ in range(iterations):
        fro = np.linalg.norm(g, axis=(1, 2))
        nonzero &= fro > 0
        fro = np.where(fro > 0, fro, 1.0)
        g = g / fro[:, None, None]
        log_c = 2.0 * (log_c + np.log(fro))
        g = np.conj(np.swapaxes(g, 1, 2)) @ g
    fro = np.linalg.norm(g, axis=(1, 2))
    nonzero &= fro > 0
    log_bound = (log_c + np.log(np.where(fro > 0, fro, 1.0))) / 2.0**iterations
    return np.where(nonzero, log_bound, -np.inf)


def gram_bound(
    kernel: Any,
    input_shape: Sequence[int],
    iterations: int = 8,
    fft_size: int | Sequence[int] | None = None,
    return_info: bool = False,
) -> float | tuple[float, dict[str, Any]]:
    """Gram-iteration upper bound on ``||conv||_2`` for inputs of size ``H x W``.

    Source: B. Delattre, Q. Barthelemy, A. Araujo, A. Allauzen, "Efficient Bound
    of Lipschitz Constant for Convolutional Layers by Gram Iteration", ICML 2023
    (arXiv:2305.16173).

    1. Circulant embedding. With ``N_h >= H + kh - 1`` and ``N_w >= W + kw - 1``
       (the default ``fft_size``), the zero-padded convolution of an ``H x W``
       input ("same"/"valid", any stride) is a compression of the *circular*
       convolution on ``N_h x N_w`` images: the input is zero-extended, the
       wrap-around only reaches zeros, and the kept outputs are a subset of the
       circular outputs. So ``||conv|| <= ||circ||``.
    2. The 2-D DFT block-diagonalises the circular convolution:
       ``||circ|| = max_w sigma_max(F(w))`` over the ``N_h x N_w`` frequencies
       ``F(w) = fft2(K zero-padded to N_h x N_w)[w]`` (``c_in x c_out``). For a
       real kernel ``F(-w) = conj(F(w))`` has the same singular values, so half
       of the frequencies suffice.
    3. Gram iteration on each ``G_0 = F(w)``: ``G_{t+1} = G_t^H G_t``. Since
       ``sigma_max(G_t) = sigma_max(G_0)^(2^t) <= ||G_t||_F``,
       ``sigma_max(G_0) <= ||G_t||_F^(1 / 2^t)``, and because
       ``||G^H G||_F <= ||G||_F^2`` this bound is non-increasing in ``t``,
       converging to ``sigma_max(G_0)`` (as ``rank^(1/2^(t+1))`` at worst). To
       avoid overflow each iterate is divided by its Frobenius norm and the
       logarithm of the scale is carried along: with ``G_t = c_t B_t``,
       ``log c_{t+1} = 2 (log c_t + log ||B_t||_F)``, ``B_{t+1} =
       B'^H B'`` with ``B' = B_t / ||B_t||_F``, and the bound is
       ``exp((log c_t + log ||B_t||_F) / 2^t)``.
    4. Bound = max over frequencies (the paper's per-frequency variant; it is
       never larger than the variant using the Frobenius norm of the whole
       block-diagonal matrix).

    Strided convolutions: the stride-1 bound is also a bound for any stride
    (subsampling the output is a compression).

    Args:
        kernel: ``(kh, kw, c_in, c_out)`` kernel.
        input_shape: ``(H, W)``, ``(H, W, C)`` or ``(N, H, W, C)``.
        iterations: number of Gram iterations ``t`` (0 gives the Frobenius norm
            of the per-frequency matrices).
        fft_size: override ``(N_h, N_w)``; values below ``H + kh - 1`` give the
            circular-convolution norm at that size, which is then *not*
            guaranteed to bound the zero-padded one.
        return_info: also return a dict with ``fft_size``, ``iterations``,
            ``seconds``.

    Returns:
        The bound (float), or ``(bound, info)`` if ``return_info``.

    Example:
        >>> k = np.random.default_rng(0).normal(size=(3, 3, 4, 4))
        >>> b6, b10 = gram_bound(k, (8, 8), 6), gram_bound(k, (8, 8), 10)
        >>> bool(b10 <= b6 + 1e-12)
        True
    """
    t0 = time.perf_counter()
    k = _as_kernel(kernel)
    kh, kw, cin, cout = k.shape
    h, w = _spatial(input_shape)
    nh, nw = (h + kh - 1, w + kw - 1) if fft_size is None else _pair(fft_size, "fft_size")
    if nh < kh or nw < kw:
        raise ValueError(f"fft_size {(nh, nw)} smaller than the kernel {(kh, kw)}")
    iterations = int(iterations)
    log_max = -np.inf
    for chunk in _symbol_chunks(k, (nh, nw)):
        log_max = max(log_max, float(_gram_log_bound(chunk, iterations).max()))
    bound = float(np.exp(log_max))
    if not return_info:
        return bound
    info = {"fft_size": (nh, nw), "iterations": iterations, "seconds": time.perf_counter() - t0}
    return bound, info


# --------------------------------------------------------------------------- heuristic
def reshaped_kernel_norm(kernel: Any) -> float:
    """``||W||_2`` with ``W`` the kernel reshaped to ``c_out x (kh * kw * c_in)``.

    This is the matrix that spectral normalisation (Miyato et al., ICLR 2018)
    normalises for convolutions. It is a heuristic, NOT an upper bound of the
    convolution's norm. Relations (stride 1, input containing a full
    ``kh x kw`` window, e.g. "valid" or "same" with ``H >= kh``)::

        ||W||_2 <= ||conv||_2 <= sqrt(kh * kw) * ||W||_2

    (lower: place the top right-singular vector of ``W`` as one input patch;
    upper: each input pixel appears in at most ``kh * kw`` patches; Tsuzuku et
    al., NeurIPS 2018).

    Example:
        >>> k = np.zeros((1, 1, 2, 2)); k[0, 0] = np.diag([3.0, 1.0])
        >>> reshaped_kernel_norm(k)
        3.0
    """
    k = _as_kernel(kernel)
    cout = k.shape[3]
    w = np.moveaxis(k, 3, 0).reshape(cout, -1)
    return float(np.linalg.norm(w, ord=2))

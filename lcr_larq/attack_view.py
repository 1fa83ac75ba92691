"""The network an attack differentiates: a deployed BNN's forward pass, bit for
bit, with the straight-through gradient through every activation binarizer.

A BNN's activation binarizers have a zero gradient almost everywhere, so a
white-box attack needs a surrogate gradient. The standard one in the attack
literature on BNNs is the straight-through estimator (STE), which
:func:`straight_through` installs while a block runs: the gradient through
every activation binarizer becomes ``1{|x| ≤ 1}`` (Larq's
``SteSign(clip_value=1)``), whatever estimator the network was trained with
(IR-Net's EDE, ApproxSign, ReActNet's RSign, …). Weight quantizers are
constants with respect to the input and stay as they are; multi-bit
activation quantizers keep their own gradient.

:class:`AttackTarget` compiles what the attacks of
:mod:`lcr_larq.evaluation.attacks` and the empirical Lipschitz estimate of
:mod:`lcr_larq.diagnostics.empirical` call on pixel images (checked and
batched by :func:`checked_pixels` and :func:`batch_slices`): the model's
labels, and through the STE view the gradient of the cross entropy's ascent
direction (:func:`cross_entropy_ascent`) and of the logit margin
(:func:`logit_margins`).

Example (a linear two-class model: the gradient of the margin is ``w_0 − w_1``):
    >>> import numpy as np, tensorflow as tf
    >>> model = tf.keras.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(
    ...     2, use_bias=False, kernel_initializer=tf.keras.initializers.Constant(
    ...     [[1.0, -2.0], [3.0, 1.0]]))])
    >>> margins, by_pixel, _ = AttackTarget(model, lambda x: x).margin_gradients(
    ...     np.array([[5.0, 5.0]]), [0])
    >>> margins.tolist(), by_pixel.tolist()
    ([25.0], [[3.0, 2.0]])
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import larq as lq
import numpy as np
import tensorflow as tf

from lcr_larq.errors import ConfigError, RunError, UserError
from lcr_larq.layers import RSign
from lcr_larq.quantizers import quantizers_of

__all__ = [
    "PIXEL_MAX",
    "STE_CLIP",
    "AttackTarget",
    "batch_slices",
    "checked_batch_size",
    "checked_pixels",
    "cross_entropy_ascent",
    "logit_margins",
    "straight_through",
]

#: Pixel images are in [0, PIXEL_MAX].
PIXEL_MAX = 255.0
#: Larq's SteSign(clip_value=1): the straight-through gradient is 1 where |x| ≤ this.
STE_CLIP = 1.0
# Attributes of a Larq layer that may hold an activation binarizer.
_ACTIVATION_SLOTS = ("input_quantizer", "activation")
# Attributes that hold weight quantizers (constants for the input gradient).
_WEIGHT_SLOTS = ("kernel_quantizer", "depthwise_quantizer", "pointwise_quantizer")
# Larq's 1-bit quantizer functions, for slots given a function (these carry no `precision`).
_LARQ_SIGN_FUNCTIONS = (
    lq.quantizers.ste_sign,
    lq.quantizers.approx_sign,
    lq.quantizers.swish_sign,
    lq.quantizers.ste_heaviside,
)


_MISSING = object()


@tf.custom_gradient
def _straight_through_sign(binary: tf.Tensor, before_sign: tf.Tensor):
    """``binary`` unchanged; the gradient goes to ``before_sign``, masked to |x| ≤ 1."""

    def grad(upstream):
        inside = tf.abs(before_sign) <= STE_CLIP
        return None, tf.where(inside, upstream, tf.zeros_like(upstream))

    return tf.identity(binary), grad


def _is_binarizer(quantizer) -> bool:
    if quantizer is None or isinstance(quantizer, lq.quantizers.NoOp):
        return False
    return getattr(quantizer, "precision", None) == 1 or quantizer in _LARQ_SIGN_FUNCTIONS


def _ste_quantizer(quantizer) -> Callable:
    @tf.autograph.experimental.do_not_convert
    def quantize(x):
        return _straight_through_sign(quantizer(x), x)

    return quantize


def _ste_rsign_call(layer: RSign) -> Callable:
    original = layer.call

    @tf.autograph.experimental.do_not_convert
    def call(inputs, full_precision: bool = False):
        if full_precision:
            return original(inputs, full_precision=True)
        return _straight_through_sign(original(inputs), inputs - layer.threshold)

    return call


def _binarizer_swaps(model: tf.keras.Model) -> list[tuple[object, str, object]]:
    """``(owner, attribute, replacement)`` for every activation binarizer of
    ``model``; a :class:`RunError` for a binarizer found nowhere it can be routed."""
    swaps, routed, weights = [], set(), set()
    for module in (model, *model.submodules):
        for slot in _WEIGHT_SLOTS:
            weights.add(id(getattr(module, slot, None)))
        if isinstance(module, RSign) and module.binarize:
            swaps.append((module, "call", _ste_rsign_call(module)))
            routed.add(id(module))
            continue
        if not isinstance(module, tf.keras.layers.Layer) or isinstance(module, tf.keras.Model):
            continue
        for slot in _ACTIVATION_SLOTS:
            quantizer = getattr(module, slot, None)
            if _is_binarizer(quantizer):
                swaps.append((module, slot, _ste_quantizer(quantizer)))
                routed.add(id(quantizer))
    for quantizer in quantizers_of(model):
        if _is_binarizer(quantizer) and id(quantizer) not in routed | weights:
            raise RunError(
                f"binarizer {quantizer.name!r} of {model.name!r} is neither a layer's input "
                "quantizer nor an RSign: the attack view cannot pass a gradient through it"
            )
    return swaps


@contextlib.contextmanager
def straight_through(model: tf.keras.Model) -> Iterator[tf.keras.Model]:
    """``model`` whose activation binarizers pass the straight-through gradient
    ``1{|x| ≤ 1}`` while the block runs; their forward output is unchanged.

    The only place that changes how a network differentiates: a Larq layer's
    ``input_quantizer`` (or ``activation``) of precision 1 is replaced by the
    same quantizer under a custom gradient, and an :class:`~lcr_larq.layers.RSign`'s
    ``call`` likewise (its binarizer acts on ``x − α``). Inside a
    ``tf.function``, trace the model inside the block: the graph keeps the
    swapped binarizers. Not thread-safe (the layers are patched in place).

    Example:
        >>> layer = lq.layers.QuantDense(1, input_quantizer="ste_sign", use_bias=False,
        ...                              kernel_initializer="ones")
        >>> model = tf.keras.Sequential([tf.keras.Input((3,)), layer])
        >>> x = tf.constant([[-0.5, 2.0, 1.0]])
        >>> with tf.GradientTape() as tape, straight_through(model):
        ...     tape.watch(x)
        ...     y = model(x)
        >>> float(y[0, 0]), tape.gradient(y, x).numpy().tolist()
        (1.0, [[1.0, 0.0, 1.0]])
    """
    swaps = _binarizer_swaps(model)
    saved = [(owner, name, owner.__dict__.get(name, _MISSING)) for owner, name, _ in swaps]
    try:
        for owner, name, replacement in swaps:
            # object.__setattr__: Keras' Layer.__setattr__ would track the new
            # value as a sublayer (and reorder the layer's weights); this swap
            # only lasts while the block runs.
            object.__setattr__(owner, name, replacement)
        yield model
    finally:
        for owner, name, value in reversed(saved):
            if value is _MISSING:
                object.__delattr__(owner, name)
            else:
                object.__setattr__(owner, name, value)


class AttackTarget:
    """A model under attack and its input map, with compiled functions on pixels:
    predictions of the model itself, and the gradients of its STE view
    (:func:`straight_through`).

    Args:
        model: a Keras model returning logits.
        normalize: pixels in ``[0, 255]`` → the model's input (a dataset's
            ``normalize``); it must accept float32 pixels.

    Example:
        >>> model = tf.keras.Sequential([tf.keras.Input((1, 1, 2)), tf.keras.layers.Flatten()])
        >>> target = AttackTarget(model, lambda x: x / 255.0)
        >>> target.predict(np.array([[[[10, 200]]]], np.uint8)).tolist()
        [1]
    """

    def __init__(self, model: tf.keras.Model, normalize: Callable[[tf.Tensor], tf.Tensor]):
        _binarizer_swaps(model)  # a binarizer out of the view's reach fails here, not in a trace
        self.model = model
        self.normalize = normalize
        image = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
        label = tf.TensorSpec((None,), tf.int32)

        def compiled(function, *signature):
            # No Python control flow to convert; autograph would wrap the errors.
            return tf.function(function, input_signature=signature, autograph=False)

        self._predict = compiled(self._labels, image)
        self._view_logits = compiled(self._ste_logits, image)
        self._loss_gradient = compiled(self._ce_gradient, image, label)
        self._margin_gradients = compiled(self._margin_and_gradients, image, label)

    def _labels(self, pixels):
        logits = self.model(self.normalize(pixels), training=False)
        return tf.argmax(logits, axis=-1, output_type=tf.int32)

    def _ste_logits(self, pixels):
        with straight_through(self.model):
            return self.model(self.normalize(pixels), training=False)

    def _ce_gradient(self, pixels, labels):
        # Only the pixels: the weights' backward passes are neither needed nor built.
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(pixels)
            logits = self._ste_logits(pixels)
            # The sum: each image's gradient is its own loss's.
            loss = tf.reduce_sum(cross_entropy_ascent(logits, labels))
        return tape.gradient(loss, pixels), tf.argmax(logits, axis=-1, output_type=tf.int32)

    def _margin_and_gradients(self, pixels, labels):
        # Only the pixels: the weights' backward passes are neither needed nor built.
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(pixels)
            inputs = self.normalize(pixels)
            tape.watch(inputs)
            with straight_through(self.model):
                logits = self.model(inputs, training=False)
            margins = logit_margins(logits, labels)
        by_pixel, by_input = tape.gradient(margins, [pixels, inputs])
        return margins, by_pixel, by_input

    def predict(self, images: np.ndarray) -> np.ndarray:
        """The model's labels of one batch of pixel images."""
        return self._predict(_pixels(images)).numpy()

    def view_logits(self, images: np.ndarray) -> np.ndarray:
        """The STE view's logits of one batch (equal to the model's)."""
        return self._view_logits(_pixels(images)).numpy()

    def loss_gradient(self, images: np.ndarray, labels: np.ndarray):
        """``(∂ cross entropy / ∂ pixels, predicted labels)`` of one batch,
        through the STE, each image's gradient up to a positive factor
        (:func:`cross_entropy_ascent`)."""
        gradient, predicted = self._loss_gradient(_pixels(images), _labels(labels))
        return gradient.numpy(), predicted.numpy()

    def margin_gradients(self, images: np.ndarray, labels: np.ndarray):
        """``(margins, ∂margin/∂pixels, ∂margin/∂model input)`` of one batch, through the STE."""
        values = self._margin_gradients(_pixels(images), _labels(labels))
        return tuple(v.numpy() for v in values)


def cross_entropy_ascent(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Per sample, a function whose gradient with respect to the logits is the
    cross entropy's divided by a positive number, ``p_k / max_{j≠y} p_j``:
    ``Σ_{j≠y} r_j·(f_j − f_y)`` with the constants ``r_j = exp(f_j − max_{j≠y} f_j)``.

    The cross entropy's own gradient ``softmax − onehot`` saturates in float32:
    for a logit margin above ~17 the true class's ``p_y − 1`` rounds to 0 (the
    direction loses its ``−∇f_y`` term), above ~100 every term underflows and
    the gradient is 0 — a numerical gradient masking. Sign steps only need the
    direction, which this keeps at any margin.

    Example:
        >>> logits, labels = tf.constant([[200.0, 0.0, -1.0]]), tf.constant([0])
        >>> with tf.GradientTape(persistent=True) as tape:
        ...     tape.watch(logits)
        ...     ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
        ...     ascent = cross_entropy_ascent(logits, labels)
        >>> tape.gradient(ce, logits).numpy().tolist()
        [[0.0, 0.0, 0.0]]
        >>> [round(g, 4) for g in tape.gradient(ascent, logits).numpy()[0].tolist()]
        [-1.3679, 1.0, 0.3679]
    """
    others = tf.one_hot(labels, tf.shape(logits)[-1]) == 0
    largest_other = tf.reduce_max(tf.where(others, logits, -np.inf), axis=-1, keepdims=True)
    weights = tf.stop_gradient(
        tf.where(others, tf.exp(logits - tf.stop_gradient(largest_other)), 0.0)
    )
    true = tf.gather(logits, labels, axis=-1, batch_dims=1)[:, None]
    return tf.reduce_sum(weights * (logits - true), axis=-1)


def logit_margins(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """The true class's logit minus the largest other logit, per sample
    (negative: misclassified).

    Example:
        >>> logits = tf.constant([[3.0, 1.0, 2.0], [0.0, 5.0, 1.0]])
        >>> logit_margins(logits, tf.constant([0, 2])).numpy().tolist()
        [1.0, -4.0]
    """
    true = tf.gather(logits, labels, axis=-1, batch_dims=1)
    others = tf.where(tf.one_hot(labels, tf.shape(logits)[-1]) > 0, -np.inf, logits)
    return true - tf.reduce_max(others, axis=-1)


def _pixels(images) -> tf.Tensor:
    return tf.convert_to_tensor(np.asarray(images, np.float32))


def _labels(labels) -> tf.Tensor:
    return tf.convert_to_tensor(np.asarray(labels, np.int32))


def checked_pixels(images, labels, max_samples: int | None = None):
    """Float32 pixel images (in ``[0, 255]``) and int32 labels, the first
    ``max_samples``; one-line errors for anything else.

    Example:
        >>> x, y = checked_pixels(np.zeros((3, 2, 2, 1), np.uint8), [[0], [1], [2]], 2)
        >>> x.dtype.name, y.tolist()
        ('float32', [0, 1])
    """
    images = np.asarray(images)
    labels = np.asarray(labels).astype(np.int32).ravel()
    if len(images) != len(labels):
        raise UserError(f"{len(images)} images but {len(labels)} labels: give one label per image")
    if max_samples is not None:
        if int(max_samples) < 1:
            raise ConfigError(f"--attack-samples must be at least 1, got {max_samples}")
        images, labels = images[: int(max_samples)], labels[: int(max_samples)]
    images = images.astype(np.float32)
    if images.size and not (images.min() >= 0.0 and images.max() <= PIXEL_MAX):
        raise UserError(
            f"pixels range over [{images.min():g}, {images.max():g}]: attacks take images in "
            "[0, 255] (the test split before normalization)"
        )
    return images, labels


def checked_batch_size(batch_size: int) -> int:
    """``batch_size`` as an int of at least 1."""
    if int(batch_size) < 1:
        raise ConfigError(f"the attack batch size must be at least 1, got {batch_size}")
    return int(batch_size)


def batch_slices(count: int, batch_size: int) -> Iterator[slice]:
    """The slices of ``count`` samples in batches of ``batch_size``, the last one shorter.

    Example:
        >>> [(s.start, s.stop) for s in batch_slices(5, 2)]
        [(0, 2), (2, 4), (4, 5)]
    """
    for start in range(0, count, batch_size):
        yield slice(start, min(start + batch_size, count))

"""Clean accuracy: a model's predictions on uint8 test images, and the linear-probe protocol.

* :func:`predictor` — ``predict(uint8 images) -> labels`` of a model in
  inference mode, batched; :func:`accuracy` and :func:`corruption_accuracies`
  on it;
* :func:`streamed_accuracy` — the accuracy on a stream of model inputs (a
  test split that does not fit in memory, e.g. ImageNet's);
* :func:`linear_probe` — the paper's ImageNet-C protocol (Shang et al., Sec.
  4.4): the backbone frozen, the classifier head fine-tuned on the clean
  training split.

Example:
    >>> model = tf.keras.Sequential([tf.keras.layers.Flatten(input_shape=(2, 1, 1))])
    >>> predict = predictor(model, lambda x: tf.cast(x, tf.float32))
    >>> accuracy(predict, np.array([[[[3]], [[1]]], [[[0]], [[5]]]], np.uint8), [0, 0])
    0.5
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from lcr_larq.errors import RunError
from lcr_larq.losses import SparseCrossEntropy
from lcr_larq.optimizers import SGD

__all__ = [
    "accuracy",
    "corruption_accuracies",
    "head_layer",
    "linear_probe",
    "predictor",
    "streamed_accuracy",
]


def predictor(model, normalize, batch_size: int = 256) -> Callable[[np.ndarray], np.ndarray]:
    """``predict(uint8 images) -> predicted labels`` of ``model`` in inference mode.

    Example:
        >>> import tensorflow as tf
        >>> model = tf.keras.Sequential([tf.keras.layers.Flatten(input_shape=(2, 2, 1))])
        >>> predict = predictor(model, lambda x: tf.cast(x, tf.float32))
        >>> predict(np.array([[[[0], [9]], [[1], [2]]]], np.uint8)).tolist()
        [1]
    """

    shape = (None, *model.input_shape[1:])

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.uint8)], reduce_retracing=True)
    def labels_of(x):
        return tf.argmax(model(normalize(x), training=False), axis=-1, output_type=tf.int32)

    def predict(images: np.ndarray) -> np.ndarray:
        out = [
            labels_of(tf.constant(images[i : i + batch_size])).numpy()
            for i in range(0, len(images), batch_size)
        ]
        return np.concatenate(out) if out else np.zeros((0,), np.int32)

    return predict


def accuracy(predict: Callable[[np.ndarray], np.ndarray], images, labels) -> float:
    """Top-1 accuracy (fraction) of ``predict`` on uint8 ``images``."""
    return float(np.mean(predict(images) == np.asarray(labels)))


def corruption_accuracies(
    predict: Callable[[np.ndarray], np.ndarray],
    sets: dict[tuple[str, int], np.ndarray],
    labels: np.ndarray,
) -> dict[str, dict[str, float]]:
    """``{corruption: {severity: accuracy}}`` of ``predict`` on corrupted
    copies of one set of images (``{(corruption, severity): images}``)."""
    out: dict[str, dict[str, float]] = {}
    for (corruption, severity), images in sets.items():
        out.setdefault(corruption, {})[str(severity)] = accuracy(predict, images, labels)
    return out


def streamed_accuracy(model, batches, max_images: int | None = None) -> tuple[float, int]:
    """``(accuracy, count)`` of ``model`` on a stream of (model input, label)
    batches, e.g. a normalized ``dataset.test``, stopping after ``max_images``."""
    correct = count = 0
    for x, y in batches:
        if max_images is not None:
            x, y = x[: max_images - count], y[: max_images - count]
        logits = model(x, training=False)
        correct += int(np.sum(np.argmax(logits, axis=-1) == np.asarray(y)))
        count += len(y)
        if max_images is not None and count >= max_images:
            break
    if not count:
        raise RunError("the test split holds no images")
    return correct / count, count



def head_layer(model):
    """The classifier head: the last layer of ``model`` with trainable weights."""
    for layer in reversed(model.layers):
        if layer.trainable_weights:
            return layer
    raise RunError(f"model {model.name!r} has no trainable layer to fine-tune")


def linear_probe(model, dataset, epochs: int = 5, lr: float = 0.01, seed: int = 0) -> dict:
    """Freezes everything but the head of ``model`` and fine-tunes the head on
    the clean training split (SGD with momentum 0.9, cross entropy). In place.

    Returns the probe's settings and its last training accuracy.
    """

    tf.keras.utils.set_random_seed(seed)
    head = head_layer(model)
    for layer in model.layers:
        layer.trainable = layer is head
    model.compile(optimizer=SGD(lr, momentum=0.9), loss=SparseCrossEntropy(), metrics=["accuracy"])
    history = model.fit(dataset.train, epochs=epochs, verbose=0)
    return {
        "head": head.name,
        "epochs": epochs,
        "lr": lr,
        "fine_tuned_on": f"{dataset.name} training split (clean)",
        "train_accuracy": float(history.history["accuracy"][-1]),
    }

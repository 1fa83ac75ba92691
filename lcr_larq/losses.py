"""The classification loss of training: cross entropy on logits, with label smoothing.

Example:
    >>> import tensorflow as tf
    >>> loss = SparseCrossEntropy(label_smoothing=0.1)
    >>> logits = tf.constant([[2.0, 0.0, 0.0]])
    >>> # −Σ q·log softmax(logits) with the target q = (0.933, 0.033, 0.033)
    >>> round(float(loss(tf.constant([0]), logits)), 4)
    0.3729
"""

from __future__ import annotations

import tensorflow as tf

__all__ = [
    "SparseCrossEntropy",
]


@tf.keras.utils.register_keras_serializable(package="lcr_larq")
class SparseCrossEntropy(tf.keras.losses.Loss):
    """Cross entropy of integer labels against logits, with PyTorch's label
    smoothing (``CrossEntropyLoss(label_smoothing=ε)``): the target is
    ``(1 − ε)·one_hot + ε/K`` over K classes. ``ε = 0`` is Keras'
    ``SparseCategoricalCrossentropy(from_logits=True)``.
    """

    def __init__(self, label_smoothing: float = 0.0, name: str = "cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        labels = tf.cast(tf.reshape(y_true, [-1]), tf.int32)
        if not self.label_smoothing:
            return tf.keras.losses.sparse_categorical_crossentropy(labels, y_pred, from_logits=True)
        one_hot = tf.one_hot(labels, tf.shape(y_pred)[-1], dtype=y_pred.dtype)
        return tf.keras.losses.categorical_crossentropy(
            one_hot, y_pred, from_logits=True, label_smoothing=self.label_smoothing
        )

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}

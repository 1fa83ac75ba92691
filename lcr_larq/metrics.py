"""Keras metrics of lcr-larq.

* :class:`BatchMeans` — several scalars averaged over the batches of an epoch
  (what ``add_metric`` does for one), kept as one vector: a fixed number of
  ops per step however many scalars there are. The LCR layer reports ``L_lip``
  and every block's σ ratio through one.

Example:
    >>> import tensorflow as tf
    >>> means = BatchMeans(["a", "b"])
    >>> means.update_state(tf.constant([1.0, 10.0]))
    >>> means.update_state(tf.constant([3.0, 20.0]))
    >>> {k: float(v) for k, v in means.result().items()}
    {'a': 2.0, 'b': 15.0}
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

__all__ = [
    "BatchMeans",
]


@tf.keras.utils.register_keras_serializable(package="lcr_larq")
class BatchMeans(tf.keras.metrics.Metric):
    """Per-name means of the scalar vectors passed to :meth:`update_state`.

    ``result()`` is a dict, one entry per name, which Keras spreads into the
    logs (progress bar, History, callbacks) as if each were a metric of its
    own. Under ``tf.distribute`` the sums and the count add up over replicas,
    so each entry is the mean over replicas and batches, like a ``Mean``.
    """

    def __init__(self, names: Sequence[str], name: str = "batch_means", **kwargs):
        super().__init__(name=name, **kwargs)
        self.names = list(names)
        self.total = self.add_weight(
            "total", shape=(len(self.names),), initializer="zeros"
        )
        self.count = self.add_weight("count", initializer="zeros")

    def update_state(self, values):
        """Adds one batch: ``values`` holds one scalar per name, in order."""
        values = tf.cast(tf.reshape(values, [len(self.names)]), self.dtype)
        self.total.assign_add(values)
        self.count.assign_add(tf.ones((), self.dtype))

    def result(self) -> dict[str, tf.Tensor]:
        means = tf.math.divide_no_nan(self.total, self.count)
        return dict(zip(self.names, tf.unstack(means, num=len(self.names))))

    def reset_state(self):
        self.total.assign(tf.zeros_like(self.total))
        self.count.assign(tf.zeros_like(self.count))

    def get_config(self):
        return {**super().get_config(), "names": self.names}

"""LCR as Keras layers.

* :class:`LipschitzRetention` — the LCR regularizer: given the input and
  output activations of every block on the binary path and on the
  full-precision reference path, it adds ``(λ/2)·L_lip`` with ``add_loss`` and
  reports ``L_lip`` and each block's ``σ_B/σ_F`` as metrics.
* :class:`SampleSlice`, :class:`SampleTap` and :class:`ScheduledSampleCount`
  — the samples LCR is estimated on, and on which steps (``every``).

:func:`lcr_larq.attach_lcr` puts them into a model; the math is in
:mod:`lcr_larq.spectral`.

Example:
    >>> lcr = LipschitzRetention(lcr_lambda=4.0, lcr_beta=2.0)
    >>> x, y = tf.random.normal((8, 4, 4, 3)), tf.random.normal((8, 4, 4, 5))
    >>> _ = lcr([tf.zeros((8, 10)), x, y, x, y])  # identical paths: L_lip = 0
    >>> float(lcr.losses[0])
    0.0
"""

from __future__ import annotations

import tensorflow as tf

from lcr_larq import spectral
from lcr_larq.compat import compiling_with_xla, inferring_output_signature
from lcr_larq.metrics import BatchMeans

__all__ = [
    "BLOCK_METRICS",
    "XLA_NEEDS_COUNT",
    "LipschitzRetention",
    "SampleSlice",
    "SampleTap",
    "ScheduledSampleCount",
    "global_batch_size",
    "validate_every",
    "validate_lcr_settings",
    "validate_samples",
]

register = tf.keras.utils.register_keras_serializable(package="lcr_larq")


def _with_count(inputs, samples: int) -> tuple[tf.Tensor, tf.Tensor | int]:
    """``(x, count)`` of a sample layer's inputs: ``x`` alone (its first
    ``samples`` are taken) or ``[x, count]`` (a :class:`ScheduledSampleCount`).

    Compiled by XLA, which needs static shapes, the count of ``[x, count]``
    is ``samples`` (the batch for 0) on every step: the steps without LCR are
    then skipped by the count that :class:`LipschitzRetention` is given, not
    by empty features, and the reference path runs on those samples on every
    step.
    """
    if isinstance(inputs, (list, tuple)):
        x, count = inputs
        if compiling_with_xla():
            return x, samples or tf.shape(x)[0]
        return x, count
    return inputs, samples


@register
class ScheduledSampleCount(tf.keras.layers.Layer):
    """How many samples LCR sees at this step: ``samples`` (the whole batch
    for 0) on every ``every``-th training step, the first one included, and 0
    on the others; ``samples`` outside training.

    Its output feeds the :class:`SampleSlice` of the reference path, the
    :class:`SampleTap` of every block feature and the
    :class:`LipschitzRetention` layer: on the other steps LCR gets empty
    block features and adds no loss, and the reference path runs on one
    sample (see :class:`SampleSlice`); compiled by XLA, which needs static
    shapes, both keep their samples on every step. The
    step count is a weight of the layer, so a resumed run goes on with the
    schedule where it stopped; every replica counts alike. It counts the
    model's calls in training mode, which ``model.fit`` makes once per step.

    Example:
        >>> count = ScheduledSampleCount(samples=2, every=3)
        >>> x = tf.zeros((5, 1))
        >>> [int(count(x, training=True)) for _ in range(4)], int(count(x))
        ([2, 0, 0, 2], 2)
    """

    def __init__(self, samples: int, every: int, **kwargs):
        super().__init__(**kwargs)
        validate_every(every)
        validate_samples(samples)
        self.samples = int(samples)
        self.every = int(every)

    def build(self, input_shape: tf.TensorShape) -> None:
        # Read and written by each replica on its own (no synchronisation per
        # step): every replica counts the same steps.
        self.step = self.add_weight(
            name="step", shape=(), dtype=tf.int64, initializer="zeros", trainable=False,
            synchronization=tf.VariableSynchronization.ON_READ,
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )
        super().build(input_shape)

    def call(self, inputs: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        batch = tf.shape(inputs)[0]
        count = batch if not self.samples else tf.minimum(batch, self.samples)
        if not training:
            return count
        active = tf.equal(self.step % self.every, 0)
        self.step.assign_add(1)
        return tf.where(active, count, 0)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape([])

    def get_config(self):
        return {**super().get_config(), "samples": self.samples, "every": self.every}


@register
class SampleSlice(tf.keras.layers.Layer):
    """The first ``samples`` samples of a batch (all of a smaller batch);
    called on ``[x, count]``, the first ``count`` but at least one."""

    def __init__(self, samples: int, **kwargs):
        super().__init__(**kwargs)
        self.samples = int(samples)

    def call(self, inputs):
        x, count = _with_count(inputs, self.samples)
        if isinstance(inputs, (list, tuple)) and not compiling_with_xla():
            # Never an empty batch into the reference path: oneDNN's Conv2D
            # (x86 TensorFlow 2.19, seen on AVX-512 CPUs) returns an empty
            # batch unchanged, and the next layer fails on the channel count.
            count = tf.maximum(count, 1)
        return x[:count]

    def compute_output_shape(self, input_shape):
        return input_shape[0] if isinstance(input_shape, (list, tuple)) else input_shape

    def get_config(self):
        return {**super().get_config(), "samples": self.samples}


@register
class SampleTap(tf.keras.layers.Layer):
    """``[x, x[:samples]]``: a block feature for the network and its first
    ``samples`` samples for LCR, with the two gradients summed in one op (see
    :func:`lcr_larq.spectral.sample_tap`; it keeps the training step's peak
    memory down); called on ``[x, count]``, the first ``count``.
    :func:`lcr_larq.attach_lcr` puts one on every block feature;
    :func:`lcr_larq.strip_lcr` takes them out again.
    """

    def __init__(self, samples: int, **kwargs):
        super().__init__(**kwargs)
        self.samples = int(samples)

    def call(self, inputs):
        x, count = _with_count(inputs, self.samples)
        return list(spectral.sample_tap(x, count))

    def compute_output_shape(self, input_shape):
        shape = input_shape[0] if isinstance(input_shape, (list, tuple)) else input_shape
        return [shape, shape]

    def get_config(self):
        return {**super().get_config(), "samples": self.samples}


BLOCK_METRICS = ("ratio", "sigma", "none")
XLA_NEEDS_COUNT = (
    "LCR layer {name!r} runs on every k-th step and finds those steps by empty features, "
    "which XLA cannot compile: attach LCR again with lcr_larq.attach_lcr (or train "
    "without jit_compile)"
)


@register
class LipschitzRetention(tf.keras.layers.Layer):
    """Lipschitz Continuity Retention (Shang et al., ECCV 2022) as a Keras layer.

    Called on ``[logits, x_B1, y_B1, …, x_BK, y_BK, x_F1, y_F1, …, x_FK, y_FK]``
    — the logits, then input and output activations of the K blocks on the
    binary path, then the same on the full-precision reference path — it
    returns the logits unchanged and adds ``(λ/2)·L_lip`` with ``add_loss``.
    No gradient flows into the reference path (σ_F is a target).

    Metrics (History): ``lcr_lip`` (L_lip), ``sigma_ratio_mean`` (the mean
    over blocks) and per block ``sigma_ratio_k`` (mean σ_B/σ_F); with
    ``block_metrics="sigma"`` also ``sigma_b_k`` and ``sigma_f_k``.

    The arguments are named as the settings of ``lcr-train`` (``--lcr-beta``
    is ``lcr_beta``), as those of :func:`lcr_larq.attach_lcr`. A saved model
    stores four of them under their earlier names (:attr:`CONFIG_NAMES`), the
    format of every ``model.keras`` written so far.

    Args:
        lcr_lambda: λ ≥ 0, the strength (paper Eq. 12).
        lcr_beta: β > 1, block weighting ``β^(k−K)`` (paper Eq. 11).
        lcr_form: ``"ratio"`` (paper, default) or ``"mse"`` (public code).
        power_iterations: power-iteration steps per σ.
        block_metrics: ``"ratio"``, ``"sigma"`` or ``"none"``.
        lcr_samples: estimate L_lip on the first ``lcr_samples`` samples of
            each batch: the binary features are cut to them, and the reference
            path is computed for those only (see :func:`lcr_larq.attach_lcr`);
            0 uses every sample.
        lcr_every: the loss is added on every ``lcr_every``-th training step
            only, with weight ``lcr_every·λ/2`` (the same weight per step on average);
            the other steps are those whose ``count`` (a call argument, the
            output of a :class:`ScheduledSampleCount`) is 0; called without
            it, those whose features come empty. Outside training it is
            added at every call with weight λ/2. The metrics are means over
            the steps with LCR (0 for an epoch without one).

    Example:
        >>> import tensorflow as tf
        >>> lcr = LipschitzRetention(lcr_lambda=4.0, lcr_beta=2.0)
        >>> x, y = tf.random.normal((8, 4, 4, 3)), tf.random.normal((8, 4, 4, 5))
        >>> logits = tf.zeros((8, 10))
        >>> out = lcr([logits, x, y, x, y])   # identical paths: L_lip = 0
        >>> float(lcr.losses[0])
        0.0
    """

    #: Setting name → the key a saved model's config stores it under (the
    #: ``model.keras`` files of every earlier version; kept, so they load and
    #: are loaded alike).
    CONFIG_NAMES = {"lcr_beta": "beta", "lcr_form": "form", "lcr_samples": "samples",
                    "lcr_every": "every"}

    def __init__(
        self,
        lcr_lambda: float = 4.0,
        lcr_beta: float = 2.0,
        lcr_form: str = "ratio",
        power_iterations: int = 5,
        block_metrics: str = "ratio",
        lcr_samples: int = 0,
        lcr_every: int = 1,
        **kwargs,
    ):
        # LCR's math (cross matrices, power iteration, σ, the loss) stays in
        # float32 under a mixed-precision policy: Keras casts the floating
        # inputs of a float32 layer, here the block features of both paths.
        super().__init__(**{**kwargs, "dtype": "float32"})
        validate_lcr_settings(lcr_lambda, lcr_beta, lcr_form, power_iterations, lcr_every)
        if block_metrics not in BLOCK_METRICS:
            raise ValueError(
                f"block_metrics must be one of {BLOCK_METRICS}, got {block_metrics!r}"
            )
        self.lcr_lambda = float(lcr_lambda)
        self.lcr_beta = float(lcr_beta)
        self.lcr_form = lcr_form
        self.power_iterations = int(power_iterations)
        self.block_metrics = block_metrics
        validate_samples(lcr_samples)
        self.lcr_samples = int(lcr_samples)
        self.lcr_every = int(lcr_every)

    @staticmethod
    def split_inputs(inputs):
        """``(logits, binary_pairs, reference_pairs)`` from the flat input list."""
        logits, *features = inputs
        if not features or len(features) % 4:
            raise ValueError(
                "LipschitzRetention takes [logits] + 2K binary + 2K reference "
                f"features, got {len(features)} features"
            )
        half = len(features) // 2
        pairs = lambda f: list(zip(f[0::2], f[1::2]))  # noqa: E731
        return logits, pairs(features[:half]), pairs(features[half:])

    def sigmas(self, inputs):
        """σ_B and σ_F of every block (lists of K tensors)."""
        _, binary, reference = self.split_inputs(inputs)
        if self.lcr_samples:
            # The reference path ran on the first samples only; cut the
            # binary features to match. A block's output is the next block's
            # input: each distinct tensor is cut (and its gradient padded) once.
            # attach_lcr's SampleTaps hand them over already cut (this is then
            # the identity) and sum the gradients once both have arrived.
            cut = {}
            for t in (t for pair in binary for t in pair):
                if t.ref() not in cut:
                    cut[t.ref()] = spectral.first_samples(t, self.lcr_samples)
            binary = [(cut[x.ref()], cut[y.ref()]) for x, y in binary]
        reference = [(tf.stop_gradient(x), tf.stop_gradient(y)) for x, y in reference]
        sigma = spectral.block_sigmas(binary + reference, self.power_iterations)
        return sigma[: len(binary)], sigma[len(binary) :]

    def call(self, inputs, training=None, count=None):
        """``count``: the output of the :class:`ScheduledSampleCount` that
        schedules the steps (0 on a step without LCR); without it, a step
        whose first feature is empty is one without LCR."""
        logits = inputs[0]
        # Made before a tf.cond can hold the update: no variable is made in a branch.
        means = self._batch_means(self._metric_names(len(self.split_inputs(inputs)[1])))
        if inferring_output_signature():
            # Building a model on this layer needs only the output's shape;
            # the loss made there would be dropped, and tracing it costs as
            # much as in a training step.
            return tf.identity(logits)
        weight = 0.5 * self.lcr_lambda
        if self.lcr_every == 1:
            lip = self._loss_and_metrics(inputs, means)
        else:
            if training:
                weight *= self.lcr_every
            lip = tf.cond(
                self._is_active(inputs, count),
                lambda: self._loss_and_metrics(inputs, means),
                lambda: 0.0,
            )
        if self.lcr_lambda > 0:
            self.add_loss(weight * lip)
        return tf.identity(logits)

    def _is_active(self, inputs, count) -> tf.Tensor:
        """Whether LCR runs at this step (``lcr_every`` > 1)."""
        if count is not None:
            return count > 0
        if compiling_with_xla():
            # The features have static shapes under XLA, never empty ones.
            raise ValueError(XLA_NEEDS_COUNT.format(name=self.name))
        return tf.shape(inputs[1])[0] > 0

    def _metric_names(self, num_blocks: int) -> list[str]:
        names = ["lcr_lip"]
        if self.block_metrics != "none":
            names.append("sigma_ratio_mean")
            for k in range(1, num_blocks + 1):
                names.append(f"sigma_ratio_{k}")
                if self.block_metrics == "sigma":
                    names += [f"sigma_b_{k}", f"sigma_f_{k}"]
        return names

    def _loss_and_metrics(self, inputs, means: BatchMeans) -> tf.Tensor:
        """L_lip of the inputs; its value and the σ ratios go to ``means``."""
        sigma_b, sigma_f = self.sigmas(inputs)
        lip = spectral.lipschitz_retention_loss(
            sigma_b, sigma_f, self.lcr_beta, self.lcr_form,
            batch_size=global_batch_size(inputs[0]),
        )
        metrics = {"lcr_lip": lip}
        if self.block_metrics != "none":
            ratios = [tf.reduce_mean(tf.math.divide_no_nan(s_b, s_f))
                      for s_b, s_f in zip(sigma_b, sigma_f)]
            metrics["sigma_ratio_mean"] = tf.add_n(ratios) / len(ratios)
            for k, (s_b, s_f) in enumerate(zip(sigma_b, sigma_f), start=1):
                metrics[f"sigma_ratio_{k}"] = ratios[k - 1]
                if self.block_metrics == "sigma":
                    metrics[f"sigma_b_{k}"] = tf.reduce_mean(s_b)
                    metrics[f"sigma_f_{k}"] = tf.reduce_mean(s_f)
        # Built under a strategy's scope, the model is traced in cross-replica
        # context, where there is nothing to count (the ops are never run).
        if not tf.distribute.in_cross_replica_context():
            means.update_state(tf.stack([metrics[name] for name in means.names]))
        return lip

    def _batch_means(self, names: list[str]) -> BatchMeans:
        """The layer's one metric (made on the first call), reporting each of
        ``names`` with one vector update per step rather than the update ops
        of one ``add_metric`` Mean per scalar."""
        if getattr(self, "_means", None) is None:
            means = BatchMeans(names, name=f"{self.name}_metrics")
            # Tracked as a metric (model.metrics, reset every epoch), not as a
            # sublayer: its state is not part of the model's weights.
            object.__setattr__(self, "_means", means)
            self._metrics.append(means)
        return self._means

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        settings = {"lcr_lambda": self.lcr_lambda, "lcr_beta": self.lcr_beta,
                    "lcr_form": self.lcr_form, "power_iterations": self.power_iterations,
                    "block_metrics": self.block_metrics, "lcr_samples": self.lcr_samples,
                    "lcr_every": self.lcr_every}
        return {**super().get_config(),
                **{self.CONFIG_NAMES.get(name, name): value for name, value in settings.items()}}

    @classmethod
    def from_config(cls, config):
        """The layer of a saved config (:attr:`CONFIG_NAMES`)."""
        stored = {key: name for name, key in cls.CONFIG_NAMES.items()}
        return cls(**{stored.get(key, key): value for key, value in config.items()})


def global_batch_size(per_replica: tf.Tensor) -> tf.Tensor:
    """The global batch size of a per-replica batch: under ``tf.distribute``
    each replica holds 1/N of it (Keras then scales each replica's loss by
    1/N and sums)."""
    replica = tf.distribute.get_replica_context()
    replicas = replica.num_replicas_in_sync if replica is not None else 1
    return tf.shape(per_replica)[0] * replicas


def validate_lcr_settings(
    lcr_lambda: float, beta: float, form: str, power_iterations: int, every: int = 1
) -> None:
    """Raises ``ValueError`` with a one-line fix for invalid LCR settings."""
    if lcr_lambda < 0:
        raise ValueError(f"λ must be >= 0 (0 trains the plain BNN), got {lcr_lambda}")
    if beta <= 1:
        raise ValueError(f"β must be > 1 (the paper weighs later blocks more), got {beta}")
    if form not in spectral.LOSS_FORMS:
        raise ValueError(f"the LCR form must be one of {spectral.LOSS_FORMS}, got {form!r}")
    if power_iterations < 1:
        raise ValueError(f"power iterations must be >= 1, got {power_iterations}")
    validate_every(every)


def validate_samples(samples: int) -> None:
    """Raises ``ValueError`` unless the samples L_lip is estimated on are >= 0."""
    if samples < 0:
        raise ValueError(f"samples must be >= 0 (0 uses every sample), got {samples}")


def validate_every(every: int) -> None:
    """Raises ``ValueError`` unless LCR's step interval is >= 1."""
    if every < 1:
        raise ValueError(f"LCR's step interval must be >= 1 (1: every step), got {every}")

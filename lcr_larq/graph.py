"""Attaching LCR to a functional Keras model.

* :func:`find_blocks` — the block boundaries of a model: the chain
  ``stem_out → block1_out → … → blockK_out`` of this project's models, or
  every residual ``Add`` (input: the tensor where the shortcut forks off), or
  every quantized layer of a plain network; or a chain of layer names.
* :func:`replay` — calls the graph of a model again from its inputs, with
  the same layers (shared variables), a node at a time.
* :func:`full_precision_path` — replays the graph from the model's inputs
  with every layer in its latent full-precision form, sharing its variables.
* :func:`batchnorm_inputs` — the activations every batch normalization sees,
  each normalizing with its batch's statistics.
* :func:`attach_lcr` — the training model: the BNN (with a
  :class:`~lcr_larq.layers.SampleTap` on each block feature) plus the
  reference path plus a :class:`~lcr_larq.layers.LipschitzRetention` layer
  on the logits.
* :func:`strip_lcr` — the plain BNN back from a training model.
* :func:`as_float32` — a model trained under a mixed-precision policy,
  computing in float32 (for converters and float64 references).
* :func:`make_full_precision_aware` — swaps Larq's quantized layers and Keras'
  batch normalization for this project's full-precision-aware subclasses
  (for models such as Larq-Zoo's that were built with the stock layers).

Example, a BNN of three residual blocks:

    >>> import tensorflow as tf
    >>> from lcr_larq.layers import BatchNormalization, HardTanh, QuantConv2D
    >>> x = inputs = tf.keras.Input((8, 8, 4))
    >>> for _ in range(3):
    ...     conv = QuantConv2D(4, 3, padding="same", input_quantizer="ste_sign",
    ...                        kernel_quantizer="ste_sign", use_bias=False)
    ...     x = HardTanh()(tf.keras.layers.Add()([x, BatchNormalization()(conv(x))]))
    >>> logits = tf.keras.layers.Dense(10)(tf.keras.layers.GlobalAveragePooling2D()(x))
    >>> bnn = tf.keras.Model(inputs, logits)
    >>> len(find_blocks(bnn))
    3
    >>> train_model = attach_lcr(bnn, lcr_lambda=4.0, lcr_beta=2.0)
    >>> strip_lcr(train_model).count_params() == bnn.count_params()
    True
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import larq as lq
import tensorflow as tf
from larq.layers_base import BaseLayer

from lcr_larq import layers as lcr_layers

__all__ = [
    "BLOCK_NAME",
    "DEFAULT_EVERY",
    "DEFAULT_SAMPLES",
    "REFERENCES",
    "STEM_NAME",
    "Block",
    "as_float32",
    "attach_lcr",
    "batchnorm_inputs",
    "check_jit_compile",
    "computes_in_float32",
    "find_blocks",
    "full_precision_path",
    "lcr_layer",
    "make_full_precision_aware",
    "replay",
    "strip_lcr",
]

STEM_NAME = "stem_out"
# Samples of each batch that L_lip is estimated on (0: all); see attach_lcr.
DEFAULT_SAMPLES = 32
# L_lip on every DEFAULT_EVERY-th training step, weighted ×DEFAULT_EVERY (1: every
# step, the paper's loss); its accuracy study is in the docs.
DEFAULT_EVERY = 2
#: Where σ_F comes from: the BNN's own latent weights, or a frozen teacher.
REFERENCES = ("latent", "teacher")
BLOCK_NAME = re.compile(r"^block(\d+)_out$")


@dataclass(frozen=True)
class Block:
    """One regularized block: its input and output activations."""

    name: str
    input: tf.Tensor
    output: tf.Tensor


def _producer(tensor):
    layer, node_index, _ = tensor._keras_history
    return layer, layer._inbound_nodes[node_index]


def _ancestors(tensor) -> list:
    """All tensors ``tensor`` depends on, itself included, nearest first."""
    seen, order, frontier = set(), [], [tensor]
    while frontier:
        nxt = []
        for t in frontier:
            if id(t) in seen:
                continue
            seen.add(id(t))
            order.append(t)
            _, node = _producer(t)
            nxt.extend(node.keras_inputs)
        frontier = nxt
    return order


def _fork(tensors) -> tf.Tensor:
    """Nearest tensor that every tensor of ``tensors`` depends on."""
    common = set.intersection(*({id(t) for t in _ancestors(t)} for t in tensors))
    for t in _ancestors(tensors[0]):
        if id(t) in common:
            return t
    raise ValueError("the inputs of a residual add share no ancestor")


def _layer_output(model: tf.keras.Model, name: str) -> tf.Tensor:
    try:
        return model.get_layer(name).output
    except ValueError:
        raise ValueError(
            f"model {model.name!r} has no layer {name!r}; give existing layer names"
        ) from None


def find_blocks(model: tf.keras.Model, boundaries: list[str] | None = None) -> list[Block]:
    """Block boundaries of a functional model, from input to output.

    Args:
        model: a functional Keras model.
        boundaries: optional chain of K+1 layer names; block k maps the output
            of ``boundaries[k-1]`` to the output of ``boundaries[k]``.

    Without ``boundaries``, in this order: the project's naming convention
    (``stem_out``, ``block1_out`` … ``blockK_out``); every residual add — an
    ``Add`` layer or ``x + y`` on Keras tensors — (input: the nearest tensor
    both of its inputs depend on, output: the sum); every quantized layer
    (plain networks).

    A model of your own needs no naming: its residual adds are found, or
    give ``boundaries``. It must be a graph of layers: a functional model,
    or a ``Sequential`` one that starts with ``tf.keras.Input``; a subclassed
    model, or a ``Sequential`` one never built on an input, is refused in one
    line. Example, Larq-Zoo's QuickNet (16 residual blocks):

    >>> import larq_zoo
    >>> quicknet = larq_zoo.sota.QuickNet(input_shape=(32, 32, 3), weights=None)
    >>> len(find_blocks(quicknet))
    16
    """
    if not getattr(model, "_is_graph_network", False):
        # tf-keras' mark of a model built from Keras tensors (Functional, and a
        # Sequential given an Input): only those have the graph LCR replays.
        raise ValueError(
            f"model {model.name!r} is not a graph of layers (a subclassed model, or a "
            "Sequential model without an Input): build it functionally, or start the "
            "Sequential with tf.keras.Input(shape)"
        )
    if boundaries is not None:
        if len(boundaries) < 2:
            raise ValueError("boundaries need at least two layer names (one block)")
        cuts = [_layer_output(model, name) for name in boundaries]
        return [
            Block(boundaries[k + 1], cuts[k], cuts[k + 1]) for k in range(len(cuts) - 1)
        ]
    names = {layer.name for layer in model.layers}
    numbered = sorted(
        (int(m.group(1)), m.group(0)) for m in map(BLOCK_NAME.match, names) if m
    )
    if STEM_NAME in names and numbered:
        return find_blocks(model, [STEM_NAME] + [name for _, name in numbered])
    adds = [layer for layer in model.layers if _is_add(layer)]
    if adds:
        blocks = []
        model_nodes = _model_nodes(model)
        for layer in adds:
            for node_index, node in enumerate(layer._inbound_nodes):
                if len(node.keras_inputs) > 1 and node in model_nodes:
                    name = layer.name if node_index == 0 else f"{layer.name}_{node_index}"
                    blocks.append(Block(name, _fork(node.keras_inputs), node.outputs))
        return blocks
    quantized = [layer for layer in model.layers if isinstance(layer, BaseLayer)]
    if quantized:
        return [Block(layer.name, layer.input, layer.output) for layer in quantized]
    raise ValueError(
        f"model {model.name!r} has no residual adds and no quantized layers: "
        "give the block boundaries as layer names"
    )


# ``x + y`` on Keras tensors (as in Larq-Zoo's QuickNet) is a TFOpLambda layer.
_ADD_OPS = ("__operators__.add", "math.add", "math.add_n")


def _is_add(layer) -> bool:
    """An ``Add`` layer, or a TFOpLambda adding Keras tensors."""
    if isinstance(layer, tf.keras.layers.Add):
        return True
    return type(layer).__name__ == "TFOpLambda" and layer.get_config().get("function") in _ADD_OPS


def _model_nodes(model: tf.keras.Model) -> list:
    return [node for nodes in model._nodes_by_depth.values() for node in nodes]


def _supports_full_precision(layer) -> bool:
    return "full_precision" in inspect.signature(layer.call).parameters


def _needs_conversion(layer) -> bool:
    stateful = isinstance(layer, (BaseLayer, tf.keras.layers.BatchNormalization))
    return stateful and not _supports_full_precision(layer)


def replay(
    model: tf.keras.Model,
    tensors: list,
    inputs: list | None = None,
    call_layer=None,
    rewire=None,
) -> list:
    """New Keras tensors for ``tensors`` of ``model``, the graph called again.

    Replays the part of the graph that ``tensors`` depend on, from the model's
    inputs (or from ``inputs`` in their place), with the same layer objects
    (weights are shared, never copied). ``call_layer(layer, args, kwargs)``
    computes a node's outputs (default: the layer's own call);
    ``rewire(tensor, new)`` may replace each new tensor as it is made
    (``tensor`` is the original it stands for).
    """
    order = []  # producer nodes in topological order (depth first, parents in order)
    seen = set()
    # A stack, not recursion: deep graphs (QuickNetLarge's hundreds of layers)
    # would exceed Python's recursion limit, sooner under autograph's frames.
    stack = [(t, None) for t in reversed(tensors)]
    while stack:
        t, done = stack.pop()
        if done is not None:
            order.append(done)
            continue
        layer, node = _producer(t)
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((None, (layer, node)))
        stack.extend((parent, None) for parent in reversed(node.keras_inputs))

    call_layer = call_layer or (lambda layer, args, kwargs: layer(*args, **kwargs))
    rewire = rewire or (lambda ref, new: new)
    mapped: dict[int, tf.Tensor] = {}
    if inputs is not None:
        mapped.update({id(ref): rewire(ref, new) for ref, new in zip(model.inputs, inputs)})
    for layer, node in order:
        if node.is_input:
            for out in tf.nest.flatten(node.outputs):
                if id(out) not in mapped:
                    mapped[id(out)] = rewire(out, out)
            continue
        if isinstance(layer, tf.keras.Model):
            raise ValueError(
                f"layer {layer.name!r} is a nested model: flatten it into one "
                "functional model before attaching LCR"
            )
        swap = lambda t: mapped[id(t)] if id(t) in mapped else t  # noqa: E731
        args = tf.nest.map_structure(swap, node.call_args)
        kwargs = tf.nest.map_structure(swap, dict(node.call_kwargs))
        outputs = call_layer(layer, args, kwargs)
        for ref, out in zip(tf.nest.flatten(node.outputs), tf.nest.flatten(outputs)):
            mapped[id(ref)] = rewire(ref, out)
    return [mapped[id(t)] for t in tensors]


def _call_full_precision(layer, args, kwargs):
    if _supports_full_precision(layer):
        return layer(*args, **kwargs, full_precision=True)
    if isinstance(layer, lq.quantizers.Quantizer):
        return tf.nest.flatten(args)[0]  # real values in place of binary
    if _needs_conversion(layer):
        raise ValueError(
            f"layer {layer.name!r} ({type(layer).__name__}) has no "
            "full-precision path: convert the model with "
            "lcr_larq.make_full_precision_aware(model) first"
        )
    return layer(*args, **kwargs)


def full_precision_path(
    model: tf.keras.Model, tensors: list, inputs: list | None = None
) -> list:
    """The latent full-precision counterparts of ``tensors`` of ``model``.

    Replays (:func:`replay`) the part of the graph that ``tensors`` depend
    on, from the model's inputs (or from ``inputs`` in their place), calling
    every full-precision-aware layer with ``full_precision=True`` (the same
    layer objects: weights are tied, never copied), passing standalone
    quantizers through, and calling every other layer as it is.
    """
    return replay(model, tensors, inputs, call_layer=_call_full_precision)


def batchnorm_inputs(model: tf.keras.Model, inputs) -> list:
    """``[(layer, tensor), …]``: the input of every ``BatchNormalization`` call of
    ``model`` on ``inputs`` (real tensors), in graph order.

    The model is replayed (:func:`replay`) with every batch normalization
    normalizing by its own batch's statistics, as in training but without
    updating its moving averages, and every other layer as it is (inference
    mode): the activations a BN sees in the last steps of training, and what
    :func:`lcr_larq.batchnorm.recalibrate_batchnorm` averages.
    """
    found = []

    def call(layer, args, kwargs):
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            (x,) = tf.nest.flatten(args)
            found.append((layer, x))
            return lcr_layers.normalize_with_batch_statistics(layer, x)
        return layer(*args, **kwargs)

    replay(model, list(model.outputs), tf.nest.flatten(inputs), call_layer=call)
    return found


def _block_tensors(blocks: list[Block]) -> list:
    return [t for block in blocks for t in (block.input, block.output)]


def _check_reference(blocks: list[Block], reference: list[Block]) -> None:
    if len(reference) != len(blocks):
        raise ValueError(
            f"the reference has {len(reference)} blocks but the BNN has "
            f"{len(blocks)}: use a teacher of the same architecture"
        )
    for b, r in zip(blocks, reference):
        for t_b, t_r in ((b.input, r.input), (b.output, r.output)):
            if t_b.shape[1:] != t_r.shape[1:]:
                raise ValueError(
                    f"block {b.name!r}: BNN features {t_b.shape[1:]} but reference "
                    f"{t_r.shape[1:]}: use a teacher of the same architecture"
                )


def attach_lcr(
    model: tf.keras.Model,
    lcr_lambda: float = 4.0,
    lcr_beta: float = 2.0,
    lcr_form: str = "ratio",
    power_iterations: int = 5,
    lcr_reference: str = "latent",
    teacher: tf.keras.Model | None = None,
    boundaries: list[str] | None = None,
    block_metrics: str = "ratio",
    lcr_samples: int = DEFAULT_SAMPLES,
    lcr_every: int = DEFAULT_EVERY,
) -> tf.keras.Model:
    """The training model: ``model`` with an LCR regularizer on its blocks.

    The arguments are named as the settings of ``lcr-train`` (``--lcr-beta``
    is ``lcr_beta``).

    Args:
        model: the BNN, a functional model whose single output is the logits.
        lcr_lambda, lcr_beta, lcr_form, power_iterations, block_metrics: λ, β,
            the loss form and the rest of
            :class:`~lcr_larq.layers.LipschitzRetention`, which checks them.
        lcr_reference: ``"latent"`` (the BNN's own latent weights, tied) or
            ``"teacher"`` (a frozen full-precision model of the same blocks).
        teacher: the full-precision model for ``lcr_reference="teacher"``.
        boundaries: block boundaries as layer names (see :func:`find_blocks`).
        lcr_samples: L_lip is estimated on the first ``lcr_samples`` samples of
            each (per-replica) batch, and the reference path runs on those
            only; 0 uses the whole batch. Batches are shuffled, so the
            estimate is unbiased for the batch mean, at a fraction of the cost
            (the reference path's BN uses the statistics of those samples).
        lcr_every: LCR on every ``lcr_every``-th training step only, with
            weight ``lcr_every·λ/2`` (the same weight per step on average): on
            the other steps the reference path runs on one sample and no loss
            is added (:class:`~lcr_larq.layers.ScheduledSampleCount`). 1: every
            step, the paper's loss; the default, 2, halves LCR's training time
            at no accuracy cost that a 10-seed study could see (see the docs).

    Returns:
        A functional model with the same inputs and logits, whose
        :class:`~lcr_larq.layers.LipschitzRetention` layer adds the loss.
    """
    lcr = lcr_layers.LipschitzRetention(
        lcr_lambda=lcr_lambda, lcr_beta=lcr_beta, lcr_form=lcr_form,
        power_iterations=power_iterations, block_metrics=block_metrics,
        lcr_samples=lcr_samples, lcr_every=lcr_every, name="lcr",
    )
    if lcr_reference not in REFERENCES:
        raise ValueError(f"lcr_reference must be one of {REFERENCES}, got {lcr_reference!r}")
    blocks = find_blocks(model, boundaries)
    binary = _block_tensors(blocks)
    reference_inputs = model.inputs
    # What the sample layers take: a fixed number, or this step's number.
    count = None
    if lcr_every > 1:
        count = lcr_layers.ScheduledSampleCount(lcr_samples, lcr_every, name="lcr_schedule")(
            model.inputs[0]
        )
    sampled = bool(lcr_samples) or count is not None
    if sampled:
        reference_inputs = [
            lcr_layers.SampleSlice(lcr_samples, name=f"lcr_samples_{i}")(
                x if count is None else [x, count]
            )
            for i, x in enumerate(model.inputs)
        ]
    if lcr_reference == "latent":
        if any(_needs_conversion(layer) for layer in model.layers):
            raise ValueError(
                f"model {model.name!r} uses stock Larq/Keras layers: convert it with "
                "lcr_larq.make_full_precision_aware(model) first"
            )
        reference_tensors = full_precision_path(model, binary, reference_inputs)
    else:
        if teacher is None:
            raise ValueError("lcr_reference='teacher' needs a teacher model (--teacher)")
        teacher_blocks = find_blocks(teacher, boundaries)
        _check_reference(blocks, teacher_blocks)
        features = tf.keras.Model(
            teacher.inputs, _block_tensors(teacher_blocks), name=f"{teacher.name}_blocks"
        )
        features.trainable = False
        reference_tensors = features(reference_inputs, training=False)
    logits = model.outputs[0]
    if sampled:
        logits, binary = _tap_blocks(model, binary, lcr_samples, count)
    # The schedule's count tells LCR its steps (XLA cannot tell them by empty features).
    schedule = {} if count is None else {"count": count}
    logits = lcr([logits, *binary, *reference_tensors], **schedule)
    return tf.keras.Model(model.inputs, logits, name=model.name)


def _tap_blocks(
    model: tf.keras.Model, features: list, samples: int, count: tf.Tensor | None = None
):
    """``(logits, cut features)``: the binary path replayed with a
    :class:`~lcr_larq.layers.SampleTap` on every distinct block feature, whose
    first output goes on through the network and whose second (the first
    ``samples`` samples, or ``count`` where given) goes to LCR."""
    cut: dict[int, tf.Tensor] = {}
    wanted = {id(t) for t in features}

    def tap(ref, new):
        if id(ref) not in wanted:
            return new
        whole, cut[id(ref)] = lcr_layers.SampleTap(
            samples, name=f"lcr_tap_{len(cut)}"
        )(new if count is None else [new, count])
        return whole

    logits = replay(model, [model.outputs[0], *features], rewire=tap)[0]
    return logits, [cut[id(t)] for t in features]


def lcr_layer(model: tf.keras.Model) -> lcr_layers.LipschitzRetention | None:
    """The model's LipschitzRetention layer, or None."""
    for layer in model.layers:
        if isinstance(layer, lcr_layers.LipschitzRetention):
            return layer
    return None


def check_jit_compile(model: tf.keras.Model) -> None:
    """Raises ``ValueError`` (one line saying what) if XLA cannot compile the
    training step of ``model`` (``compile(jit_compile=True)``).

    The one such model: LCR on every k-th step attached without passing the
    schedule's count to the LCR layer (by an earlier lcr-larq), which finds
    its steps by empty features, a shape XLA cannot compile.

    Example:
        >>> x = inputs = tf.keras.Input((8, 8, 4))
        >>> conv = lcr_layers.QuantConv2D(4, 3, padding="same", input_quantizer="ste_sign",
        ...                               kernel_quantizer="ste_sign")
        >>> x = tf.keras.layers.Add()([x, conv(x)])
        >>> bnn = tf.keras.Model(inputs, tf.keras.layers.Dense(3)(tf.keras.layers.Flatten()(x)))
        >>> check_jit_compile(attach_lcr(bnn, lcr_every=2))
    """
    layer = lcr_layer(model)
    if layer is None or layer.lcr_every == 1:
        return
    if any("count" not in node.call_kwargs for node in layer._inbound_nodes):
        raise ValueError(lcr_layers.XLA_NEEDS_COUNT.format(name=layer.name))


def strip_lcr(model: tf.keras.Model) -> tf.keras.Model:
    """The plain BNN of a training model: everything of LCR removed.

    A model without a LipschitzRetention layer is returned as it is.
    """
    layer = lcr_layer(model)
    if layer is None:
        return model
    logits = layer._inbound_nodes[0].keras_inputs[0]
    if any(isinstance(other, lcr_layers.SampleTap) for other in model.layers):
        (logits,) = replay(model, [logits], call_layer=_untapped)
    return tf.keras.Model(model.inputs, logits, name=model.name)


def _untapped(layer, args, kwargs):
    """A node's outputs with every SampleTap passed through (both outputs are
    its input)."""
    if isinstance(layer, lcr_layers.SampleTap):
        x = tf.nest.flatten(args)[0]  # [x] or [x, count]
        return [x, x]
    return layer(*args, **kwargs)


def computes_in_float32(model: tf.keras.Model) -> bool:
    """Whether every layer of ``model`` (nested models' included) computes
    in float32: False for a model built under a mixed-precision policy."""
    return all(
        computes_in_float32(layer) if isinstance(layer, tf.keras.Model)
        else getattr(layer, "compute_dtype", None) in (None, "float32")
        for layer in model.layers
    )


def as_float32(model: tf.keras.Model) -> tf.keras.Model:
    """``model`` computing in float32: itself when it does, otherwise a copy
    (same layers' configs, same weights) whose every layer has the float32
    dtype policy — what a converter that takes float32 graphs (TensorFlow
    Lite, Larq Compute Engine) or a float64 reference needs of a model trained
    under a mixed-precision policy. A model saved under such a policy keeps
    it when loaded, whatever the global policy then.

    Example:
        >>> from lcr_larq.optimizers import dtype_policy
        >>> with dtype_policy("mixed_bfloat16"):
        ...     inputs = tf.keras.Input((3,))
        ...     mixed = tf.keras.Model(inputs, tf.keras.layers.Dense(2)(inputs))
        >>> copy = as_float32(mixed)
        >>> computes_in_float32(mixed), computes_in_float32(copy), copy.output.dtype.name
        (False, True, 'float32')
        >>> x = tf.constant([[0.1, 0.2, 0.3]])
        >>> bool(tf.reduce_all(tf.abs(copy(x) - tf.cast(mixed(x), tf.float32)) < 1e-2))
        True
    """
    if computes_in_float32(model):
        return model

    def clone(layer):
        if isinstance(layer, tf.keras.Model):
            return as_float32(layer)
        return layer.__class__.from_config(_float32_config(layer.get_config()))

    copy = tf.keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def _float32_config(config):
    """A layer's config with every 16-bit dtype policy in it float32: its own
    and those of the Keras layers it holds (Larq's quantizers are layers)."""
    if isinstance(config, Mapping):
        return {key: "float32" if key == "dtype" and _is_policy(value)
                else _float32_config(value) for key, value in config.items()}
    if isinstance(config, tuple):
        return tuple(_float32_config(value) for value in config)
    if isinstance(config, Sequence) and not isinstance(config, str):
        return [_float32_config(value) for value in config]
    return config


#: The dtype policies of 16-bit computation, by name.
_SIXTEEN_BIT = ("mixed_float16", "mixed_bfloat16", "float16", "bfloat16")


def _is_policy(value) -> bool:
    """Whether a config's ``dtype`` value is a 16-bit dtype policy: its name,
    or the policy serialized (``{"class_name": "Policy", "config": {"name": …}}``)."""
    if isinstance(value, Mapping):
        value = (value.get("config") or {}).get("name")
    return value in _SIXTEEN_BIT


_CONVERSIONS = {
    lq.layers.QuantConv2D: lcr_layers.QuantConv2D,
    lq.layers.QuantDense: lcr_layers.QuantDense,
    lq.layers.QuantDepthwiseConv2D: lcr_layers.QuantDepthwiseConv2D,
    tf.keras.layers.BatchNormalization: lcr_layers.BatchNormalization,
}


def make_full_precision_aware(model: tf.keras.Model) -> tf.keras.Model:
    """A copy of ``model`` whose Larq quantized layers and batch normalizations
    take ``full_precision`` (same configs, same weights)."""

    def clone(layer):
        target = _CONVERSIONS.get(type(layer))
        if target is None:
            return layer.__class__.from_config(layer.get_config())
        return target.from_config(layer.get_config())

    converted = tf.keras.models.clone_model(model, clone_function=clone)
    converted.set_weights(model.get_weights())
    unsupported = [layer.name for layer in converted.layers if _needs_conversion(layer)]
    if unsupported:
        raise ValueError(
            f"layers {unsupported} have no full-precision path: attach LCR with "
            "lcr_reference='teacher' and a full-precision teacher model"
        )
    return converted

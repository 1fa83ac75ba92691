"""Deployment: a trained BNN as a Larq Compute Engine flatbuffer, checked.

``python -m lcr_larq.export --model-dir DIR`` reads a run directory written
by ``train.py`` and writes, in ``DIR`` (or ``--output-dir``):

* ``bnn_lce.tflite`` — the plain BNN converted by Larq Compute Engine (LCE):
  binary convolutions become ``LceBconv2d`` on bit-packed ±1 weights;
* ``float.tflite`` — the full-precision version of the same architecture
  (the latent weights, quantizers off) converted by TensorFlow Lite, for the
  size and latency comparison;
* ``export.json`` — the checks: on the test split, the LCE interpreter's
  logits against the Keras BNN's (``argmax_agreement``,
  ``max_logit_difference``), the file sizes (``binary_bytes``,
  ``float_bytes``), the op counts of both files, and ``lcr_trace``: anything
  of LCR found in the flatbuffer (an empty list for a clean export).

Nothing of LCR is exported: the model is stripped of its
:class:`~lcr_larq.layers.LipschitzRetention` layer and of the full-precision
reference path (:func:`lcr_larq.graph.strip_lcr`) before conversion, and
:func:`lcr_trace` checks the result.

A binary network is discontinuous at the sign threshold: an activation within
float rounding of zero can take the other sign in LCE, whose kernels fold
batch normalization into the binary convolution's output transform and so
round differently. That sample's logits then differ by a finite amount; on
every other sample the difference is float rounding (~1e-6). Agreement is
therefore measured on the argmax, and ``samples_beyond_tolerance`` counts the
samples whose logits differ by more than rounding. ``keras_rounding_control``
puts these numbers in scale: the Keras BNN against itself, with its inputs
changed by 1e-6 (relative) — a barely trained network with small logit
margins disagrees with itself about as often as with LCE.

Example:
    >>> from lcr_larq.export import export
    >>> report = export("runs/latest")            # doctest: +SKIP
    >>> report["argmax_agreement"] >= 0.99, report["lcr_trace"]  # doctest: +SKIP
    (True, [])

Command line::

    python -m lcr_larq.export --model-dir runs/latest
    python -m lcr_larq.export --model-dir runs/cifar --output-dir deploy --max-samples 1000
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import sys
from dataclasses import dataclass

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import larq as lq  # noqa: E402
import tensorflow as tf  # noqa: E402

BINARY_FILE = "bnn_lce.tflite"
FLOAT_FILE = "float.tflite"
REPORT_FILE = "export.json"
INPUT_NAME = "input"

# Ops of a flatbuffer that compute a convolution or a dense layer.
LINEAR_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "LceBconv2d")
# Names that only the training graph of LCR carries.
LCR_NAMES = ("lcr", "lipschitz", "retention", "full_precision", "sigma")
# Logit tolerance of float rounding (absolute + relative).
ROUNDING_TOLERANCE = 1e-4
# Relative input noise of the rounding control (about 8 float32 ulps).
CONTROL_NOISE = 1e-6


class ExportError(RuntimeError):
    """An export that cannot be done; the message names the fix."""


# ---------------------------------------------------------------- conversion


def _single_input_shape(model: tf.keras.Model) -> tuple[int, ...]:
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ExportError(
            f"model {model.name!r} has {len(model.inputs)} inputs and "
            f"{len(model.outputs)} outputs: export needs one image input and one logits output"
        )
    shape = tuple(model.inputs[0].shape[1:])
    if any(d is None for d in shape):
        raise ExportError(f"model {model.name!r} has an input of unknown size {shape}")
    return shape


def serving_function(model: tf.keras.Model, batch_size: int = 1):
    """The inference function of ``model`` at a fixed batch size (concrete).

    Example:
        >>> from models import build_model
        >>> fn = serving_function(build_model("resnet20", (32, 32, 1), 10))
        >>> fn.structured_outputs.shape.as_list()
        [1, 10]
    """
    shape = _single_input_shape(model)
    spec = tf.TensorSpec((batch_size, *shape), tf.float32, name=INPUT_NAME)
    function = tf.function(lambda x: model(x, training=False), input_signature=[spec])
    return function.get_concrete_function()


def convert_binary(model: tf.keras.Model) -> bytes:
    """The Larq Compute Engine flatbuffer of ``model`` (batch size 1).

    The inference function is frozen and handed to LCE's converter as a
    GraphDef — the same MLIR pipeline as ``larq_compute_engine
    .convert_keras_model``, without its detour through a SavedModel of the
    whole Keras model (several times slower, and it also traces the training
    functions). The result is deterministic.

    Example:
        >>> from models import build_model
        >>> flatbuffer = convert_binary(build_model("resnet20", (32, 32, 1), 10))
        >>> flatbuffer_ops(flatbuffer).count("LceBconv2d")
        18
    """
    from tensorflow.core.framework.types_pb2 import DataType
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    try:
        from larq_compute_engine.mlir._tf_tfl_flatbuffer import (
            convert_graphdef_to_tflite_flatbuffer,
        )
    except ImportError:  # another LCE layout: its public (slower) entry point
        import larq_compute_engine as lce

        return lce.convert_keras_model(model)

    function = serving_function(model)
    frozen = convert_variables_to_constants_v2(function)
    graph_def = frozen.graph.as_graph_def()
    inputs = [t for t in frozen.inputs if t.dtype != tf.resource]
    try:
        return bytes(
            convert_graphdef_to_tflite_flatbuffer(
                graph_def.SerializeToString(),
                [t.name.split(":")[0] for t in inputs],
                [DataType.Name(t.dtype.as_datatype_enum) for t in inputs],
                [t.shape.as_list() for t in inputs],
                [t.name.split(":")[0] for t in frozen.outputs],
                False,  # no int8 quantization
                "arm",
                None,
            )
        )
    except Exception as error:  # the converter raises RuntimeError/ValueError
        raise ExportError(
            f"LCE cannot convert {model.name!r}: {_first_line(error)}"
        ) from None


def convert_float(model: tf.keras.Model) -> bytes:
    """The plain TensorFlow Lite flatbuffer (float32) of ``model`` (batch 1).

    Example:
        >>> from models import build_model
        >>> model = build_model("resnet20", (32, 32, 1), 10, quantized=False)
        >>> "CONV_2D" in flatbuffer_ops(convert_float(model))
        True
    """
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [serving_function(model)], model
    )
    # The frozen-function path: the SavedModel detour is slower, same result.
    converter.experimental_lower_to_saved_model = False
    try:
        return bytes(converter.convert())
    except Exception as error:
        raise ExportError(
            f"TFLite cannot convert {model.name!r}: {_first_line(error)}"
        ) from None


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


# ------------------------------------------------------ the float counterpart

def _short_name(variable: tf.Variable) -> str:
    return variable.name.split("/")[-1].split(":")[0]


def _latent_value(variable) -> np.ndarray:
    latent = getattr(variable, "latent_variable", variable)
    return np.asarray(tf.keras.backend.get_value(latent))


def copy_latent_weights(source: tf.keras.Model, target: tf.keras.Model) -> None:
    """Copies the latent weights of ``source`` into the same-named layers of
    ``target`` (matched by variable name; quantizer state is skipped).

    Raises :class:`ExportError` when a layer or a weight has no counterpart.
    """
    for layer in target.layers:
        if not layer.weights:
            continue
        try:
            origin = source.get_layer(layer.name)
        except ValueError:
            raise ExportError(
                f"layer {layer.name!r} of the float model is not in the BNN: "
                "the architectures differ"
            ) from None
        by_name = {}
        for variable in origin.weights:
            by_name.setdefault(_short_name(variable), variable)
        values = []
        for variable in layer.weights:
            match = by_name.get(_short_name(variable))
            if match is None or tuple(match.shape) != tuple(variable.shape):
                raise ExportError(
                    f"weight {variable.name} of the float model has no counterpart "
                    f"of shape {tuple(variable.shape)} in the BNN"
                )
            values.append(_latent_value(match))
        layer.set_weights(values)


def strip_quantizers(model: tf.keras.Model) -> tf.keras.Model:
    """A copy of ``model`` with every Larq quantizer off and the latent weights.

    Works for any functional Larq model (e.g. Larq-Zoo's); this project's
    models are rebuilt with ``quantized=False`` by :func:`float_counterpart`.

    Example:
        >>> import larq_zoo as lqz
        >>> bnn = lqz.literature.BiRealNet(weights=None, input_shape=(64, 64, 3))
        >>> fp = strip_quantizers(bnn)
        >>> any(getattr(l, "kernel_quantizer", None) for l in fp.layers)
        False
    """

    from models.zoo import without_quantizers

    clone_model = without_quantizers(model, copy_weights=False)
    copy_latent_weights(model, clone_model)
    return clone_model


def float_counterpart(bnn: tf.keras.Model, recipe: dict | None = None) -> tf.keras.Model:
    """The full-precision version of ``bnn``'s architecture, with its latent weights.

    With the run's ``recipe`` (``config.yaml``) of a registered model this is
    ``models.build_model(name, shape, classes, quantized=False, …)``;
    otherwise, or when its layers do not match ``bnn``'s, every quantizer of a
    copy of ``bnn`` is switched off (:func:`strip_quantizers`).

    Example:
        >>> from models import build_model
        >>> bnn = build_model("resnet20", (32, 32, 1), 10)
        >>> float_counterpart(bnn, {"model": "resnet20"}).name
        'resnet20_fp_1w1a'
    """
    from models import MODELS, build_model

    recipe = recipe or {}
    name = recipe.get("model")
    if name not in MODELS or recipe.get("full_precision"):
        return strip_quantizers(bnn)
    shape = _single_input_shape(bnn)
    try:
        fp = build_model(
            name,
            shape,
            int(bnn.outputs[0].shape[-1]),
            precision=recipe.get("precision", "1w1a"),
            quantized=False,
            bireal=bool(recipe.get("bireal", False)),
            weight_quantizer=recipe.get("weight_quantizer", "irnet"),
        )
        copy_latent_weights(bnn, fp)
    except (ValueError, ExportError):  # the registry's version differs from the run's
        return strip_quantizers(bnn)
    return fp


# ------------------------------------------------------ reading a flatbuffer


@dataclass(frozen=True)
class FlatbufferSummary:
    """The main subgraph of a flatbuffer: ops in order, tensors, sizes.

    ``graph()`` is everything but the tensor names: two flatbuffers with equal
    ``graph()`` compute the same function with the same weights. (Tensor
    names carry Keras' auto-numbered quantizer names, e.g. ``ede_sign_7``,
    which depend on how many models the process built before.)
    """

    ops: tuple[str, ...]
    wiring: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]
    tensors: tuple[tuple[str, tuple[int, ...]], ...]
    tensor_data: tuple[str, ...]
    inputs: tuple[tuple[int, ...], ...]
    outputs: tuple[tuple[int, ...], ...]

    def op_counts(self) -> dict[str, int]:
        return dict(sorted(collections.Counter(self.ops).items()))

    def graph(self) -> tuple:
        shapes = tuple(shape for _, shape in self.tensors)
        return self.ops, self.wiring, shapes, self.tensor_data, self.inputs, self.outputs


def summarize(flatbuffer: bytes) -> FlatbufferSummary:
    """Ops, wiring, tensor names, shapes and data digests of a TFLite/LCE flatbuffer.

    Example:
        >>> from models import build_model
        >>> summary = summarize(convert_binary(build_model("resnet20", (32, 32, 1), 10)))
        >>> summary.inputs, summary.outputs
        (((1, 32, 32, 1),), ((1, 10),))
    """
    from tensorflow.lite.python import schema_py_generated as schema

    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(flatbuffer, 0))
        graph = model.subgraphs[0]
    except Exception as error:
        raise ExportError(f"not a TFLite flatbuffer ({_first_line(error)})") from None
    builtin = {v: k for k, v in vars(schema.BuiltinOperator).items() if isinstance(v, int)}
    ops, wiring = [], []
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        if code.customCode:
            ops.append(code.customCode.decode())
        else:
            ops.append(builtin[max(code.builtinCode, code.deprecatedBuiltinCode)])
        wiring.append((_indices(op.inputs), _indices(op.outputs)))

    def shape(index):
        return tuple(int(d) for d in graph.tensors[index].shape)

    def digest(tensor) -> str:
        data = model.buffers[tensor.buffer].data
        content = b"" if data is None else np.asarray(data, np.uint8).tobytes()
        return hashlib.sha256(content).hexdigest()[:16]

    return FlatbufferSummary(
        ops=tuple(ops),
        wiring=tuple(wiring),
        tensors=tuple(
            ((t.name or b"").decode(), tuple(int(d) for d in t.shape)) for t in graph.tensors
        ),
        tensor_data=tuple(digest(t) for t in graph.tensors),
        inputs=tuple(map(shape, graph.inputs)),
        outputs=tuple(map(shape, graph.outputs)),
    )


def _indices(array) -> tuple[int, ...]:
    return () if array is None else tuple(int(i) for i in array)


def flatbuffer_ops(flatbuffer: bytes) -> list[str]:
    """The op names of a flatbuffer's main subgraph, in execution order."""
    return list(summarize(flatbuffer).ops)


def binary_conv_layers(model: tf.keras.Model) -> list[str]:
    """Names of the layers LCE should turn into ``LceBconv2d``: Larq
    convolutions with a 1-bit input quantizer and a 1-bit kernel quantizer."""

    def one_bit(quantizer) -> bool:
        return quantizer is not None and getattr(quantizer, "precision", None) == 1

    return [
        layer.name
        for layer in model.layers
        if isinstance(layer, lq.layers.QuantConv2D)
        and one_bit(layer.input_quantizer)
        and one_bit(layer.kernel_quantizer)
    ]


def linear_layers(model: tf.keras.Model) -> list[str]:
    """Names of the convolution and dense layers of ``model``."""
    kinds = (tf.keras.layers.Conv2D, tf.keras.layers.DepthwiseConv2D, tf.keras.layers.Dense)
    return [layer.name for layer in model.layers if isinstance(layer, kinds)]


def lcr_trace(flatbuffer: bytes, bnn: tf.keras.Model) -> list[str]:
    """What of LCR a flatbuffer of ``bnn`` still holds; empty when clean.

    Checks that no tensor carries a name of LCR's training graph, that there
    is one output of the logits' shape, and that there are exactly as many
    convolution/dense ops as the plain BNN has such layers — a full-precision
    reference path would add a latent copy of every convolution.

    Example:
        >>> from models import build_model
        >>> bnn = build_model("resnet20", (32, 32, 1), 10)
        >>> lcr_trace(convert_binary(bnn), bnn)
        []
    """
    summary = summarize(flatbuffer)
    found = []
    named = sorted(
        {name for name, _ in summary.tensors if any(k in name.lower() for k in LCR_NAMES)}
    )
    if named:
        found.append(f"tensors named like LCR: {', '.join(named[:5])}")
    logits = (1, *(int(d) for d in bnn.outputs[0].shape[1:]))
    if summary.outputs != (logits,):
        found.append(f"outputs {list(summary.outputs)} instead of the logits {logits}")
    linear = sum(summary.ops.count(op) for op in LINEAR_OPS)
    expected = len(linear_layers(bnn))
    if linear != expected:
        found.append(
            f"{linear} convolution/dense ops for the {expected} such layers of the plain BNN"
        )
    return found


# ---------------------------------------------------------------- the checks


def interpreter_logits(flatbuffer: bytes, images: np.ndarray, num_threads: int = 1):
    """Logits of the LCE interpreter, one image at a time (batch-1 model)."""
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    interpreter = Interpreter(flatbuffer, num_threads=num_threads)
    return np.asarray(interpreter.predict(images.astype(np.float32)))


def _agreement(reference: np.ndarray, logits: np.ndarray) -> dict:
    difference = np.abs(logits - reference)
    tolerance = ROUNDING_TOLERANCE * (1.0 + np.abs(reference))
    agree = logits.argmax(1) == reference.argmax(1)
    return {
        "argmax_agreement": float(agree.mean()),
        "disagreeing_samples": int((~agree).sum()),
        "max_logit_difference": float(difference.max()),
        "median_logit_difference": float(np.median(difference)),
        "samples_beyond_tolerance": int((difference > tolerance).any(axis=1).sum()),
    }


def rounding_control(
    bnn: tf.keras.Model, images: np.ndarray, reference: np.ndarray, noise: float = CONTROL_NOISE
) -> dict:
    """The Keras BNN against itself on inputs perturbed by float rounding.

    A binary network is discontinuous at every sign: this is how often its
    own argmax moves when each input value is changed by a relative
    ``noise`` (~8 float32 ulps at 1e-6) — the floor that LCE's different
    (but equally exact) float arithmetic is to be compared with.
    """
    rng = np.random.default_rng(0)
    jitter = 1.0 + noise * rng.standard_normal(images.shape)
    perturbed = bnn.predict((images * jitter).astype(np.float32), batch_size=64, verbose=0)
    return {"input_noise": noise, **_agreement(reference, perturbed)}


def compare(
    bnn: tf.keras.Model,
    flatbuffer: bytes,
    images: np.ndarray,
    labels: np.ndarray | None = None,
    control: bool = True,
) -> dict:
    """Keras logits against LCE's on ``images`` (normalized, N×H×W×C).

    With ``control``, also :func:`rounding_control` (``"keras_rounding_control"``).

    Example:
        >>> from models import build_model
        >>> bnn = build_model("resnet20", (32, 32, 1), 10)
        >>> x = np.random.default_rng(0).normal(size=(8, 32, 32, 1)).astype("float32")
        >>> compare(bnn, convert_binary(bnn), x)["argmax_agreement"] >= 0.875
        True
    """
    keras_logits = bnn.predict(images, batch_size=64, verbose=0)
    lce_logits = interpreter_logits(flatbuffer, images)
    report = {"test_samples": int(len(images)), **_agreement(keras_logits, lce_logits)}
    if labels is not None:
        report["keras_accuracy"] = float((keras_logits.argmax(1) == labels).mean())
        report["lce_accuracy"] = float((lce_logits.argmax(1) == labels).mean())
    if control:
        report["keras_rounding_control"] = rounding_control(bnn, images, keras_logits)
    return report


def _resize(images: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if images.shape[1:] == shape:
        return images
    if images.shape[-1] != shape[-1]:
        raise ExportError(
            f"the test images have {images.shape[-1]} channels but the model takes {shape[-1]}"
        )
    return tf.image.resize(images, shape[:2], method="bilinear").numpy()


def load_test_split(
    recipe: dict, shape: tuple[int, ...], max_samples: int | None, data_dir: str | None
) -> tuple[np.ndarray, np.ndarray]:
    """The run's test split (normalized like training), at most ``max_samples``."""
    from lcr_larq import data as lcr_data

    dataset = lcr_data.load_dataset(
        recipe.get("dataset", "digits"),
        batch_size=128,
        seed=int(recipe.get("seed", 0)),
        data_dir=data_dir or recipe.get("data_dir"),
    )
    images, labels, count = [], [], 0
    for x, y in dataset.test:
        images.append(x.numpy())
        labels.append(y.numpy())
        count += len(x)
        if max_samples is not None and count >= max_samples:
            break
    x = np.concatenate(images)[:max_samples]
    y = np.concatenate(labels)[:max_samples]
    return _resize(x, shape), y


# ----------------------------------------------------------------- export


def run_directory(model_path: str) -> str:
    """The run directory of a model path (the directory itself, or a file's)."""
    if os.path.isdir(model_path):
        return model_path
    return os.path.dirname(os.path.abspath(model_path))


def read_recipe(model_dir: str) -> dict:
    """The run's ``config.yaml`` (architecture, dataset) as a dict."""
    from lcr_larq import config as cfg

    path = os.path.join(run_directory(model_dir), "config.yaml")
    if not os.path.isfile(path):
        raise ExportError(
            f"{path} does not exist: give a complete directory written by train.py"
        )
    try:
        return cfg.load_recipe(path)
    except cfg.ConfigError as error:
        raise ExportError(f"{error}: the run directory is corrupt") from None


def export(
    model_dir: str,
    output_dir: str | None = None,
    max_samples: int | None = None,
    data_dir: str | None = None,
) -> dict:
    """Converts, checks and writes one trained model; returns the report.

    Args:
        model_dir: a run directory written by ``train.py`` (or a ``.keras`` file).
        output_dir: where the flatbuffers and ``export.json`` go (default:
            ``model_dir``).
        max_samples: check on at most this many test images (default: all).
        data_dir: the dataset's data directory, if not the run's.

    Raises:
        lcr_larq.training.TrainingError: missing or corrupt model.
        ExportError: conversion or file problems.
    """
    import larq_compute_engine

    from lcr_larq.training import load_trained_model

    bnn = load_trained_model(model_dir)  # LCR stripped
    recipe = read_recipe(model_dir)
    output_dir = output_dir or run_directory(model_dir)
    try:
        os.makedirs(output_dir, exist_ok=True)
    except OSError as error:
        raise ExportError(f"cannot create {output_dir} ({error.strerror})") from None

    shape = _single_input_shape(bnn)
    binary = convert_binary(bnn)
    fp_model = float_counterpart(bnn, recipe)
    floating = convert_float(fp_model)
    images, labels = load_test_split(recipe, shape, max_samples, data_dir)

    summary, fp_summary = summarize(binary), summarize(floating)
    expected_binary = binary_conv_layers(bnn)
    report = {
        "model": bnn.name,
        "model_dir": os.path.abspath(model_dir),
        "dataset": recipe.get("dataset", "digits"),
        "input_shape": list(shape),
        **compare(bnn, binary, images, labels),
        "binary_file": BINARY_FILE,
        "float_file": FLOAT_FILE,
        "binary_bytes": len(binary),
        "float_bytes": len(floating),
        "size_ratio": round(len(floating) / len(binary), 2),
        "binary_conv_layers": len(expected_binary),
        "lce_bconv_ops": summary.ops.count("LceBconv2d"),
        "lcr_trace": lcr_trace(binary, bnn),
        "binary_ops": summary.op_counts(),
        "float_ops": fp_summary.op_counts(),
        "float_model": fp_model.name,
        "converter": f"larq-compute-engine {larq_compute_engine.__version__}, "
        f"tensorflow {tf.__version__}, target arm",
    }
    try:
        for name, content in ((BINARY_FILE, binary), (FLOAT_FILE, floating)):
            with open(os.path.join(output_dir, name), "wb") as handle:
                handle.write(content)
        with open(os.path.join(output_dir, REPORT_FILE), "w") as handle:
            json.dump(report, handle, indent=2)
    except OSError as error:
        raise ExportError(f"cannot write to {output_dir} ({error.strerror})") from None
    return report


def format_report(report: dict) -> str:
    """A short human-readable summary of :func:`export`'s report."""
    missing = report["binary_conv_layers"] - report["lce_bconv_ops"]
    control = report["keras_rounding_control"]
    warning = (
        [
            f"warning          {missing} binary convolutions run as float CONV_2D: their "
            "quantized weights are not ±c per output channel at export time (e.g. a "
            "ProxConnect quantizer not yet in its hard state)"
        ]
        if missing > 0
        else []
    )
    return "\n".join(
        [
            f"model            {report['model']} ({report['dataset']}, "
            f"{report['test_samples']} test images)",
            f"argmax agreement {100 * report['argmax_agreement']:.2f}% "
            f"(max logit difference {report['max_logit_difference']:.3g}; Keras against "
            f"itself at {control['input_noise']:g} input noise: "
            f"{100 * control['argmax_agreement']:.2f}%)",
            f"binary (LCE)     {report['binary_bytes']:,} bytes, "
            f"{report['lce_bconv_ops']}/{report['binary_conv_layers']} binary convs as LceBconv2d",
            f"float (TFLite)   {report['float_bytes']:,} bytes "
            f"({report['size_ratio']:.1f}× the binary file)",
            f"LCR in export    {'; '.join(report['lcr_trace']) or 'none'}",
            *warning,
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m lcr_larq.export``: 0 on success, 2 with a one-line error."""
    parser = argparse.ArgumentParser(
        prog="python -m lcr_larq.export",
        description="Export a model trained by train.py to Larq Compute Engine and check it.",
    )
    parser.add_argument("--model-dir", required=True, help="run directory written by train.py")
    parser.add_argument("--output-dir", help="where the files go (default: --model-dir)")
    parser.add_argument("--max-samples", type=int, help="check on at most N test images")
    parser.add_argument("--data-dir", help="dataset directory, if not the run's")
    args = parser.parse_args(argv)

    from lcr_larq import config as cfg
    from lcr_larq import data as lcr_data
    from lcr_larq.training import TrainingError

    if args.max_samples is not None and args.max_samples < 1:
        print(f"error: --max-samples must be >= 1, got {args.max_samples}", file=sys.stderr)
        return 2
    try:
        report = export(args.model_dir, args.output_dir, args.max_samples, args.data_dir)
    except (ExportError, TrainingError, cfg.ConfigError, lcr_data.DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_report(report))
    print(f"wrote {os.path.join(args.output_dir or run_directory(args.model_dir), REPORT_FILE)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

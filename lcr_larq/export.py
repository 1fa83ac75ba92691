"""Deployment: a trained BNN as a Larq Compute Engine flatbuffer, checked.

``lcr-export --model-dir DIR`` reads a run directory written
by ``lcr-train`` and writes, in ``DIR`` (or ``--output-dir``):

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

Neither converter takes 16-bit ops: the ``bnn.keras`` of a run trained under
``--mixed-precision`` already computes in float32 (its float32 copy, whose
accuracy the run reports beside the 16-bit network's).

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

Command line: ``lcr-export`` (:mod:`lcr_larq.cli.export`).
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from lcr_larq.batchnorm import recalibrate
from lcr_larq.errors import ConfigError, RunError
from lcr_larq.quantizers import quantized_convolutions
from lcr_larq.settings import setting
from lcr_larq.training import runs
from lcr_larq.training.runs import RunSettings

__all__ = [
    "BINARY_FILE",
    "CONTROL_NOISE",
    "FLOAT_FILE",
    "INPUT_NAME",
    "LCR_NAMES",
    "LINEAR_OPS",
    "REPORT_FILE",
    "ROUNDING_TOLERANCE",
    "ExportSettings",
    "FlatbufferSummary",
    "compare",
    "convert_binary",
    "convert_float",
    "export",
    "flatbuffer_ops",
    "interpreter_logits",
    "lcr_trace",
    "linear_layers",
    "native_output_hidden",
    "rounding_control",
    "serving_function",
    "summarize",
]

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


@dataclass
class ExportSettings(RunSettings):
    """The settings of ``lcr-export``."""

    output_dir: str | None = setting(None, "where the files go (default: --model-dir)")
    max_samples: int | None = setting(None, "check on at most N test images", low=1)
    data_dir: str | None = setting(None, "dataset directory, if not the run's")
    verbose: bool = setting(False, "show the converters' own output")

    @property
    def out(self) -> str:
        return self.output_dir or runs.run_directory(self.model_dir)

@contextlib.contextmanager
def native_output_hidden(hide: bool = True):
    """Sends what native code writes to stdout and stderr (TensorFlow's and
    MLIR's converter logs) to a temporary file while the block runs; shown
    again if the block fails."""
    if not hide:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace")[-4000:])
            raise
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


# ---------------------------------------------------------------- conversion


def _single_input_shape(model: tf.keras.Model) -> tuple[int, ...]:
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise RunError(
            f"model {model.name!r} has {len(model.inputs)} inputs and "
            f"{len(model.outputs)} outputs: export needs one image input and one logits output"
        )
    shape = tuple(model.inputs[0].shape[1:])
    if any(d is None for d in shape):
        raise RunError(f"model {model.name!r} has an input of unknown size {shape}")
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
    """The Larq Compute Engine flatbuffer of ``model`` (batch size 1), by LCE's
    public converter ``larq_compute_engine.convert_keras_model``.

    Example:
        >>> import larq as lq
        >>> model = tf.keras.Sequential([tf.keras.Input((8, 8, 4)), lq.layers.QuantConv2D(
        ...     8, 3, padding="same", pad_values=1.0, input_quantizer="ste_sign",
        ...     kernel_quantizer="ste_sign", kernel_constraint="weight_clip")])
        >>> flatbuffer_ops(convert_binary(model)).count("LceBconv2d")
        1
    """
    import larq_compute_engine as lce

    shape = _single_input_shape(model)
    # A batch-1 copy with the same layers: the flatbuffer's input is 1×H×W×C.
    inputs = tf.keras.Input(shape, batch_size=1, name=INPUT_NAME)
    fixed = tf.keras.Model(inputs, model(inputs, training=False), name=model.name)
    try:
        with warnings.catch_warnings():
            # The converter builds the custom gradients of EDE quantizers, which
            # would warn about a missing EDE schedule: converting is not training.
            warnings.filterwarnings("ignore", message=".*trains without EDESchedule")
            return bytes(lce.convert_keras_model(fixed))
    except Exception as error:  # the converter raises RuntimeError/ValueError
        raise RunError(f"LCE cannot convert {model.name!r}: {_first_line(error)}") from None


def convert_float(model: tf.keras.Model) -> bytes:
    """The plain TensorFlow Lite flatbuffer (float32) of ``model`` (batch 1).

    Example:
        >>> model = tf.keras.Sequential([tf.keras.Input((8, 8, 1)),
        ...                              tf.keras.layers.Conv2D(4, 3)])
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
        raise RunError(
            f"TFLite cannot convert {model.name!r}: {_first_line(error)}"
        ) from None


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


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
        >>> model = tf.keras.Sequential([tf.keras.Input((8, 8, 1)), tf.keras.layers.Conv2D(4, 3)])
        >>> summary = summarize(convert_float(model))
        >>> summary.inputs, summary.outputs
        (((1, 8, 8, 1),), ((1, 6, 6, 4),))
    """
    from tensorflow.lite.python import schema_py_generated as schema

    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(flatbuffer, 0))
        graph = model.subgraphs[0]
    except Exception as error:
        raise RunError(f"not a TFLite flatbuffer ({_first_line(error)})") from None
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
        >>> model = tf.keras.Sequential([
        ...     tf.keras.Input((8, 8, 1)), tf.keras.layers.Conv2D(4, 3),
        ...     tf.keras.layers.Flatten(), tf.keras.layers.Dense(10)])
        >>> lcr_trace(convert_float(model), model)
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
    """How far ``logits`` follow ``reference``; a sample whose logits are not
    finite on either side agrees with nothing (NaN would pass an argmax)."""
    finite = np.isfinite(reference).all(axis=1) & np.isfinite(logits).all(axis=1)
    difference = np.where(finite[:, None], np.abs(logits - reference), np.inf)
    tolerance = ROUNDING_TOLERANCE * (1.0 + np.abs(np.nan_to_num(reference)))
    agree = finite & (logits.argmax(1) == reference.argmax(1))
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
        >>> import larq as lq
        >>> bnn = tf.keras.Sequential([  # a small BNN: one binary conv, a classifier
        ...     tf.keras.Input((8, 8, 1)),
        ...     lq.layers.QuantConv2D(4, 3, input_quantizer="ste_sign",
        ...                           kernel_quantizer="ste_sign", use_bias=False),
        ...     tf.keras.layers.Flatten(), tf.keras.layers.Dense(10)])
        >>> x = np.random.default_rng(0).normal(size=(8, 8, 8, 1)).astype("float32")
        >>> report = compare(bnn, convert_binary(bnn), x)
        >>> report["test_samples"], report["argmax_agreement"] >= 0.875
        (8, True)
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


def export(settings: ExportSettings) -> dict:
    """Converts, checks and writes the run of ``settings.model_dir``; returns
    the report (``export.json``)."""
    import larq_compute_engine

    run = runs.load_run(settings.model_dir, data_dir=settings.data_dir)
    bnn, out = run.model, settings.out
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"cannot create --output-dir {out} ({error.strerror})") from None
    shape = _single_input_shape(bnn)
    images, labels = runs.test_images(run.dataset, settings.max_samples)
    images = np.asarray(run.dataset.normalize(images))
    fp_model = run.float_counterpart()
    # The float version's BN statistics are those of the binary activations:
    # re-estimated on its own (as lcr-train does for the BNN) for its accuracy.

    batches = run.config.bn_recalibration_batches if run.config else 100
    recalibrate(fp_model, run.dataset, batches)
    with native_output_hidden(not settings.verbose):
        binary = convert_binary(bnn)
        floating = convert_float(fp_model)
    summary, fp_summary = summarize(binary), summarize(floating)
    expected_binary = quantized_convolutions(bnn, binary=True)
    fp_logits = fp_model.predict(images, batch_size=64, verbose=0)
    report = {
        "model": bnn.name,
        "model_dir": os.path.abspath(run.directory),
        "dataset": run.dataset.name,
        "input_shape": list(shape),
        "bn_recalibration": run.bn_recalibration,
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
        "float_keras_accuracy": float((fp_logits.argmax(1) == labels).mean()),
        "converter": f"larq-compute-engine {larq_compute_engine.__version__}, "
        f"tensorflow {tf.__version__}, target arm",
    }
    try:
        for name, content in ((BINARY_FILE, binary), (FLOAT_FILE, floating)):
            with open(os.path.join(out, name), "wb") as handle:
                handle.write(content)
        runs.save_json(report, os.path.join(out, REPORT_FILE))
    except OSError as error:
        raise ConfigError(f"cannot write to {out} ({error.strerror}): check --output-dir") from None
    return report

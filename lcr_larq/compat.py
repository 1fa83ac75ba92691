"""The Keras 2 that Larq needs, on every TensorFlow this project installs with.

Larq (and so every layer here) is written against Keras 2. From TensorFlow
2.16 on, ``tf.keras`` is Keras 3 unless ``TF_USE_LEGACY_KERAS=1`` is set
before TensorFlow is imported, and then it is the ``tf-keras`` package.
:func:`use_legacy_keras` sets that switch and checks that it took effect;
``import lcr_larq`` calls it first, so ``train.py``, every command, the tests
and a user's own script get Keras 2 without setting anything. It is the one
global change the package makes at import: a user's script keeps its
environment and TensorFlow's own log lines.

The commands (``lcr-<name>``, ``python -m lcr_larq.cli.<name>``, the
checkout's ``train.py``) also quiet TensorFlow's start-up
(:func:`started_as_command`): its CUDA-plugin lines would bury their
one-line errors.

:func:`import_keras_tuner` is the one place Keras Tuner is imported: it has to
be told which Keras to use (see there); :func:`compiling_with_xla` is the one
place that asks TensorFlow something it answers only privately, and
:func:`inferring_output_signature` the one that recognizes tf-keras' trace of
a layer for its output's shape.

>>> import lcr_larq
>>> lcr_larq.compat.tf_keras_version().split(".")[0]
'2'
"""

import contextlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

__all__ = [
    "LEGACY_KERAS",
    "LEGACY_ON",
    "compiling_with_xla",
    "import_keras_tuner",
    "inferring_output_signature",
    "started_as_command",
    "tf_keras_version",
    "use_legacy_keras",
    "version_tuple",
]

LEGACY_KERAS = "TF_USE_LEGACY_KERAS"
#: the values TensorFlow takes for "on" (``tensorflow/__init__.py``).
LEGACY_ON = ("1", "true", "True")


def tf_keras_version() -> str:
    """The version of the Keras package behind ``tf.keras`` ("2.19.0" for
    tf-keras 2.19, "3.…" for Keras 3). ``tf.keras`` itself may be a lazily
    loaded API module without ``__version__``, so the package is found from
    where ``tf.keras.Model`` is defined."""
    import tensorflow as tf

    package = tf.keras.Model.__module__.split(".")[0]
    return str(importlib.import_module(package).__version__)


#: The package's folder: the commands are the modules of its ``cli`` folder,
#: the checkout's ``train.py`` sits beside it.
_PACKAGE = Path(__file__).resolve().parent


def started_as_command(argv: list[str] | None = None, orig_argv: list[str] | None = None) -> bool:
    """Whether this process is one of the commands: a console script
    ``lcr-<name>``, ``python -m lcr_larq.cli.<name>`` or the checkout's
    ``train.py`` (``<name>`` a module of ``lcr_larq/cli/``).

    Read from how the process was started (``sys.argv[0]``, and
    ``sys.orig_argv`` for ``-m``, whose module is not yet in ``sys.argv``
    while its packages load) because it is decided while ``lcr_larq`` is
    imported, before TensorFlow: a command's own code runs only after the
    package (and so TensorFlow) has loaded. Nothing is imported to decide.

    Example:
        >>> started_as_command(["/venv/bin/lcr-train"]), started_as_command(["my_script.py"])
        (True, False)
        >>> started_as_command(["-m"], ["python", "-m", "lcr_larq.cli.evaluate", "--help"])
        True
    """
    argv = sys.argv if argv is None else argv
    orig_argv = getattr(sys, "orig_argv", []) if orig_argv is None else orig_argv
    script = argv[0] if argv else ""
    if script == "-m":
        for index, option in enumerate(orig_argv):
            if option.startswith("-m"):
                module = option[2:] or (orig_argv[index + 1] if index + 1 < len(orig_argv) else "")
                package, _, name = module.rpartition(".")
                return package == "lcr_larq.cli" and _is_command(name)
        return False
    name = os.path.basename(script)
    for suffix in (".exe", "-script.py"):  # the console scripts' names on Windows
        name = name.removesuffix(suffix)
    if name.startswith("lcr-"):
        return _is_command(name[4:].replace("-", "_"))
    train = _PACKAGE.parent / "train.py"
    return name == "train.py" and train.is_file() and os.path.isfile(script) and (
        os.path.samefile(script, train))


def _is_command(name: str) -> bool:
    return bool(name) and not name.startswith("_") and (_PACKAGE / "cli" / f"{name}.py").is_file()


@contextlib.contextmanager
def _quiet_native_start_up() -> Iterator[None]:
    """Sends what native code writes to stderr (fd 2) to /dev/null meanwhile.

    The ``tensorflow`` wheels from 2.16 on register their CUDA plugins twice
    at import and log it through absl, past ``TF_CPP_MIN_LOG_LEVEL``
    ("Unable to register cuDNN factory", "computation placer already
    registered"), and the first device query logs "failed call to cuInit" on
    a machine without a GPU: lines on a CPU that would bury a command's
    one-line errors and read as a failure.
    Only for the commands (:func:`started_as_command`), only while TensorFlow
    is first imported, and only when the user has not asked for TensorFlow's
    logs (``TF_CPP_MIN_LOG_LEVEL`` below 2). Python exceptions raised
    meanwhile are printed after stderr is back.
    """
    level = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0")
    if not level.isdigit() or int(level) < 2:
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (some embedded interpreters)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def use_legacy_keras(quiet: bool = False) -> None:
    """Makes ``tf.keras`` Keras 2 for this process and the processes it starts.

    ``quiet`` (a command's start-up, see :func:`started_as_command`): TensorFlow's
    C++ log level defaults to 2 (warnings and errors only, for this process and
    its children) and its start-up lines are dropped while it is imported.

    Raises ImportError, in one line that says what to do, when that cannot be
    done any more: TensorFlow >= 2.16 already imported without the switch
    (its ``tf.keras.optimizers`` is then bound to Keras 3 while ``tf.keras``
    resolves to tf-keras, a mix on which Larq fails), or ``tf.keras`` is
    Keras 3 because the switch was set off.
    """
    loaded = sys.modules.get("tensorflow")
    if (loaded is not None and os.environ.get(LEGACY_KERAS) not in LEGACY_ON
            and version_tuple(loaded.__version__) >= (2, 16)):
        raise ImportError(
            f"tensorflow {loaded.__version__} was imported before lcr_larq without "
            f"{LEGACY_KERAS}=1: import lcr_larq first, or set {LEGACY_KERAS}=1 "
            "before Python starts"
        )
    if importlib.util.find_spec("tf_keras") is not None:
        # Only where tf-keras is installed: TensorFlow 2.15 would look for it too.
        os.environ.setdefault(LEGACY_KERAS, "1")
    if quiet:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if loaded is None:
        with _quiet_native_start_up() if quiet else contextlib.nullcontext():
            import tensorflow

            if quiet:
                # The first device query loads the CUDA platform, which on a
                # machine without a GPU logs "failed call to cuInit" as an error
                # past TF_CPP_MIN_LOG_LEVEL=2: made here, while stderr is quiet.
                tensorflow.config.list_physical_devices("GPU")
    version = tf_keras_version()
    if version_tuple(version) >= (3,):
        now = os.environ.get(LEGACY_KERAS)
        raise ImportError(
            f"lcr-larq needs Keras 2, but tf.keras is Keras {version}: "
            f"`pip install tf-keras` matching your TensorFlow and set {LEGACY_KERAS}=1"
            + (f" (not {now!r})" if now is not None else "") + " before Python starts"
        )


def compiling_with_xla() -> bool:
    """Whether the ops being made now are compiled by XLA (``jit_compile=True``).

    TensorFlow has no public test for it: ``tf.function(jit_compile=True)``
    traces its body inside an XLA control-flow context, which tf-keras'
    ``BatchNormalization`` looks up the same way (to leave out its fused
    moving-average update), through TensorFlow's private
    ``control_flow_util``. This is the one place that relies on it.

    Example:
        >>> import tensorflow as tf
        >>> compiling_with_xla()
        False
        >>> bool(tf.function(lambda: tf.constant(compiling_with_xla()), jit_compile=True)())
        True
    """
    import tensorflow as tf
    from tensorflow.python.ops import control_flow_util

    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


def inferring_output_signature() -> bool:
    """Whether the ops being made now are tf-keras' trace of a layer's ``call``
    for the shape and dtype of its output, not a step that runs.

    Calling a layer on Keras tensors (building a functional model, loading
    one) runs its ``call`` once in a scratch graph named
    ``<layer name>_scratch_graph`` (tf-keras ``Layer._infer_output_signature``)
    and keeps only the outputs' shapes and dtypes: the losses and metric
    updates made there are dropped. tf-keras has no public test for it, so
    this looks for that graph, also from inside a ``tf.cond`` branch. If a
    later tf-keras names it otherwise, the answer is False and the layer
    traces all of its ``call`` there, as before.

    Example:
        >>> import tensorflow as tf
        >>> seen = []
        >>> class Probe(tf.keras.layers.Layer):
        ...     def call(self, x):
        ...         seen.append(inferring_output_signature())
        ...         return x
        >>> model = tf.keras.Sequential([tf.keras.Input((2,)), Probe()])
        >>> _ = model(tf.zeros((1, 2)))
        >>> seen
        [True, False]
    """
    import tensorflow as tf

    graph = tf.compat.v1.get_default_graph()
    while graph is not None:
        if getattr(graph, "name", "").endswith("_scratch_graph"):
            return True
        graph = getattr(graph, "outer_graph", None)
    return False


def version_tuple(version: str) -> tuple[int, ...]:
    """(major, minor) of a version string: ``version_tuple("2.19.1") == (2, 19)``."""
    return tuple(int(part) for part in version.split(".")[:2] if part.isdigit())


def import_keras_tuner() -> ModuleType:
    """``keras_tuner``, working on the same Keras 2 as ``tf.keras``.

    Keras Tuner 1.4 chooses its Keras by ``import keras``
    (``keras_tuner/src/backend/config.py``) and, when that is Keras 3, takes
    tf-keras models for foreign objects ("Expected the model-building function
    ... to return a valid Keras Model instance"). With TensorFlow >= 2.16 the
    ``keras`` package is Keras 3 whatever ``TF_USE_LEGACY_KERAS`` says, so
    ``keras`` names tf-keras while Keras Tuner loads, and the real ``keras``
    (if any) is put back afterwards. Keras Tuner offers no public switch for
    this. Where ``tf.keras`` is not tf-keras (TensorFlow 2.15 and its
    ``keras`` 2.15) nothing is changed. Import lcr_larq before keras_tuner:
    a Keras Tuner already imported on Keras 3 stays so.
    """
    if "keras_tuner" in sys.modules:
        return sys.modules["keras_tuner"]
    import tensorflow as tf

    try:
        import tf_keras
    except ImportError:
        tf_keras = None
    if tf_keras is None or tf.keras.Model is not tf_keras.Model:
        return importlib.import_module("keras_tuner")
    missing = object()
    real_keras = sys.modules.get("keras", missing)
    sys.modules["keras"] = tf_keras
    try:
        return importlib.import_module("keras_tuner")
    finally:
        if real_keras is missing:
            del sys.modules["keras"]
        else:
            sys.modules["keras"] = real_keras

import contextlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    tf.keras.utils.set_random_seed(1234)
    yield
    tf.keras.backend.clear_session()


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def benchmark_script():
    """Loads ``benchmarks/<name>.py`` by path: the benchmarks are scripts beside
    the project, not an installed package."""
    import importlib.util

    folder = os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks")

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, os.path.join(folder, f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@contextlib.contextmanager
def tiny_resnet_model():
    """``--model resnet8``: the CIFAR ResNet with one block per stage and 8,
    16, 32 channels, a few times quicker to build and trace than ResNet-20."""
    from lcr_larq.models import MODELS, resnet_cifar

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(resnet_cifar.DEPTHS, 8, ((8, 1), (16, 1), (32, 1)))
        patch.setitem(
            MODELS, "resnet8",
            lambda shape, classes, *options: resnet_cifar.resnet_cifar(8, shape, classes, *options),
        )
        yield


@pytest.fixture
def tiny_resnet():
    with tiny_resnet_model():
        yield


@pytest.fixture(scope="module")
def tiny_resnet_module():
    """:func:`tiny_resnet` for every test and fixture of a module."""
    with tiny_resnet_model():
        yield

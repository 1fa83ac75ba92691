import os


def _import_lcr_larq_quietly() -> None:
    """``import lcr_larq`` (before TensorFlow: tf.keras must be Keras 2), its native
    start-up lines (TensorFlow's CUDA plugins) kept off the suite's output, as the
    commands keep them off theirs; the tests' own processes show theirs."""
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import lcr_larq  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


_import_lcr_larq_quietly()

# isort: split
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from helpers import RUN_SETTINGS  # noqa: E402

from lcr_larq.data import tfds as tfds_source  # noqa: E402
from lcr_larq.training import TrainConfig, run  # noqa: E402


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


@pytest.fixture
def tfds_mocked(monkeypatch):
    """For tests under ``tfds.testing.mock_data``: the mocked datasets count as
    prepared on disk (nothing is downloaded, no network is asked)."""
    monkeypatch.setattr(tfds_source, "is_prepared", lambda builder: True)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A run directory as ``lcr-train`` writes it (helpers.RUN_SETTINGS), made once
    per test process by the real producer, :func:`lcr_larq.training.run`: what the
    evaluate, diagnose, attack and export tests read."""
    path = tmp_path_factory.getbasetemp() / "trained_run"
    tf.keras.utils.set_random_seed(0)
    run(TrainConfig(**RUN_SETTINGS, output_dir=str(path)))
    tf.keras.backend.clear_session()
    return path

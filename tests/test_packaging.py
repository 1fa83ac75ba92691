"""The distribution as a user gets it: a wheel, installed into a fresh virtual environment.

Installing TensorFlow into a fresh environment takes minutes, so this runs only with
``LCR_PACKAGING_TEST=1`` (``.ci/run`` sets it):

    LCR_PACKAGING_TEST=1 pytest -m packaging tests/test_packaging.py
"""

import ast
import configparser
import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("lcr_larq", "models")
INSTALL_TIMEOUT = 3600  # seconds: TensorFlow and the rest, into an empty environment

pytestmark = [
    pytest.mark.packaging,
    pytest.mark.skipif(
        os.environ.get("LCR_PACKAGING_TEST") != "1",
        reason="installs the wheel and TensorFlow into a fresh venv (minutes): "
        "set LCR_PACKAGING_TEST=1",
    ),
]


def source_version() -> str:
    """``__version__`` of lcr_larq/__init__.py, read without importing it."""
    tree = ast.parse(open(os.path.join(ROOT, "lcr_larq", "__init__.py"), encoding="utf-8").read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == "__version__":
            return node.value.value
    raise AssertionError("lcr_larq/__init__.py sets no __version__")


def source_modules() -> set[str]:
    """Every module file of the packages in the checkout, as a wheel names it."""
    found = set()
    for package in PACKAGES:
        for folder, _, files in os.walk(os.path.join(ROOT, package)):
            found |= {os.path.relpath(os.path.join(folder, f), ROOT).replace(os.sep, "/")
                      for f in files if f.endswith(".py")}
    return found


def commands() -> list[str]:
    """The commands as setup.py makes them: the public modules of lcr_larq/cli/."""
    folder = os.path.join(ROOT, "lcr_larq", "cli")
    return sorted(f[:-3] for f in os.listdir(folder) if f.endswith(".py") and not f.startswith("_"))


def clean_environment() -> dict[str, str]:
    """This process's environment without PYTHONPATH: nothing of the checkout
    (its code, the egg-info of an editable install) may be seen as installed."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def run(argv, cwd, timeout=INSTALL_TIMEOUT) -> subprocess.CompletedProcess:
    """Runs ``argv`` in ``cwd`` (outside the checkout) with :func:`clean_environment`."""
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, env=clean_environment(),
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, argv))}\n{proc.stdout[-2000:]}\n" \
                                 f"{proc.stderr[-2000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> str:
    """The wheel of a copy of the checkout (pip builds in the source tree)."""
    work = tmp_path_factory.mktemp("build")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "runs", "site", "build", "dist", "*.egg-info", "__pycache__"))
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", work / "dist",
         source], cwd=work)
    (path,) = (work / "dist").iterdir()
    return str(path)


def test_the_wheel_holds_both_packages_the_scripts_and_one_version(wheel):
    version = source_version()
    assert os.path.basename(wheel) == f"lcr_larq-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = f"lcr_larq-{version}.dist-info"
        metadata = archive.read(f"{info}/METADATA").decode()
        entry_points = configparser.ConfigParser()
        entry_points.read_string(archive.read(f"{info}/entry_points.txt").decode())
    assert f"Version: {version}\n" in metadata
    missing = source_modules() - names
    assert not missing, sorted(missing)
    # lcr_larq and models alone at the top: train.py is a script of the checkout, the
    # installed command is lcr-train
    top = {name.split("/")[0] for name in names if not name.startswith(info)}
    assert top == set(PACKAGES), top
    assert dict(entry_points["console_scripts"]) == {
        f"lcr-{name}": f"lcr_larq.cli.{name}:main" for name in commands()}


def test_the_installed_wheel_trains_and_exports_outside_the_checkout(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    run([sys.executable, "-m", "venv", env_dir], cwd=tmp_path)
    bin_dir = env_dir / "bin"
    run([bin_dir / "python", "-m", "pip", "install", "--quiet", wheel], cwd=tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    where = run([bin_dir / "python", "-c", "import json, lcr_larq, models; print(json.dumps("
                 "[lcr_larq.__file__, models.__file__, lcr_larq.__version__]))"],
                cwd=work, timeout=600)
    library, architectures, version = json.loads(where.stdout.strip().splitlines()[-1])
    assert library.startswith(str(env_dir)) and architectures.startswith(str(env_dir))
    assert version == source_version()
    assert all((bin_dir / f"lcr-{name}").exists() for name in commands())

    run([bin_dir / "lcr-train", "--epochs", "1", "--steps-per-epoch", "2", "--output-dir",
         "run", "--verbose", "0"], cwd=work, timeout=1200)
    results = json.loads((work / "run" / "results.json").read_text())
    assert results["epochs"] == 1 and 0.0 <= results["test_accuracy"] <= 1.0
    run([bin_dir / "lcr-export", "--model-dir", "run"], cwd=work, timeout=1200)
    report = json.loads((work / "run" / "export.json").read_text())
    assert report["lcr_trace"] == []  # nothing of LCR in the deployed flatbuffer
    assert report["lce_bconv_ops"] == report["binary_conv_layers"] > 0
    assert (work / "run" / "bnn_lce.tflite").stat().st_size == report["binary_bytes"]

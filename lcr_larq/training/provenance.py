"""Where and with what a run was trained: what a reader of a study that ran on
many machines needs to trust its numbers.

:func:`describe` is what ``results.json`` records under ``provenance``:

* ``packages`` — the versions of the packages that compute (TensorFlow,
  tf-keras, Larq, Larq-Zoo, Keras Tuner, NumPy…) and of Python;
* ``project`` — this project's version, and the git commit (with whether the
  checkout had uncommitted changes) when it runs from a git checkout;
* ``host``, ``cpu`` (model name and the vector extensions that change which
  kernels oneDNN picks), ``gpus`` (the names of the GPUs TensorFlow sees);
* ``worker`` — which process trained: host and pid, and the scheduler's names
  for it (Slurm job and array task, the index of a Kubernetes indexed Job,
  the visible GPUs);
* ``finished_at`` — when the run ended (UTC); ``results.json`` has the
  seconds it took.

A seed's weights differ between CPUs and between GPUs, so the study report
says when its cells ran on different hardware.

Example:
    >>> vector_extensions(["avx2", "avx512f", "avx512_bf16"])
    'avx2 avx512f avx512_bf16; without avx512_fp16 amx_bf16'
    >>> worker_name({"host": "node7", "pid": 42, "SLURM_ARRAY_JOB_ID": "900",
    ...              "SLURM_ARRAY_TASK_ID": "3"})
    'node7:42 (Slurm array 900_3)'
"""

from __future__ import annotations

import datetime
import functools
import importlib.metadata
import os
import platform
import socket
import subprocess
import sys

import tensorflow as tf

import lcr_larq

__all__ = [
    "PACKAGES",
    "SCHEDULER_VARIABLES",
    "SIXTEEN_BIT_FLAGS",
    "VECTOR_FLAGS",
    "cpu",
    "cpu_name_and_flags",
    "describe",
    "gpus",
    "hardware",
    "packages",
    "project",
    "read_cpuinfo",
    "vector_extensions",
    "worker",
    "worker_name",
]

#: Packages whose versions change what a run computes.
PACKAGES = ("tensorflow", "tf-keras", "larq", "larq-zoo", "keras-tuner", "numpy", "scipy",
            "tensorflow-datasets")
#: Vector extensions that change which kernels oneDNN picks, most capable last
#: (Linux's names in /proc/cpuinfo).
VECTOR_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile",
                "amx_bf16")
#: The extensions 16-bit math needs, named when absent: bfloat16 arithmetic
#: (AVX-512 BF16, AMX-BF16) and float16 arithmetic (AVX-512 FP16), without
#: which TensorFlow's float16 convolutions fall back to slow kernels.
SIXTEEN_BIT_FLAGS = ("avx512_bf16", "avx512_fp16", "amx_bf16")
#: Environment variables by which a scheduler names a worker.
SCHEDULER_VARIABLES = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID",
                       "SLURM_PROCID", "JOB_COMPLETION_INDEX", "CUDA_VISIBLE_DEVICES")


def cpu_name_and_flags(cpuinfo: str) -> tuple[str, list[str]]:
    """The model name and the :data:`VECTOR_FLAGS` present in ``/proc/cpuinfo`` text."""
    name, flags = platform.processor() or platform.machine(), set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            name = value.strip()
        elif key.strip() == "flags":
            flags.update(value.split())
    return name, [flag for flag in VECTOR_FLAGS if flag in flags]


def vector_extensions(flags: list[str]) -> str:
    """The :data:`VECTOR_FLAGS` present, then the :data:`SIXTEEN_BIT_FLAGS`
    absent ("without …")."""
    missing = [flag for flag in SIXTEEN_BIT_FLAGS if flag not in flags]
    parts = [" ".join(flags)] if flags else []
    if missing:
        parts.append(f"without {' '.join(missing)}")
    return "; ".join(parts)


def read_cpuinfo() -> str:
    """``/proc/cpuinfo`` ("" where there is none: not Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return ""


@functools.lru_cache(maxsize=1)
def cpu() -> dict:
    """``{"name", "extensions"}`` of this machine's CPU (extensions None
    where /proc/cpuinfo is missing)."""
    cpuinfo = read_cpuinfo()
    name, flags = cpu_name_and_flags(cpuinfo)
    return {"name": name, "extensions": vector_extensions(flags) if cpuinfo else None}


@functools.lru_cache(maxsize=1)
def gpus() -> list[str]:
    """The names of the GPUs TensorFlow sees (``[]`` on a CPU)."""
    names = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        names.append(str(details.get("device_name") or device.name))
    return names


@functools.lru_cache(maxsize=1)
def packages() -> dict[str, str | None]:
    """The installed version of each of :data:`PACKAGES` (None when not
    installed) and of Python."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@functools.lru_cache(maxsize=1)
def project() -> dict:
    """``{"version", "commit", "dirty"}``: this project's version and, when the
    package is a file of a git checkout (not an installed copy), its commit
    and whether the checkout's tracked files had changes."""
    here = os.path.dirname(os.path.abspath(lcr_larq.__file__))
    out = {"version": lcr_larq.__version__, "commit": None, "dirty": None}

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", here, *args], capture_output=True, text=True,
                              timeout=10)

    try:
        # Tracked: an installed copy inside some other repository is not its checkout.
        if git("ls-files", "--error-unmatch", "__init__.py").returncode != 0:
            return out
        commit = git("rev-parse", "HEAD")
        if commit.returncode == 0:
            out["commit"] = commit.stdout.strip()
            out["dirty"] = git("diff", "--quiet", "HEAD").returncode == 1
    except (OSError, subprocess.SubprocessError):  # no git
        pass
    return out


def worker() -> dict:
    """This process: ``host``, ``pid``, the :data:`SCHEDULER_VARIABLES` that
    are set, and ``name`` (:func:`worker_name`)."""
    out: dict = {"host": socket.gethostname(), "pid": os.getpid()}
    out.update({k: os.environ[k] for k in SCHEDULER_VARIABLES if os.environ.get(k)})
    out["name"] = worker_name(out)
    return out


def worker_name(identity: dict) -> str:
    """``host:pid``, with the scheduler's name for the process where it has one."""
    name = f"{identity['host']}:{identity['pid']}"
    if identity.get("SLURM_ARRAY_JOB_ID"):
        return (f"{name} (Slurm array {identity['SLURM_ARRAY_JOB_ID']}_"
                f"{identity.get('SLURM_ARRAY_TASK_ID', '?')})")
    if identity.get("SLURM_JOB_ID"):
        return f"{name} (Slurm job {identity['SLURM_JOB_ID']})"
    if identity.get("JOB_COMPLETION_INDEX"):
        return f"{name} (Job index {identity['JOB_COMPLETION_INDEX']})"
    return name


def describe() -> dict:
    """Everything above, for ``results.json``."""
    return {
        "packages": packages(),
        "project": project(),
        "host": socket.gethostname(),
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
        "executable": sys.executable,
        "cpu": cpu(),
        "gpus": gpus(),
        "worker": worker(),
        "finished_at": datetime.datetime.now(datetime.UTC).isoformat(
            timespec="seconds"),
    }


def hardware(provenance: dict | None) -> str:
    """The CPU and GPUs of a run's ``provenance`` in a few words ("unknown"
    for a run that recorded none).

    Example:
        >>> hardware({"cpu": {"name": "AMD EPYC 7B13"}, "gpus": []})
        'AMD EPYC 7B13, no GPU'
        >>> hardware({"cpu": {"name": "Xeon"}, "gpus": ["NVIDIA A100", "NVIDIA A100"]})
        'Xeon, 2 × NVIDIA A100'
        >>> hardware(None)
        'unknown'
    """
    if not provenance:
        return "unknown"
    name = (provenance.get("cpu") or {}).get("name") or "unknown CPU"
    devices = provenance.get("gpus") or []
    if not devices:
        return f"{name}, no GPU"
    counted = {d: devices.count(d) for d in dict.fromkeys(devices)}
    return name + ", " + ", ".join(f"{n} × {d}" if n > 1 else d for d, n in counted.items())

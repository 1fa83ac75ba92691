"""Helpers of the benchmark scripts (a folder of scripts, not an installed package)."""

import importlib.util
import os

_PATH = os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks", "machine.py")
_SPEC = importlib.util.spec_from_file_location("benchmark_machine", _PATH)
machine = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(machine)
cpu_name_and_flags = machine.cpu_name_and_flags

CPUINFO = """\
processor\t: 0
model name\t: Example CPU @ 2.10GHz
flags\t\t: fpu sse2 avx2 fma avx512f avx512bw amx_tile amx_bf16
processor\t: 1
model name\t: Example CPU @ 2.10GHz
flags\t\t: fpu sse2 avx2 fma avx512f avx512bw amx_tile amx_bf16
"""


def test_cpu_name_and_flags_reads_model_name_and_vector_extensions():
    name, flags = cpu_name_and_flags(CPUINFO)
    assert name == "Example CPU @ 2.10GHz"
    # Only the listed extensions, in the order of VECTOR_FLAGS, each once.
    assert flags == ["avx2", "avx512f", "amx_tile"]


def test_cpu_name_and_flags_without_cpuinfo_fields():
    name, flags = cpu_name_and_flags("processor\t: 0\n")
    assert name  # falls back to the platform's own name
    assert flags == []

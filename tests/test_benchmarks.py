"""Helpers of the benchmark scripts (a folder of scripts, not an installed package)."""

CPUINFO = """\
processor\t: 0
model name\t: Example CPU @ 2.10GHz
flags\t\t: fpu sse2 avx2 fma avx512f avx512bw amx_tile amx_bf16
processor\t: 1
model name\t: Example CPU @ 2.10GHz
flags\t\t: fpu sse2 avx2 fma avx512f avx512bw amx_tile amx_bf16
"""


def test_cpu_name_and_flags_reads_model_name_and_vector_extensions(benchmark_script):
    name, flags = benchmark_script("machine").cpu_name_and_flags(CPUINFO)
    assert name == "Example CPU @ 2.10GHz"
    # Only the listed extensions, in the order of VECTOR_FLAGS, each once.
    assert flags == ["avx2", "avx512f", "amx_tile"]


def test_cpu_name_and_flags_without_cpuinfo_fields(benchmark_script):
    name, flags = benchmark_script("machine").cpu_name_and_flags("processor\t: 0\n")
    assert name  # falls back to the platform's own name
    assert flags == []

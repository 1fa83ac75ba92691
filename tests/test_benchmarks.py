"""Helpers of the benchmark scripts (a folder of scripts, not an installed package)."""

import pytest
import tensorflow as tf

import lcr_larq

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
    assert flags == ["avx2", "avx512f", "amx_tile", "amx_bf16"]


def test_vector_extensions_name_the_16_bit_units_that_are_missing(benchmark_script):
    machine = benchmark_script("machine")
    _, flags = machine.cpu_name_and_flags(CPUINFO)
    assert machine.vector_extensions(flags) == (
        "avx2 avx512f amx_tile amx_bf16; without avx512_bf16 avx512_fp16")
    everything = " ".join(machine.VECTOR_FLAGS)
    _, flags = machine.cpu_name_and_flags(f"flags\t: {everything}\n")
    assert machine.vector_extensions(flags) == everything
    assert machine.vector_extensions([]) == "without avx512_bf16 avx512_fp16 amx_bf16"


def test_cpu_name_and_flags_without_cpuinfo_fields(benchmark_script):
    name, flags = benchmark_script("machine").cpu_name_and_flags("processor\t: 0\n")
    assert name  # falls back to the platform's own name
    assert flags == []


def test_lcr_overhead_computations_put_float32_without_xla_first(benchmark_script):
    overhead = benchmark_script("lcr_overhead")

    def computations(*argv):
        return overhead._computations(overhead._parser().parse_args(argv))

    assert computations() == [("off", False)]
    assert computations("--mixed-precision", "bfloat16", "--jit-compile") == [
        ("off", False), ("bfloat16", False), ("bfloat16", True)]
    assert computations("--mixed-precision", "float16,off") == [("off", False), ("float16", False)]
    assert computations("--mixed-precision", "off,bfloat16", "--jit-compile") == [
        ("off", False), ("off", True), ("bfloat16", False), ("bfloat16", True)]
    for argv in (["--mixed-precision", "float8"], ["--jit-compile", "yes"]):
        with pytest.raises(SystemExit):
            overhead._parser().parse_args(argv)


def test_lcr_overhead_rows_compare_each_computation_with_float32(benchmark_script):
    """A row's ratios from the timings of two processes, by hand: the median
    over processes of each process's ratio."""
    overhead = benchmark_script("lcr_overhead")
    lcr = "lcr_pi5_s32_e2"
    timings = [  # seconds per step of two processes
        {"off/plain": 1.0, f"off/{lcr}": 1.2, "bfloat16+xla/plain": 0.5,
         f"bfloat16+xla/{lcr}": 0.7},
        {"off/plain": 2.0, f"off/{lcr}": 2.2, "bfloat16+xla/plain": 0.8,
         f"bfloat16+xla/{lcr}": 1.1},
    ]
    runs = [{"medians": t, "cores": dict.fromkeys(t, 2.0)} for t in timings]
    row = overhead._row("resnet8", (5, 32, 2), lcr, runs, (1e-3, 1e-2), {},
                        ("bfloat16", True))
    assert row["mixed_precision"] == "bfloat16" and row["jit_compile"] is True
    assert row["overhead_ratios"] == [1.4, 1.375]
    assert row["overhead_ratio"] == pytest.approx((0.7 / 0.5 + 1.1 / 0.8) / 2, abs=1e-4)
    assert row["plain_vs_float32"] == pytest.approx((0.5 / 1.0 + 0.8 / 2.0) / 2, abs=1e-4)
    assert row["lcr_vs_float32"] == pytest.approx((0.7 / 1.2 + 1.1 / 2.2) / 2, abs=1e-4)
    assert row["step_seconds_plain"] == pytest.approx(0.65)
    reference = overhead._row("resnet8", (5, 32, 2), lcr, runs, (1e-3, 1e-2), {})
    assert reference["plain_vs_float32"] == reference["lcr_vs_float32"] == 1.0


def test_lcr_overhead_builds_each_computation(benchmark_script):
    """The variants of a computation are built under its policy, with loss
    scaling for float16 and XLA when asked; timed side by side in one loop."""
    overhead = benchmark_script("lcr_overhead")
    lcr = {"lcr_lambda": 4.0, "power_iterations": 1, "lcr_samples": 4, "lcr_every": 1}
    float16 = overhead.make_models("resnet8", (8, 8, 3), 4, lcr, "float16", True)
    assert float16.jit_compile is True
    assert isinstance(float16.optimizer, tf.keras.mixed_precision.LossScaleOptimizer)
    assert {b.output.dtype.name for b in lcr_larq.find_blocks(lcr_larq.strip_lcr(float16))} == {
        "float16"}
    assert tf.keras.mixed_precision.global_policy().name == "float32"
    medians, cores, first, _ = overhead.measure(
        "resnet8", (8, 8, 3), 4, {"lcr": lcr}, warmup=1, steps=1, repeats=2, instances=1,
        computations=[("off", False), ("bfloat16", False)])
    assert set(medians) == set(cores) == {"off/plain", "off/lcr", "bfloat16/plain",
                                          "bfloat16/lcr"}
    assert all(seconds > 0 for seconds in medians.values())
    assert first["lcr"].compute_dtype == "float32"  # the first computation's models

#!/usr/bin/env python
"""Training-step time of a BNN with LCR divided by the same BNN without it.

Both models are built in one process (same weights, same synthetic batch) and
stepped the way ``model.fit`` steps them (Keras' train function on a
``tf.data`` iterator). They are timed in turns — A B A B … — so machine noise
hits both alike; warm-up steps are excluded and the median over the turns is
taken. Two builds of one model step a few % apart, even in one process (the
executor's schedule, memory placement), so each variant is built
``--instances`` times (2) and its time is the mean of its builds'; and the
timing is repeated in ``--processes`` fresh processes, ``overhead_ratio``
being the median of their ratios. Peak memory is
measured per variant in child processes of its own (``--memory-runs`` each,
median): TensorFlow's tensor peak (what ``memory_ratio`` compares) and the max
RSS. The cores column is the process's CPU time over wall time for each
variant (2 on a busy 2-core machine: then added work is added time). The σ
columns give the relative error of the power-iteration estimate against exact
SVD, over every block's cross matrix on both paths (of the float32 model).

``--mixed-precision`` and ``--jit-compile`` add computations:
every variant is also built under each mixed-precision policy and with each
XLA setting, and all of them are timed in the same turns of the same
processes. Each row gives, under its computation, the LCR/plain ratio and the
plain and LCR step times against float32 without XLA (always measured: it is
the denominator). The machine line names the CPU's vector extensions, which
decide what 16-bit math costs (AVX-512 BF16 or AMX for bfloat16, AVX-512 FP16
for float16; TensorFlow's float16 convolutions fall back to slow kernels
without it).

    python benchmarks/lcr_overhead.py                       # table
    python benchmarks/lcr_overhead.py --json                # one JSON line
    python benchmarks/lcr_overhead.py --models resnet20,resnet18 --power-iterations 1,5,20
    python benchmarks/lcr_overhead.py --samples 16,32,128      # samples L_lip is estimated on
    python benchmarks/lcr_overhead.py --every 1,2,4            # LCR on every k-th step
    python benchmarks/lcr_overhead.py --mixed-precision off,bfloat16 --jit-compile
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import lcr_larq  # noqa: E402, F401  (before TensorFlow: tf.keras must be Keras 2)

# isort: split
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.machine import describe_machine  # noqa: E402
from lcr_larq import optimizers, spectral  # noqa: E402
from models import build_model  # noqa: E402

CE = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
#: The computation every other is compared with: float32, no XLA.
REFERENCE = ("off", False)


def computation_label(mixed_precision: str, jit_compile: bool) -> str:
    """``"bfloat16+xla"``, ``"off"``: a computation as a key."""
    return mixed_precision + ("+xla" if jit_compile else "")


def make_models(name: str, shape, batch: int, lcr: dict | None, mixed_precision: str = "off",
                jit_compile: bool = False):
    """The compiled model of one variant under one computation (a
    ``--mixed-precision`` choice, XLA or not); weights are seeded alike."""
    tf.keras.utils.set_random_seed(0)
    policy = optimizers.keras_policy(mixed_precision)
    with optimizers.dtype_policy(policy):
        bnn = build_model(name, shape, 10)
        model = lcr_larq.attach_lcr(bnn, **lcr) if lcr else bnn
    optimizer = optimizers.for_policy(tf.keras.optimizers.SGD(0.01, momentum=0.9), policy)
    model.compile(optimizer=optimizer, loss=CE, jit_compile=jit_compile)
    return model


def batch_data(shape, batch: int):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(batch, *shape)).astype(np.float32))
    y = tf.constant(rng.integers(0, 10, size=batch))
    return x, y


def step_function(model, x, y):
    """One training step as ``model.fit`` runs it: Keras' train function on a
    ``tf.data`` iterator whose batch size is unknown to the graph."""
    batch = int(x.shape[0])
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).repeat()
    iterator = iter(data)
    train = model.make_train_function()

    def step():
        logs = train(iterator)
        return float(logs["loss"])  # waits for the step to finish

    return step


def measure(name, shape, batch, lcr_settings, warmup, steps, repeats, instances=2,
            computations=(REFERENCE,)):
    """Median seconds per step of each variant under each computation, keyed
    ``"computation/variant"``, timed in turns (A B C A B C …), and the median
    cores each kept busy (process CPU time / wall time): near the machine's
    core count, any added work shows up as added time.

    Each variant is built ``instances`` times (same weights) and its time is
    the mean of its instances' medians: two builds of one model in one
    process step a few % apart (the executor's schedule, memory placement),
    as much as LCR's cost at the defaults. The models returned are the first
    builds under the first computation."""
    x, y = batch_data(shape, batch)
    settings = {"plain": None, **lcr_settings}
    variants = {f"{computation_label(*c)}/{label}": (c, lcr)
                for c in computations for label, lcr in settings.items()}
    models = {(key, i): make_models(name, shape, batch, lcr, *c)
              for i in range(max(1, instances)) for key, (c, lcr) in variants.items()}
    steppers = {key: step_function(model, x, y) for key, model in models.items()}
    for step in steppers.values():
        for _ in range(warmup):
            step()
    times = {key: [] for key in steppers}
    cores = {key: [] for key in steppers}
    for _ in range(repeats):
        for key, step in steppers.items():
            start, cpu = time.perf_counter(), time.process_time()
            for _ in range(steps):
                step()
            wall = time.perf_counter() - start
            times[key].append(wall / steps)
            cores[key].append((time.process_time() - cpu) / wall)

    def per_variant(values: dict) -> dict:
        return {label: statistics.mean(statistics.median(v) for (lab, _), v in values.items()
                                       if lab == label) for label in variants}

    first_computation = computation_label(*computations[0])
    first = {label: models[(f"{first_computation}/{label}", 0)] for label in settings}
    return per_variant(times), per_variant(cores), first, (x, y)


def sigma_errors(model, x, iterations: list[int]) -> dict[int, tuple[float, float]]:
    """Relative error of the power-iteration σ against exact SVD, per setting.

    Every block's cross matrix on both paths (the features ``model`` feeds its
    LCR layer in a training step) is compared with ``numpy.linalg.svd``;
    returns ``{iterations: (median, max)}`` over all of them.
    """
    lcr = lcr_larq.lcr_layer(model)
    inputs = tf.keras.Model(model.inputs, lcr.input)(x, training=True)
    _, binary, reference = lcr.split_inputs(inputs)
    samples = lcr.lcr_samples or int(x.shape[0])
    pairs = [(a[:samples], b[:samples]) for a, b in binary] + reference
    matrices = [spectral.cross_matrix(a, b) for a, b in pairs]
    exact = np.concatenate([np.linalg.svd(m.numpy(), compute_uv=False)[:, 0] for m in matrices])
    errors = {}
    for n in iterations:
        sigma = np.concatenate([spectral.top_singular_value(m, n)[0].numpy() for m in matrices])
        relative = np.abs(sigma - exact) / np.maximum(exact, 1e-12)
        errors[n] = (float(np.median(relative)), float(relative.max()))
    return errors


def _run_child(code: str, **env) -> str:
    """The last line a fresh Python process running ``code`` prints (cwd: the
    repository, so ``benchmarks.lcr_overhead`` imports)."""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True,
        env={**os.environ, **env},
    )
    return out.stdout.strip().splitlines()[-1]


def memory_report(name, shape, batch, settings, steps, computation=REFERENCE) -> tuple[int, int]:
    """``(tensor peak, max RSS)`` in bytes of this process after training
    ``steps`` steps of one variant under one computation (run it in a fresh
    process: both figures are process-wide maxima)."""
    import resource

    model = make_models(name, shape, batch, settings, *computation)
    step = step_function(model, *batch_data(shape, batch))
    for _ in range(steps):
        step()
    peak = tf.config.experimental.get_memory_info("CPU:0")["peak"]
    return peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_memory_mb(name, shape, batch, settings, steps,
                   computation=REFERENCE) -> tuple[float, float]:
    """``(tensor peak, max RSS)`` in MiB of a child process training ``steps``
    steps of one variant (:func:`memory_report`).

    The tensor peak is TensorFlow's own count of the bytes its CPU allocator
    held at most (the BFC allocator, switched on in the child for it); the
    max RSS also holds the runtime, the graphs and freed-but-kept pages.
    """
    code = (
        "from benchmarks.lcr_overhead import memory_report;"
        f"print(*memory_report({name!r}, {tuple(shape)!r}, {batch}, {settings!r}, {steps}, "
        f"{tuple(computation)!r}))"
    )
    peak, rss = (int(v) for v in _run_child(code, TF_CPU_ALLOCATOR_USE_BFC="true").split())
    return peak / 2**20, rss / 2**20


def timing_report(name, shape, batch, settings, warmup, steps, repeats, errors_for=None,
                  instances=2, computations=(REFERENCE,)):
    """:func:`measure`'s figures as ``{"medians": {"computation/variant":
    seconds}, "cores": {"computation/variant": cores busy}}``, plus
    ``"errors"``: :func:`sigma_errors` for the iteration counts ``errors_for``
    of each samples setting, on its first timed model (of the first
    computation) with LCR on every step (a scheduled one may be between its
    LCR steps), keyed ``"samples/iterations"`` (empty without ``errors_for``)."""
    computations = [tuple(c) for c in computations]
    medians, cores, variants, (x, _) = measure(
        name, shape, batch, settings, warmup, steps, repeats, instances, computations
    )
    errors = {}
    if errors_for:
        first = {}  # samples setting -> the first timed model of LCR on every step
        for label, setting in settings.items():
            if setting.get("lcr_every", lcr_larq.graph.DEFAULT_EVERY) == 1:
                first.setdefault(setting["lcr_samples"], variants[label])
        for setting in settings.values():
            if setting["lcr_samples"] not in first:
                first[setting["lcr_samples"]] = make_models(
                    name, shape, batch, {**setting, "lcr_every": 1}, *computations[0]
                )
        for samples, model in first.items():
            for n, error in sigma_errors(model, x, errors_for).items():
                errors[f"{samples}/{n}"] = error
    return {"medians": medians, "cores": cores, "errors": errors}


def timing_in_child(name, shape, batch, settings, warmup, steps, repeats, errors_for=None,
                    instances=2, computations=(REFERENCE,)):
    """:func:`timing_report` in a fresh process."""
    code = (
        "import json; from benchmarks.lcr_overhead import timing_report;"
        f"print(json.dumps(timing_report({name!r}, {tuple(shape)!r}, {batch}, {settings!r},"
        f" {warmup}, {steps}, {repeats}, {errors_for!r}, {instances}, "
        f"{[tuple(c) for c in computations]!r})))"
    )
    return json.loads(_run_child(code))


def _median_memory(name, shape, batch, settings, runs: int,
                   computation=REFERENCE) -> tuple[float, float]:
    """:func:`peak_memory_mb` of ``runs`` children, the median of each figure:
    the executor's schedule moves a single run's tensor peak by several %."""
    peaks, rsses = zip(*(peak_memory_mb(name, shape, batch, settings, 3, computation)
                         for _ in range(runs)))
    return statistics.median(peaks), statistics.median(rsses)


def _counts(minimum: int):
    """argparse type: a comma-separated list of integers ≥ ``minimum``."""

    def parse(text: str) -> list[int]:
        try:
            values = [int(n) for n in text.split(",")]
        except ValueError:
            values = []
        if not values or min(values) < minimum:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated integers >= {minimum}, got {text!r}"
            )
        return values

    return parse


def _words(options: dict):
    """argparse type: a comma-separated list of the keys of ``options``, as
    their values."""

    def parse(text: str) -> list:
        words = [word.strip().lower() for word in text.split(",")]
        if not words or any(word not in options for word in words):
            raise argparse.ArgumentTypeError(
                f"expected comma-separated values of {', '.join(options)}, got {text!r}"
            )
        return [options[word] for word in words]

    return parse


def _parser() -> argparse.ArgumentParser:
    """The command line of this script (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet20", help="comma-separated model names")
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--power-iterations", type=_counts(1), default=None,
                        help="comma-separated list; default: the library default only")
    parser.add_argument("--samples", type=_counts(0), default=None,
                        help="comma-separated --lcr-samples values; default: the library "
                        "default only (0: the whole batch)")
    parser.add_argument("--every", type=_counts(1), default=None,
                        help="comma-separated --lcr-every values (LCR on every k-th step); "
                        "default: the library default only")
    precisions = {name: name for name in optimizers.MIXED_PRECISION}
    parser.add_argument("--mixed-precision", type=_words(precisions), default=["off"],
                        help="comma-separated --mixed-precision choices (off, float16, "
                        "bfloat16) to time each variant under; off (float32) is always timed")
    parser.add_argument("--jit-compile", action="store_true",
                        help="each computation also compiled by XLA (jit_compile)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2,
                        help="steps per timed turn (raised to a multiple of every --every)")
    parser.add_argument("--repeats", type=int, default=15, help="turns per variant")
    parser.add_argument("--instances", type=int, default=2,
                        help="builds of each variant per process, timed in turns (mean)")
    parser.add_argument("--processes", type=int, default=3,
                        help="fresh processes the timing is repeated in (median ratio)")
    parser.add_argument("--memory", action="store_true", help="also measure peak memory")
    parser.add_argument("--memory-runs", type=int, default=3,
                        help="child processes per variant for the memory figures (median)")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    return parser


def _variants(iterations: list[int], samples: list[int], every: list[int]):
    """``(grid, settings)``: the ``(iterations, samples, every)`` of each LCR
    variant and its attach_lcr settings by label, in the same order."""
    grid = [(n, s, k) for k in every for s in samples for n in iterations]
    settings = {
        f"lcr_pi{n}_s{s}_e{k}": {"lcr_lambda": 4.0, "power_iterations": n, "lcr_samples": s,
                                 "lcr_every": k}
        for n, s, k in grid
    }
    return grid, settings


def _computations(args) -> list[tuple[str, bool]]:
    """``(mixed precision, XLA)`` of every computation asked for, float32
    without XLA first (the reference, always timed)."""
    xla = (False, True) if args.jit_compile else (False,)
    asked = [(precision, jit) for precision in args.mixed_precision for jit in xla]
    return [REFERENCE, *(c for c in dict.fromkeys(asked) if c != REFERENCE)]


def _model_rows(name: str, args, shape, grid, settings: dict, steps: int,
                iterations: list[int], computations=(REFERENCE,)) -> list[dict]:
    """The table's rows of one model: each variant's memory (with ``--memory``)
    and its timing in ``--processes`` children against the plain BNN, under
    every computation."""
    memory = {}
    if args.memory:
        memory = {
            computation_label(*c): {
                label: _median_memory(name, shape, args.batch_size, setting, args.memory_runs, c)
                for label, setting in {"plain": None, **settings}.items()
            }
            for c in computations
        }
    runs = [
        timing_in_child(name, shape, args.batch_size, settings, args.warmup, steps,
                        args.repeats, errors_for=iterations if p == 0 else None,
                        instances=args.instances, computations=computations)
        for p in range(max(1, args.processes))
    ]
    errors = runs[0]["errors"]
    return [_row(name, variant, label, runs, errors[f"{variant[1]}/{variant[0]}"],
                 memory.get(computation_label(*c), {}), c)
            for c in computations for variant, label in zip(grid, settings)]


def _row(name: str, variant, label: str, runs: list[dict], error, memory: dict,
         computation=REFERENCE) -> dict:
    """One variant's row under one computation: medians over the processes of
    its step time, its ratio to plain, the plain and LCR step times against
    float32 without XLA, and cores; the σ error; its memory figures (``None``
    without)."""
    n, s, k = variant
    here, reference = computation_label(*computation), computation_label(*REFERENCE)

    def seconds(run: dict, where: str, what: str) -> float:
        return run["medians"][f"{where}/{what}"]

    def median(figure) -> float:
        return statistics.median(figure(run) for run in runs)

    ratios = [seconds(run, here, label) / seconds(run, here, "plain") for run in runs]
    return {
        "model": name,
        "mixed_precision": computation[0],
        "jit_compile": computation[1],
        "power_iterations": n,
        "samples": s,
        "every": k,
        "step_seconds_plain": round(median(lambda run: seconds(run, here, "plain")), 4),
        "step_seconds_lcr": round(median(lambda run: seconds(run, here, label)), 4),
        "overhead_ratio": round(statistics.median(ratios), 4),
        "overhead_ratios": [round(r, 4) for r in ratios],
        "plain_vs_float32": round(median(
            lambda run: seconds(run, here, "plain") / seconds(run, reference, "plain")), 4),
        "lcr_vs_float32": round(median(
            lambda run: seconds(run, here, label) / seconds(run, reference, label)), 4),
        "cores_plain": round(median(lambda run: run["cores"][f"{here}/plain"]), 2),
        "cores_lcr": round(median(lambda run: run["cores"][f"{here}/{label}"]), 2),
        "sigma_error_median": float(f"{error[0]:.3g}"),
        "sigma_error_max": float(f"{error[1]:.3g}"),
        **_memory_fields(memory, label),
    }


def _memory_fields(memory: dict, label: str) -> dict:
    """The memory columns of a row: ``memory`` holds ``(tensor peak, max
    RSS)`` in MiB of ``"plain"`` and of ``label`` (every figure ``None``
    when it is empty)."""
    if not memory:
        return dict.fromkeys(("peak_mb_plain", "peak_mb_lcr", "memory_ratio", "rss_mb_plain",
                              "rss_mb_lcr", "rss_ratio"))
    (peak_plain, rss_plain), (peak, rss) = memory["plain"], memory[label]
    return {
        "peak_mb_plain": round(peak_plain, 1),
        "peak_mb_lcr": round(peak, 1),
        "memory_ratio": round(peak / peak_plain, 4),
        "rss_mb_plain": round(rss_plain, 1),
        "rss_mb_lcr": round(rss, 1),
        "rss_ratio": round(rss / rss_plain, 4),
    }


def _print_table(rows: list[dict], args, shape, steps: int) -> None:
    """The rows as a table under a line saying how they were measured and on what."""
    print(f"batch {args.batch_size}, input {shape}: median over {args.processes} processes of "
          f"the mean over {args.instances} builds of the median of {args.repeats}×{steps} "
          f"steps\n{describe_machine()}")
    print("compute: the layers' dtype (mixed precision: float32 variables, LCR's math and "
          "logits); plain×, LCR×: step time against float32 without XLA, measured alongside")
    print(f"{'model':10} {'compute':>8} {'XLA':>3} {'iters':>5} {'samp':>4} {'every':>5} "
          f"{'plain s':>8} {'LCR s':>8} "
          f"{'ratio':>6} {'per process':>20} {'plain×':>6} {'LCR×':>6} {'cores':>9} "
          f"{'σ err med':>9} {'σ err max':>9} "
          f"{'plain MB':>8} {'LCR MB':>8} {'ratio':>6} {'RSS MB':>6} {'LCR RSS':>7} {'ratio':>6}")
    for r in rows:
        mem = (f"{r['peak_mb_plain']:8.0f} {r['peak_mb_lcr']:8.0f} {r['memory_ratio']:6.3f} "
               f"{r['rss_mb_plain']:6.0f} {r['rss_mb_lcr']:7.0f} {r['rss_ratio']:6.3f}"
               if r["peak_mb_plain"] else "  ".join(["-"] * 6))
        spread = ",".join(f"{x:.3f}" for x in r["overhead_ratios"])
        compute = "float32" if r["mixed_precision"] == "off" else r["mixed_precision"]
        print(f"{r['model']:10} {compute:>8} {'yes' if r['jit_compile'] else 'no':>3} "
              f"{r['power_iterations']:5d} {r['samples']:4d} {r['every']:5d} "
              f"{r['step_seconds_plain']:8.4f} {r['step_seconds_lcr']:8.4f} "
              f"{r['overhead_ratio']:6.3f} {spread:>20} "
              f"{r['plain_vs_float32']:6.3f} {r['lcr_vs_float32']:6.3f} "
              f"{r['cores_plain']:4.2f}→{r['cores_lcr']:4.2f} "
              f"{r['sigma_error_median']:9.2e} {r['sigma_error_max']:9.2e} {mem}")


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    shape = (args.input_size, args.input_size, 3)
    default_iterations = lcr_larq.LipschitzRetention().power_iterations
    iterations = args.power_iterations or [default_iterations]
    default_samples = lcr_larq.graph.DEFAULT_SAMPLES
    samples = args.samples or [default_samples]
    default_every = lcr_larq.graph.DEFAULT_EVERY
    every = args.every or [default_every]
    grid, settings = _variants(iterations, samples, every)
    # A turn holds whole schedules, so every turn has the same share of LCR steps.
    period = math.lcm(*every)
    steps = -(-args.steps // period) * period
    computations = _computations(args)
    rows = [row for name in args.models.split(",")
            for row in _model_rows(name, args, shape, grid, settings, steps, iterations,
                                   computations)]
    if args.json:
        default = next(
            (r for r in rows if r["power_iterations"] == default_iterations
             and r["samples"] == default_samples and r["every"] == default_every
             and (r["mixed_precision"], r["jit_compile"]) == REFERENCE), rows[0]
        )
        print(json.dumps({**default, "batch_size": args.batch_size,
                          "input_shape": list(shape), "machine": describe_machine(),
                          "rows": rows}))
        return 0
    _print_table(rows, args, shape, steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())

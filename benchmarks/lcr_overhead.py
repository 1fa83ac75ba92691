#!/usr/bin/env python
"""Training-step time of a BNN with LCR divided by the same BNN without it.

Both models are built in one process (same weights, same synthetic batch) and
stepped the way ``model.fit`` steps them (Keras' train function on a
``tf.data`` iterator). They are timed in turns — A B A B … — so machine noise
hits both alike; warm-up steps are excluded and the median over the turns is
reported. Peak memory is measured per variant in a child process, since one
process holds both: TensorFlow's tensor peak (what ``memory_ratio`` compares)
and the max RSS. The σ columns give the relative error of the
power-iteration estimate against exact SVD, over every block's cross matrix
on both paths.

    python benchmarks/lcr_overhead.py                       # table
    python benchmarks/lcr_overhead.py --json                # one JSON line
    python benchmarks/lcr_overhead.py --models resnet20,resnet18 --power-iterations 1,5,20
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import lcr_larq  # noqa: E402
from lcr_larq import spectral  # noqa: E402
from models import build_model  # noqa: E402

CE = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def make_models(name: str, shape, batch: int, lcr: dict | None):
    """(model, train step) for one variant; weights are seeded alike."""
    tf.keras.utils.set_random_seed(0)
    bnn = build_model(name, shape, 10)
    model = lcr_larq.attach_lcr(bnn, **lcr) if lcr else bnn
    model.compile(optimizer=tf.keras.optimizers.SGD(0.01, momentum=0.9), loss=CE)
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


def measure(name, shape, batch, lcr_settings, warmup, steps, repeats):
    """Median seconds per step of each variant, timed in turns (A B C A B C …)."""
    x, y = batch_data(shape, batch)
    variants = {"plain": make_models(name, shape, batch, None)}
    for label, settings in lcr_settings.items():
        variants[label] = make_models(name, shape, batch, settings)
    steppers = {label: step_function(model, x, y) for label, model in variants.items()}
    for step in steppers.values():
        for _ in range(warmup):
            step()
    times = {label: [] for label in variants}
    for _ in range(repeats):
        for label, step in steppers.items():
            start = time.perf_counter()
            for _ in range(steps):
                step()
            times[label].append((time.perf_counter() - start) / steps)
    medians = {label: statistics.median(values) for label, values in times.items()}
    return medians, variants, (x, y)


def sigma_errors(model, x, iterations: list[int]) -> dict[int, tuple[float, float]]:
    """Relative error of the power-iteration σ against exact SVD, per setting.

    Every block's cross matrix on both paths (the features ``model`` feeds its
    LCR layer in a training step) is compared with ``numpy.linalg.svd``;
    returns ``{iterations: (median, max)}`` over all of them.
    """
    lcr = lcr_larq.lcr_layer(model)
    inputs = tf.keras.Model(model.inputs, lcr.input)(x, training=True)
    _, binary, reference = lcr.split_inputs(inputs)
    samples = lcr.samples or int(x.shape[0])
    pairs = [(a[:samples], b[:samples]) for a, b in binary] + reference
    matrices = [spectral.cross_matrix(a, b) for a, b in pairs]
    exact = np.concatenate([np.linalg.svd(m.numpy(), compute_uv=False)[:, 0] for m in matrices])
    errors = {}
    for n in iterations:
        sigma = np.concatenate([spectral.top_singular_value(m, n)[0].numpy() for m in matrices])
        relative = np.abs(sigma - exact) / np.maximum(exact, 1e-12)
        errors[n] = (float(np.median(relative)), float(relative.max()))
    return errors


def peak_memory_mb(name, shape, batch, settings, steps) -> tuple[float, float]:
    """``(tensor peak, max RSS)`` in MiB of a child process training ``steps``
    steps of one variant.

    The tensor peak is TensorFlow's own count of the bytes its CPU allocator
    held at most (the BFC allocator, switched on in the child for it); the
    max RSS also holds the runtime, the graphs and freed-but-kept pages.
    """
    code = (
        "import sys, json, resource; sys.argv=['x'];"
        "import tensorflow as tf;"
        "from benchmarks.lcr_overhead import make_models, batch_data, step_function;"
        f"m = make_models({name!r}, {tuple(shape)!r}, {batch}, {settings!r});"
        f"step = step_function(m, *batch_data({tuple(shape)!r}, {batch}));"
        f"[step() for _ in range({steps})];"
        "peak = tf.config.experimental.get_memory_info('CPU:0')['peak'];"
        "print(peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "TF_CPU_ALLOCATOR_USE_BFC": "true"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True,
        env=env,
    )
    peak, rss = (int(v) for v in out.stdout.strip().splitlines()[-1].split())
    return peak / 2**20, rss / 2**20


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet20", help="comma-separated model names")
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--power-iterations", default=None,
                        help="comma-separated list; default: the library default only")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2, help="steps per timed turn")
    parser.add_argument("--repeats", type=int, default=15, help="turns per variant")
    parser.add_argument("--memory", action="store_true", help="also measure peak RSS")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args(argv)

    shape = (args.input_size, args.input_size, 3)
    default_iterations = lcr_larq.LipschitzRetention().power_iterations
    iterations = (
        [int(n) for n in args.power_iterations.split(",")]
        if args.power_iterations
        else [default_iterations]
    )
    rows = []
    names = args.models.split(",")
    settings = {f"lcr_pi{n}": {"lcr_lambda": 4.0, "power_iterations": n} for n in iterations}
    memories = {name: {} for name in names}
    if args.memory:  # before this process grows: a child's max RSS starts at ours
        for name in names:
            memory = memories[name]
            memory["plain"] = peak_memory_mb(name, shape, args.batch_size, None, 3)
            for label, s in settings.items():
                memory[label] = peak_memory_mb(name, shape, args.batch_size, s, 3)
    for name in names:
        memory = memories[name]
        medians, variants, (x, _) = measure(name, shape, args.batch_size, settings,
                                            args.warmup, args.steps, args.repeats)
        errors = sigma_errors(variants[next(iter(settings))], x, iterations)
        for n, label in zip(iterations, settings):
            rows.append({
                "model": name,
                "power_iterations": n,
                "step_seconds_plain": round(medians["plain"], 4),
                "step_seconds_lcr": round(medians[label], 4),
                "overhead_ratio": round(medians[label] / medians["plain"], 4),
                "sigma_error_median": float(f"{errors[n][0]:.3g}"),
                "sigma_error_max": float(f"{errors[n][1]:.3g}"),
                "peak_mb_plain": round(memory["plain"][0], 1) if memory else None,
                "peak_mb_lcr": round(memory[label][0], 1) if memory else None,
                "memory_ratio": (
                    round(memory[label][0] / memory["plain"][0], 4) if memory else None
                ),
                "rss_mb_plain": round(memory["plain"][1], 1) if memory else None,
                "rss_mb_lcr": round(memory[label][1], 1) if memory else None,
            })
    if args.json:
        default = next(
            (r for r in rows if r["power_iterations"] == default_iterations), rows[0]
        )
        print(json.dumps({**default, "batch_size": args.batch_size,
                          "input_shape": list(shape), "rows": rows}))
        return 0
    print(f"batch {args.batch_size}, input {shape}, median of {args.repeats}×{args.steps} steps")
    print(f"{'model':10} {'iters':>5} {'plain s':>9} {'LCR s':>9} {'ratio':>7} "
          f"{'σ err med':>9} {'σ err max':>9} {'plain MB':>9} {'LCR MB':>9} {'mem ratio':>9} "
          f"{'plain RSS':>9} {'LCR RSS':>9}")
    for r in rows:
        mem = (f"{r['peak_mb_plain']:9.0f} {r['peak_mb_lcr']:9.0f} {r['memory_ratio']:9.3f} "
               f"{r['rss_mb_plain']:9.0f} {r['rss_mb_lcr']:9.0f}"
               if r["peak_mb_plain"] else " ".join([f"{'-':>9}"] * 5))
        print(f"{r['model']:10} {r['power_iterations']:5d} {r['step_seconds_plain']:9.4f} "
              f"{r['step_seconds_lcr']:9.4f} {r['overhead_ratio']:7.3f} "
              f"{r['sigma_error_median']:9.2e} {r['sigma_error_max']:9.2e} {mem}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

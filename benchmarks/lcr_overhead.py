#!/usr/bin/env python
"""Training-step time of a BNN with LCR divided by the same BNN without it.

Both models are built in one process (same weights, same synthetic batch) and
timed alternately — A B A B … — so machine noise hits both alike; warm-up steps
are excluded and the median over repeats is reported. Peak memory (max RSS) is
measured per variant in a child process, since one process holds both.

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


def time_steps(model, x, y, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return (time.perf_counter() - start) / steps


def measure(name, shape, batch, lcr_settings, warmup, steps, repeats):
    x, y = batch_data(shape, batch)
    variants = {"plain": make_models(name, shape, batch, None)}
    for label, settings in lcr_settings.items():
        variants[label] = make_models(name, shape, batch, settings)
    for model in variants.values():
        time_steps(model, x, y, warmup)
    times = {label: [] for label in variants}
    for _ in range(repeats):
        for label, model in variants.items():
            times[label].append(time_steps(model, x, y, steps))
    return {label: statistics.median(values) for label, values in times.items()}


def peak_memory_mb(name, shape, batch, settings, steps) -> float:
    """Max RSS of a child process that trains ``steps`` steps of one variant."""
    code = (
        "import sys, json, resource; sys.argv=['x'];"
        "from benchmarks.lcr_overhead import make_models, batch_data;"
        f"m = make_models({name!r}, {tuple(shape)!r}, {batch}, {settings!r});"
        f"x, y = batch_data({tuple(shape)!r}, {batch});"
        f"[m.train_on_batch(x, y) for _ in range({steps})];"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True
    )
    return int(out.stdout.strip().splitlines()[-1]) / 1024.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet20", help="comma-separated model names")
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--power-iterations", default=None,
                        help="comma-separated list; default: the library default only")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
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
    for name in args.models.split(","):
        settings = {f"lcr_pi{n}": {"lcr_lambda": 4.0, "power_iterations": n}
                    for n in iterations}
        medians = measure(name, shape, args.batch_size, settings,
                          args.warmup, args.steps, args.repeats)
        memory = {}
        if args.memory:
            memory["plain"] = peak_memory_mb(name, shape, args.batch_size, None, 3)
            for label, s in settings.items():
                memory[label] = peak_memory_mb(name, shape, args.batch_size, s, 3)
        for n, label in zip(iterations, settings):
            rows.append({
                "model": name,
                "power_iterations": n,
                "step_seconds_plain": round(medians["plain"], 4),
                "step_seconds_lcr": round(medians[label], 4),
                "overhead_ratio": round(medians[label] / medians["plain"], 4),
                "peak_mb_plain": round(memory["plain"], 1) if memory else None,
                "peak_mb_lcr": round(memory[label], 1) if memory else None,
                "memory_ratio": round(memory[label] / memory["plain"], 4) if memory else None,
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
          f"{'plain MB':>9} {'LCR MB':>9} {'mem ratio':>9}")
    for r in rows:
        mem = (f"{r['peak_mb_plain']:9.0f} {r['peak_mb_lcr']:9.0f} {r['memory_ratio']:9.3f}"
               if r["peak_mb_plain"] else f"{'-':>9} {'-':>9} {'-':>9}")
        print(f"{r['model']:10} {r['power_iterations']:5d} {r['step_seconds_plain']:9.4f} "
              f"{r['step_seconds_lcr']:9.4f} {r['overhead_ratio']:7.3f} {mem}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Where the added time of LCR goes: TensorFlow profiler thread time per step.

The plain BNN and the same BNN with LCR (same weights, same synthetic batch,
stepped as ``model.fit`` steps them, see ``lcr_overhead.py``) are each traced
for ``--steps`` steps with ``tf.profiler``. Every kernel's thread time is
summed by op name and each op of the LCR model is put in one part:

* ``lcr: cross matrices, power iterations`` — ops of the LCR layer (``…/lcr/…``);
* ``lcr: gradient`` — their gradient (``gradient_tape/…/lcr/…``);
* ``taps`` — the sample slices and taps (``lcr_tap_*``, ``lcr_samples_*``);
* ``reference forward`` — every other op whose name the plain model does not
  have: the second, full-precision pass through the blocks;
* ``network`` — ops the plain model has too (its forward, backward, update).

Thread time is CPU time: on a machine whose cores are all busy with or without
LCR, the added thread time is the added wall time (see the cores column of
``lcr_overhead.py``).

With LCR on every k-th step (``--every``, the library default unless given)
the traced steps hold whole periods, and the figures are per step: an LCR
step's parts divided by k.

    python benchmarks/lcr_profile.py                  # ResNet-20, the defaults
    python benchmarks/lcr_profile.py --every 1        # an LCR step's parts
    python benchmarks/lcr_profile.py --samples 16 --power-iterations 1
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import re
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import lcr_larq  # noqa: E402, F401  (before TensorFlow: tf.keras must be Keras 2)

# isort: split
import tensorflow as tf  # noqa: E402
from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: E402

from benchmarks.lcr_overhead import batch_data, make_models, step_function  # noqa: E402
from benchmarks.machine import describe_machine  # noqa: E402

PARTS = ("network", "reference forward", "lcr: cross matrices, power iterations",
         "lcr: gradient", "taps")
# Kernel events are named "op_name:OpType"; executor bookkeeping has no type.
_KERNEL = re.compile(r"^(?P<name>[^:]+):(?P<type>\w+)$")


def part_of(op: str, plain_ops: set[str]) -> str:
    """The part of the LCR step that op ``op`` belongs to (see the module doc).

    Example:
        >>> part_of("gradient_tape/m/lcr/MatMul/MatMul", set())
        'lcr: gradient'
        >>> part_of("m/block1_conv1/Conv2D_1", {"m/block1_conv1/Conv2D"})
        'reference forward'
    """
    if "lcr_tap" in op or "lcr_samples" in op:
        return "taps"
    if re.search(r"(^|/)lcr(/|$)", op):
        return "lcr: gradient" if op.startswith("gradient_tape/") else \
            "lcr: cross matrices, power iterations"
    return "network" if op in plain_ops else "reference forward"


def thread_time_by_op(step, steps: int) -> dict[str, float]:
    """Seconds of kernel thread time per op name over ``steps`` calls of ``step``."""
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(steps):
            step()
        tf.profiler.experimental.stop()
        (path,) = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
        space = xplane_pb2.XSpace()
        with open(path, "rb") as handle:
            space.ParseFromString(handle.read())
    seconds: dict[str, float] = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue  # the executor's threads run the kernels
            end = 0  # a kernel event inside another one (a nested record) counts once
            for event in sorted(line.events, key=lambda e: e.offset_ps):
                match = _KERNEL.match(plane.event_metadata[event.metadata_id].name)
                if match and event.offset_ps >= end:
                    seconds[match["name"]] += event.duration_ps * 1e-12
                    end = event.offset_ps + event.duration_ps
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--power-iterations", type=int, default=5)
    parser.add_argument("--samples", type=int, default=lcr_larq.graph.DEFAULT_SAMPLES)
    parser.add_argument("--every", type=int, default=lcr_larq.graph.DEFAULT_EVERY,
                        help="LCR on every k-th step (1: every step)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="traced steps per model")
    args = parser.parse_args(argv)
    shape = (args.input_size, args.input_size, 3)
    x, y = batch_data(shape, args.batch_size)
    if args.every < 1:
        parser.error(f"--every must be >= 1, got {args.every}")
    lcr = {"power_iterations": args.power_iterations, "lcr_samples": args.samples,
           "lcr_every": args.every}
    # Whole periods, warm-up included: every traced run starts on an LCR step.
    args.warmup = -(-args.warmup // args.every) * args.every
    args.steps = -(-args.steps // args.every) * args.every
    times = {}
    for label, settings in (("plain", None), ("lcr", lcr)):
        # Fresh layer-name counters: both models' ops then carry the same
        # names (quantizer scopes are numbered per process), so an op only
        # the LCR model has is LCR's, not a renamed op of the network.
        tf.keras.backend.clear_session()
        step = step_function(make_models(args.model, shape, args.batch_size, settings), x, y)
        for _ in range(args.warmup):
            step()
        times[label] = thread_time_by_op(step, args.steps)
    plain_ops = set(times["plain"])
    parts = collections.Counter()
    for op, seconds in times["lcr"].items():
        parts[part_of(op, plain_ops)] += seconds
    per_step = 1e3 / args.steps
    plain_total = sum(times["plain"].values()) * per_step
    print(describe_machine())
    print(f"{args.model} {shape[0]}x{shape[1]}x3, batch {args.batch_size}, "
          f"{args.power_iterations} power iterations, {args.samples} samples, LCR on "
          f"{'every step' if args.every == 1 else f'1 step in {args.every}'}; "
          f"kernel thread time per step over {args.steps} traced steps")
    print(f"{'plain BNN':40s} {plain_total:8.1f} ms")
    for part in PARTS:
        print(f"{'LCR model: ' + part:40s} {parts[part] * per_step:8.1f} ms")
    total = sum(parts.values()) * per_step
    print(f"{'LCR model: total':40s} {total:8.1f} ms  ({total / plain_total:.3f}x the plain "
          f"thread time; network {parts['network'] * per_step - plain_total:+.1f} ms against "
          "the plain model)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

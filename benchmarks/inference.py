#!/usr/bin/env python
"""Inference latency and file size: binary (LCE) against float (TFLite) models.

For every network the binary model is converted by Larq Compute Engine and its
full-precision version (same architecture, latent weights, quantizers off) by
TensorFlow Lite (:mod:`lcr_larq.export`). Each file is run at batch size 1
with 1 and 2 threads — the binary one in LCE's interpreter, the float one in
TensorFlow Lite's (with its default XNNPACK delegate) — alternately, binary
then float, so that machine noise hits both alike; the median of the timed
runs after warm-up is reported.

LCE's optimized binary kernels target ARM (aarch64/armv7): on x86 its binary
convolutions run portable C++ kernels, so x86 figures understate what LCE
does on a phone or a Raspberry Pi, while the float model gets TFLite's
x86-optimized XNNPACK kernels. The sizes do not depend on the machine.

    python benchmarks/inference.py                        # the four networks
    python benchmarks/inference.py --models resnet18_cifar --runs 20
    python benchmarks/inference.py --json results.json
    python benchmarks/inference.py --no-xnnpack           # float on builtin kernels

Networks: ``resnet18_cifar`` (this project's ResNet-18 at 32×32, 10 classes),
``resnet18_imagenet`` (the same at 224×224, 1000 classes), ``birealnet`` and
``quicknet`` (Larq-Zoo, 224×224, 1000 classes, ``weights=None``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import lcr_larq  # noqa: E402, F401  (before TensorFlow: tf.keras must be Keras 2)

# isort: split
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.machine import describe_machine  # noqa: E402
from lcr_larq import export as lcr_export  # noqa: E402
from lcr_larq.quantizers import quantized_convolutions  # noqa: E402
from lcr_larq.surgery import float_counterpart, strip_quantizers  # noqa: E402
from models import build_model  # noqa: E402

THREADS = (1, 2)


def _resnet18(shape: tuple[int, int, int], classes: int) -> Callable[[], tuple]:
    def build():
        bnn = build_model("resnet18", shape, classes)
        return bnn, float_counterpart(
            bnn, lambda: build_model("resnet18", shape, classes, quantized=False))

    return build


def _zoo(name: str) -> Callable[[], tuple]:
    def build():
        import larq_zoo

        network = {
            "birealnet": larq_zoo.literature.BiRealNet,
            "quicknet": larq_zoo.sota.QuickNet,
        }[name]
        bnn = network(weights=None, input_shape=(224, 224, 3), num_classes=1000)
        return bnn, strip_quantizers(bnn)

    return build


NETWORKS: dict[str, tuple[tuple[int, int, int], Callable[[], tuple]]] = {
    "resnet18_cifar": ((32, 32, 3), _resnet18((32, 32, 3), 10)),
    "resnet18_imagenet": ((224, 224, 3), _resnet18((224, 224, 3), 1000)),
    "birealnet": ((224, 224, 3), _zoo("birealnet")),
    "quicknet": ((224, 224, 3), _zoo("quicknet")),
}


@dataclass
class Row:
    """One network's sizes and latencies (ms, median of ``runs``)."""

    network: str
    model: str
    input: str
    binary_bytes: int
    float_bytes: int
    bconv_ops: int
    binary_conv_layers: int
    binary_ms: dict[int, float]
    float_ms: dict[int, float]
    runs: dict[int, int]

    @property
    def ratio(self) -> float:
        return self.float_bytes / self.binary_bytes


class Runner:
    """A batch-1 flatbuffer, ready to be invoked.

    ``lce=True`` runs it in LCE's interpreter (needed for its binary ops);
    otherwise in TensorFlow Lite's, with its default XNNPACK delegate unless
    ``xnnpack=False``.

    Example:
        >>> from models import build_model
        >>> fp = build_model("resnet20", (32, 32, 3), 10, quantized=False)
        >>> runner = Runner(lcr_export.convert_float(fp), threads=1, lce=False)
        >>> runner.time(np.zeros((1, 32, 32, 3), np.float32)) > 0
        True
    """

    def __init__(self, flatbuffer: bytes, threads: int, lce: bool, xnnpack: bool = True):
        if lce:
            from larq_compute_engine.tflite.python.interpreter import Interpreter

            interpreter = Interpreter(flatbuffer, num_threads=threads)
            self.run = lambda x: interpreter.predict(x)
        else:
            resolver = tf.lite.experimental.OpResolverType
            interpreter = tf.lite.Interpreter(
                model_content=flatbuffer,
                num_threads=threads,
                experimental_op_resolver_type=(
                    resolver.AUTO if xnnpack else resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
                ),
            )
            interpreter.allocate_tensors()
            index = interpreter.get_input_details()[0]["index"]
            output = interpreter.get_output_details()[0]["index"]

            def run(x):
                interpreter.set_tensor(index, x)
                interpreter.invoke()
                return interpreter.get_tensor(output)

            self.run = run

    def time(self, x: np.ndarray) -> float:
        start = time.perf_counter()
        self.run(x)
        return 1000.0 * (time.perf_counter() - start)


def latencies(
    binary: bytes,
    floating: bytes,
    shape,
    threads: int,
    warmup: int,
    runs: int,
    budget: float,
    xnnpack: bool = True,
) -> tuple[float, float, int]:
    """Median ms of the binary and the float model, timed alternately.

    Fewer than ``runs`` (at least 3) are timed when ``runs`` pairs would take
    longer than ``budget`` seconds.
    """
    x = np.random.default_rng(0).normal(size=(1, *shape)).astype(np.float32)
    b = Runner(binary, threads, lce=True)
    f = Runner(floating, threads, lce=False, xnnpack=xnnpack)
    for _ in range(warmup):
        b.time(x), f.time(x)
    first = b.time(x) + f.time(x)
    n = max(3, min(runs, int(budget * 1000.0 / max(first, 1e-3))))
    times_b, times_f = [], []
    for _ in range(n):
        times_b.append(b.time(x))
        times_f.append(f.time(x))
    return statistics.median(times_b), statistics.median(times_f), n


def measure(name: str, warmup: int, runs: int, budget: float, xnnpack: bool = True) -> Row:
    """Converts network ``name`` both ways and times both files."""
    shape, build = NETWORKS[name]
    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(0)
    bnn, fp = build()
    binary = lcr_export.convert_binary(bnn)
    floating = lcr_export.convert_float(fp)
    row = Row(
        network=name,
        model=bnn.name,
        input="×".join(map(str, shape)),
        binary_bytes=len(binary),
        float_bytes=len(floating),
        bconv_ops=lcr_export.flatbuffer_ops(binary).count("LceBconv2d"),
        binary_conv_layers=len(quantized_convolutions(bnn, binary=True)),
        binary_ms={},
        float_ms={},
        runs={},
    )
    for threads in THREADS:
        b, f, n = latencies(binary, floating, shape, threads, warmup, runs, budget, xnnpack)
        row.binary_ms[threads], row.float_ms[threads], row.runs[threads] = b, f, n
    return row


def format_table(rows: list[Row]) -> str:
    """The results as a Markdown table."""
    head = (
        "| network | model | input | binary bytes | float bytes | ratio | LceBconv2d "
        "| binary ms 1t | float ms 1t | binary ms 2t | float ms 2t | runs 1t/2t |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(
            f"| {r.network} | {r.model} | {r.input} | {r.binary_bytes:,} | "
            f"{r.float_bytes:,} | {r.ratio:.1f}× | {r.bconv_ops}/{r.binary_conv_layers} | "
            f"{r.binary_ms[1]:.1f} | {r.float_ms[1]:.1f} | {r.binary_ms[2]:.1f} | "
            f"{r.float_ms[2]:.1f} | {r.runs[1]}/{r.runs[2]} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--models", default=",".join(NETWORKS),
        help=f"comma-separated, from {', '.join(NETWORKS)}",
    )
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs first")
    parser.add_argument("--runs", type=int, default=20, help="timed runs per model")
    parser.add_argument(
        "--budget", type=float, default=30.0,
        help="seconds of timed runs per network and thread count (at least 3 runs)",
    )
    parser.add_argument(
        "--no-xnnpack", action="store_true",
        help="run the float model on TFLite's builtin kernels, without XNNPACK",
    )
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = sorted(set(names) - set(NETWORKS))
    if unknown:
        print(f"error: unknown networks {unknown}; choose from {list(NETWORKS)}", file=sys.stderr)
        return 2
    rows = []
    for name in names:
        print(f"{name} …", file=sys.stderr, flush=True)
        rows.append(measure(name, args.warmup, args.runs, args.budget, not args.no_xnnpack))
    print(format_table(rows))
    runtime = "TFLite builtin kernels" if args.no_xnnpack else "TFLite + XNNPACK"
    machine = describe_machine()
    print(f"\nbatch 1, median ms; binary: LCE interpreter, float: {runtime}; {machine}")
    if platform.machine() not in ("aarch64", "arm64", "armv7l"):
        print("LCE's optimized binary kernels target ARM: on this machine they run "
              "portable code, not LCE's best case.")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"machine": machine, "rows": [asdict(r) for r in rows]}, handle,
                      indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``lcr-export``: a trained BNN as a Larq Compute Engine flatbuffer, checked.

Writes ``bnn_lce.tflite`` (the plain BNN, nothing of LCR), ``float.tflite``
(the full-precision version of the same architecture) and ``export.json``
(the interpreter's agreement with Keras on the test split, sizes, op counts)
into the run directory, or ``--output-dir``::

    lcr-export --model-dir RUN
    lcr-export --model-dir RUN --output-dir deploy --max-samples 1000

The converters' own output is hidden unless ``--verbose``. See
:mod:`lcr_larq.export`.
"""

from __future__ import annotations

import os
import sys

from lcr_larq import cli
from lcr_larq import export as lcr_export

__all__ = [
    "export",
    "main",
    "summary",
]


def export(settings: lcr_export.ExportSettings) -> None:
    report = lcr_export.export(settings)
    print(summary(report))
    print()
    cli.wrote(*(os.path.join(settings.out, name) for name in
                (lcr_export.BINARY_FILE, lcr_export.FLOAT_FILE, lcr_export.REPORT_FILE)))


def summary(report: dict) -> str:
    """The report in a few lines."""
    missing = report["binary_conv_layers"] - report["lce_bconv_ops"]
    control = report["keras_rounding_control"]
    rows = [
        ["model", f"{report['model']} ({report['dataset']}, {report['test_samples']} test "
                  "images)"],
        ["argmax agreement", f"{100 * report['argmax_agreement']:.2f}% (max logit difference "
                             f"{report['max_logit_difference']:.3g}; Keras against itself at "
                             f"{control['input_noise']:g} input noise: "
                             f"{100 * control['argmax_agreement']:.2f}%)"],
        ["accuracy", f"LCE {100 * report['lce_accuracy']:.2f}%, Keras "
                     f"{100 * report['keras_accuracy']:.2f}%, float version "
                     f"{100 * report['float_keras_accuracy']:.2f}%"],
        ["binary (LCE)", f"{report['binary_bytes']:,} bytes, {report['lce_bconv_ops']}/"
                         f"{report['binary_conv_layers']} binary convs as LceBconv2d"],
        ["float (TFLite)", f"{report['float_bytes']:,} bytes ({report['size_ratio']:.1f}× the "
                           "binary file)"],
        ["LCR in export", "; ".join(report["lcr_trace"]) or "none"],
    ]
    text = cli.table(rows)
    if missing > 0:
        text += (
            f"\nwarning: {missing} binary convolutions run as float CONV_2D: their quantized "
            "weights are not ±c per output channel at export time (e.g. a ProxConnect "
            "quantizer not yet in its hard state)"
        )
    return text


main = cli.command(lcr_export.ExportSettings, export, __doc__)

if __name__ == "__main__":
    sys.exit(main())

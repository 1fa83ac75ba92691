"""``lcr-train`` (also ``python train.py``): train a BNN with Lipschitz Continuity Retention.

::

    lcr-train                                    # ResNet-20 1w1a + LCR on digits
    lcr-train --model resnet18 --lcr-lambda 0    # the plain BNN baseline
    lcr-train --config configs/cifar10_resnet20_lcr.yaml
    lcr-train --model birealnet --summary --dataset imagenet2012   # Larq summary only
    lcr-train --list-models

Every flag is a setting of :class:`lcr_larq.training.TrainConfig`; the run
itself is :func:`lcr_larq.training.run`.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Sequence

import larq as lq

from lcr_larq import cli, training
from lcr_larq.data import load_dataset
from lcr_larq.training import TrainConfig, describe_lcr
from lcr_larq.training.architectures import MODELS, check_input_size

__all__ = [
    "DESCRIPTION",
    "dataset_shape",
    "describe_computation",
    "main",
    "model_list",
    "print_summary",
    "results_table",
]

DESCRIPTION = "Train a BNN with Lipschitz Continuity Retention (LCR)."


def dataset_shape(config: TrainConfig) -> tuple[tuple[int, int, int], int]:
    """``(input_shape, num_classes)`` of ``--dataset``: what its source knows
    without loading (the TFDS datasets, digits), else from the loaded data."""
    source = config.dataset_spec.source
    if source.input_shape is not None and source.num_classes is not None:
        return source.input_shape, source.num_classes
    dataset = load_dataset(
        config.dataset_spec, batch_size=config.batch_size, seed=config.seed,
        data_dir=config.data_dir,
    )
    return dataset.input_shape, dataset.num_classes


def print_summary(config: TrainConfig) -> None:
    """Prints ``larq.models.summary`` of the plain network of ``config`` (no
    LCR) at the size a run of it trains at (``--input-size``, else the
    dataset's own size raised to the model's minimum), saying which size,
    channels and classes it assumed.

    Example:
        >>> print_summary(TrainConfig(model="resnet20"))  # doctest: +ELLIPSIS
        resnet20 for digits: 16×16 images, 1 channel, 10 classes
        +resnet20_1w1a stats...
        >>> print_summary(TrainConfig(model="reactnet"))  # doctest: +ELLIPSIS
        reactnet for digits: 32×32 images (resized from 16×16: reactnet needs at least 32×32), ...
    """
    if config.input_size is not None:
        check_input_size(config.model, config.input_size)
    shape, classes = dataset_shape(config)
    size = training.with_input_size(config).input_size
    if size is None:  # the user's files, at their own size
        check_input_size(config.model, *shape[:2], images=config.dataset)
        size = shape[0]
    channels = f"{shape[-1]} channel{'s' if shape[-1] > 1 else ''}"
    least = MODELS[config.model].min_input_size
    if config.input_size:
        how = f" (resized with --input-size {size})"
    elif size != shape[0]:
        how = (f" (resized from {shape[0]}×{shape[1]}: {config.model} needs at least "
               f"{least}×{least})")
    else:
        how = ""
    print(f"{config.model} for {config.dataset}: {size}×{size} images{how}, {channels}, "
          f"{classes} classes")
    plain = dataclasses.replace(config, lcr_lambda=0.0, input_size=size)
    lq.models.summary(training.build_training_model(plain, shape, classes))


def model_list() -> str:
    """The architectures of ``--model``, one per line, with their minimum
    and published input sizes."""
    return cli.table([[name, entry.description, entry.min_input_size,
                       entry.published_input_size] for name, entry in MODELS.items()],
                     ["--model", "network", "minimum size", "published size"])


def describe_computation(results: dict) -> str:
    """How a run computed, when not in float32 without XLA (the defaults; a
    run from before these settings had them): ``""`` then.

    Example:
        >>> describe_computation({"mixed_precision": "bfloat16", "jit_compile": True})
        'mixed bfloat16 (16-bit layers; variables, LCR, logits float32), compiled by XLA'
        >>> describe_computation({"mixed_precision": "off"})
        ''
    """
    parts = []
    if results.get("mixed_precision", "off") != "off":
        parts.append(f"mixed {results['mixed_precision']} (16-bit layers; variables, LCR, "
                     "logits float32)")
    if results.get("jit_compile"):
        parts.append("compiled by XLA")
    return ", ".join(parts)


def results_table(results: dict) -> str:
    """A run's results in a few rows."""
    calibration = results.get("bn_recalibration")
    accuracy = f"{100 * results['test_accuracy']:.2f}%"
    if calibration:
        accuracy += (
            f" (BN statistics re-estimated on {calibration['samples']} training images; "
            f"{100 * results['test_accuracy_moving_statistics']:.2f}% with the moving averages)"
        )
    rows = [
        ["model", f"{results['model']} on {results['dataset']}"],
        ["LCR", describe_lcr(results)],
        ["epochs", f"{results['epochs']} (batch {results['batch_size']}, seed {results['seed']})"],
        ["optimizer", results["optimizer"]],
        ["test accuracy", accuracy],
        ["test loss", f"{results['test_loss']:.4f}"],
        ["seconds", f"{results['seconds']:.1f}"],
        ["weights", f"sha256 {results['weights_sha256'][:16]}…"],
    ]
    if "test_accuracy_as_trained" in results:
        rows.insert(5, ["as trained", (
            f"{100 * results['test_accuracy_as_trained']:.2f}% computed in "
            f"{results['mixed_precision']}, same weights and statistics (the accuracy above is "
            "the float32 network's, the one bnn.keras holds and lcr-export converts)")])
    computation = describe_computation(results)
    if computation:
        rows.insert(4, ["computation", computation])
    ratios = [v for k, v in results["final_epoch_metrics"].items()
              if k.startswith("sigma_ratio_") and k[12:].isdigit()]
    if ratios:
        rows.append(["σ_B/σ_F (last epoch)", " ".join(f"{v:.2f}" for v in ratios)])
    return cli.table(rows)


def main(argv: Sequence[str] | None = None, prog: str = "lcr-train") -> int:
    parser = cli.parser(prog, DESCRIPTION, TrainConfig)
    parser.add_argument(
        "--summary", action="store_true",
        help="print the Larq summary (binary and float MACs, memory) of the model at the "
        "size it trains at (--input-size, else the dataset's raised to the model's minimum) "
        "and exit",
    )
    parser.add_argument("--list-models", action="store_true",
                        help="list the architectures of --model and exit")
    args = parser.parse_args(argv)

    def body() -> int:
        if args.list_models:
            print(model_list())
            return 0
        config = cli.settings_from(args, TrainConfig)
        if args.summary:
            print_summary(config)
            return 0
        note = training.input_size_note(config)
        if note:
            print(note)  # the run's first line: a size the user did not choose
        results = training.run(config)
        print()
        if results.get("already_finished"):
            print(f"{results['output_dir']} already holds this run, finished (--overwrite "
                  "trains it again):")
        print(results_table(results))
        print()
        cli.wrote(os.path.join(results["output_dir"], "results.json"))
        return 0

    return cli.run(body, "interrupted: rerun the same command to resume from the last "
                         "finished epoch")


main.settings = TrainConfig

if __name__ == "__main__":
    sys.exit(main())

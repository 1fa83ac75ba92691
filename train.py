#!/usr/bin/env python
"""Train a binary neural network with Lipschitz Continuity Retention.

    python train.py                                  # ResNet-20 1w1a + LCR on digits
    python train.py --model=resnet18 --lcr-lambda=0  # the plain BNN baseline
    python train.py --config configs/cifar10_resnet20_lcr.yaml
    python train.py --model=birealnet --summary --dataset=imagenet2012  # Larq summary only

See ``python train.py --help`` for every flag.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def dataset_shape(config) -> tuple[tuple[int, int, int], int]:
    """``(input_shape, num_classes)`` of ``--dataset``; the built-in CIFAR and
    ImageNet datasets need no data for it, others are loaded."""
    from lcr_larq import data

    known = {
        "cifar10": ((data.CIFAR_SIZE, data.CIFAR_SIZE, 3), 10),
        "cifar100": ((data.CIFAR_SIZE, data.CIFAR_SIZE, 3), 100),
        "imagenet2012": ((data.IMAGENET_SIZE, data.IMAGENET_SIZE, 3), 1000),
    }
    if config.dataset in known:
        return known[config.dataset]
    dataset = data.load_dataset(
        config.dataset, batch_size=config.batch_size, seed=config.seed,
        data_dir=config.data_dir,
    )
    return dataset.input_shape, dataset.num_classes


def print_summary(config) -> None:
    """Prints ``larq.models.summary`` of the plain network of ``config`` (no
    LCR) at the dataset's input size, or at ``--input-size``.

    Example:
        >>> from lcr_larq.config import TrainConfig
        >>> print_summary(TrainConfig(model="resnet20"))  # doctest: +ELLIPSIS
        +resnet20_1w1a stats...
    """
    import larq as lq

    from lcr_larq import training

    plain = dataclasses.replace(config, lcr_lambda=0.0)
    model = training.build_training_model(plain, *dataset_shape(config))
    lq.models.summary(model)


def main(argv: list[str] | None = None) -> int:
    from lcr_larq import config as cfg

    parser = argparse.ArgumentParser(
        description="Train a BNN with Lipschitz Continuity Retention (LCR)."
    )
    cfg.add_arguments(parser)
    parser.add_argument(
        "--summary", action="store_true",
        help="print the Larq summary (binary and float MACs, memory) of the model "
        "at the dataset's input size (or --input-size) and exit",
    )
    args = parser.parse_args(argv)

    from lcr_larq import data, training

    try:
        config = cfg.validate(cfg.build_config(args))
        if args.summary:
            print_summary(config)
            return 0
        results = training.run(config)
    except (cfg.ConfigError, data.DataError, training.TrainingError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "\ninterrupted: rerun the same command to resume from the last finished epoch",
            file=sys.stderr,
        )
        return 130
    print()
    print(training.format_results(results))
    print(f"\nwrote {os.path.join(config.output_dir, 'results.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Train a binary neural network with Lipschitz Continuity Retention.

    python train.py                                  # ResNet-20 1w1a + LCR on digits
    python train.py --model=resnet18 --lcr-lambda=0  # the plain BNN baseline
    python train.py --config configs/cifar10_resnet20_lcr.yaml

See ``python train.py --help`` for every flag.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv: list[str] | None = None) -> int:
    from lcr_larq import config as cfg

    parser = argparse.ArgumentParser(
        description="Train a BNN with Lipschitz Continuity Retention (LCR)."
    )
    cfg.add_arguments(parser)
    args = parser.parse_args(argv)

    from lcr_larq import data, training

    try:
        config = cfg.validate(cfg.build_config(args))
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

#!/usr/bin/env python
"""Train a binary neural network with Lipschitz Continuity Retention.

The same command as ``lcr-train`` (:mod:`lcr_larq.cli.train`)::

    python train.py                                  # ResNet-20 1w1a + LCR on digits
    python train.py --model=resnet18 --lcr-lambda=0  # the plain BNN baseline
    python train.py --config configs/cifar10_resnet20_lcr.yaml

See ``python train.py --help`` for every flag.
"""

import sys

from lcr_larq.cli.train import main

if __name__ == "__main__":
    sys.exit(main(prog="train.py"))

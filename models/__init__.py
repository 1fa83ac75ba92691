"""The architectures, one file per published network, behind one registry.

* :mod:`models.resnet_cifar` — IR-Net's CIFAR ResNets (``resnet8``,
  ``resnet20``) and the shared ResNet parts;
* :mod:`models.resnet_imagenet` — ResNet-18/34 (``resnet18``, ``resnet34``:
  the CIFAR layout below 100 px, the ImageNet layout from 100 px);
* :mod:`models.reactnet` — ReActNet-A (``reactnet``);
* :mod:`models.zoo` — Larq-Zoo's networks (``birealnet``, ``resnet_e``,
  ``quicknet``, ``quicknet_small``, ``quicknet_large``), ``weights=None``.

Each registers itself (:func:`register_model`); :func:`build_model` reads
the registry, and so do ``--model`` and ``--list-models``. A new architecture
is one new file here. The layers they are made of live in the core
(:mod:`lcr_larq.layers`), so ``import lcr_larq`` alone loads a saved model.

Example:
    >>> import models
    >>> models.build_model("resnet18", (224, 224, 3), 1000).name
    'resnet18_imagenet_1w1a'
"""

from lcr_larq.registry import import_submodules
from models.registry import (
    MODELS,
    Architecture,
    build_model,
    check_input_size,
    describe,
    register_model,
)

import_submodules(__name__)  # every architecture registers itself

__all__ = [
    "MODELS", "Architecture", "build_model", "check_input_size", "describe", "register_model",
]

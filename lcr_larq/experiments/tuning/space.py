"""The search space: the searched settings as Keras Tuner ``HyperParameters``."""

from __future__ import annotations

from lcr_larq.compat import import_keras_tuner
from lcr_larq.experiments.tuning.settings import TuneConfig, _beta_bounds

__all__ = [
    "kt",
    "search_space",
]

kt = import_keras_tuner()


def search_space(config: TuneConfig) -> kt.HyperParameters:
    """The searched settings as Keras Tuner ``HyperParameters``: a range with
    equal ends is ``Fixed`` (β: a range that ends at
    :data:`~lcr_larq.experiments.tuning.settings.BETA_FLOOR` or below, at its end).

    Example:
        >>> hp = search_space(TuneConfig(lambda_range=(2.0, 2.0), beta_range=(1.0, 1.0005)))
        >>> hp.values["lcr_lambda"], hp.values["lcr_beta"]
        (2.0, 1.0005)
    """
    hp = kt.HyperParameters()
    low, high = (float(v) for v in config.lambda_range)
    if low == high:
        hp.Fixed("lcr_lambda", low)
    else:
        hp.Float("lcr_lambda", low, high, sampling="log")
    low, high = _beta_bounds(config)
    if low >= high:
        hp.Fixed("lcr_beta", high)
    else:
        hp.Float("lcr_beta", low, high)
    low, high = (int(v) for v in config.power_iterations_range)
    if low == high:
        hp.Fixed("power_iterations", low)
    else:
        hp.Int("power_iterations", low, high)
    references = list(dict.fromkeys(config.reference_choices))
    if len(references) == 1:
        hp.Fixed("lcr_reference", references[0])
    else:
        hp.Choice("lcr_reference", references)
    return hp

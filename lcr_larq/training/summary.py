"""A finished run in numbers and words: its last metrics, the digest of its
weights, its optimizer and LCR settings in one line.

Example:
    >>> describe_lcr({"lcr_lambda": 4.0, "lcr_beta": 2.0, "lcr_form": "ratio",
    ...               "lcr_reference": "latent", "power_iterations": 5,
    ...               "lcr_samples": 32, "lcr_every": 2})
    'λ=4 β=2 (ratio, latent, 5 power iterations, 32 samples, 1 step in 2, weight ×2)'
"""

from __future__ import annotations

import tensorflow as tf

from lcr_larq.training import runs

__all__ = [
    "compile_description",
    "describe_lcr",
    "last_epoch_metrics",
]


def last_epoch_metrics(history: tf.keras.callbacks.History, directory: str | None) -> dict:
    """The last epoch's metrics of ``history``; for a run resumed after its
    last epoch (nothing trained), those of ``directory``'s ``history.csv``."""
    last = {key: float(values[-1]) for key, values in history.history.items() if values}
    if not last and directory:
        last = {k: v[-1] for k, v in runs.read_history(directory).items() if v and k != "epoch"}
    return last


def compile_description(optimizer: tf.keras.optimizers.Optimizer) -> str:
    """``optimizer`` in a few words, e.g. ``SGD (momentum 0.9, coupled weight
    decay 0.0001 on all)``; wrapped for float16, ``…, dynamic loss scaling)``."""
    scaled = isinstance(optimizer, tf.keras.mixed_precision.LossScaleOptimizer)
    config = (optimizer.inner_optimizer if scaled else optimizer).get_config()
    parts = [f"momentum {config['momentum']:g}"] if "momentum" in config else []
    if config.get("weight_decay"):
        kind = "decoupled" if config.get("decoupled") else "coupled"
        parts.append(f"{kind} weight decay {config['weight_decay']:g} on {config['decay_on']}")
    if scaled:
        parts.append("dynamic loss scaling" if optimizer.dynamic else "loss scaling")
    return f"{config['name']} ({', '.join(parts) or 'no weight decay'})"


def describe_lcr(results: dict) -> str:
    """LCR's settings of a run in one line (results without the sample or
    schedule keys predate them: then the whole batch, every step).

    """
    samples = results.get("lcr_samples", 0)
    every = results.get("lcr_every", 1)
    return (
        f"λ={results['lcr_lambda']:g} β={results['lcr_beta']:g} ({results['lcr_form']}, "
        f"{results['lcr_reference']}, {results['power_iterations']} power iterations, "
        f"{f'{samples} samples' if samples else 'whole batch'}, "
        f"{'every step' if every == 1 else f'1 step in {every}, weight ×{every}'})"
    )

"""Adversarial robustness of a trained run: the attacks of
:mod:`lcr_larq.evaluation.attacks` on its deployed BNN, the transfer attack
from its float counterpart, and the entries they add to ``robustness.json``.

Example (a model whose logits are its pixels / 10: FGSM lowers each margin by 2ε/10):
    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> model = tf.keras.Sequential([tf.keras.Input((1, 1, 2)), tf.keras.layers.Flatten()])
    >>> run = SimpleNamespace(model=model, config=None,
    ...                       dataset=SimpleNamespace(normalize=lambda x: x / 10.0))
    >>> x, y = np.array([[[[90, 100]]], [[[100, 50]]]], np.uint8), np.array([1, 0])
    >>> out = attack_run(run, x, y, ["fgsm"], [0, 6, 30])
    >>> [(r["epsilon"], r["accuracy"]) for r in out["adversarial"]]
    [(0.0, 1.0), (6.0, 0.5), (30.0, 0.0)]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tensorflow as tf

from lcr_larq.batchnorm import recalibrate
from lcr_larq.evaluation.attacks import (
    MASKING_TEST,
    PGD_STEP_FACTOR,
    PGD_STEPS,
    TRANSFER_RULE,
    WORST,
    adversarial_report,
    with_masking_check,
)

__all__ = ["FLOAT_CALIBRATION_BATCHES", "GRADIENT_TEXT", "attack_run", "float_model"]

#: Training batches that re-estimate the float counterpart's BN statistics
#: when the run's own setting keeps the moving averages (0).
FLOAT_CALIBRATION_BATCHES = 100
GRADIENT_TEXT = (
    "straight-through estimator: the gradient through every activation binarizer is "
    "1{|x| <= 1}; the forward pass is the deployed BNN's"
)


def float_model(run) -> tuple[tf.keras.Model, dict | None]:
    """The full-precision counterpart of a run's BNN (the source of the transfer
    attack), its BN statistics re-estimated on the run's training images (the
    BNN's describe binary activations), and what the re-estimation did (None
    when the dataset has no calibration pipeline)."""
    model = run.float_counterpart()
    batches = (run.config.bn_recalibration_batches if run.config else 0)
    calibration = recalibrate(model, run.dataset, batches or FLOAT_CALIBRATION_BATCHES)
    return model, calibration


def attack_run(
    run,
    images,
    labels,
    attacks: Sequence[str],
    epsilons: Sequence[float],
    pgd_steps: int = PGD_STEPS,
    seed: int = 0,
    batch_size: int = 256,
    masking_check: str = "both",
    progress: Callable[[str], None] | None = None,
) -> dict:
    """The adversarial entries of a run's ``robustness.json``: ``attacks`` (with
    the gradient-free check of ``masking_check`` beside PGD,
    :func:`with_masking_check`) at each ε on the run's deployed BNN
    (``run.model``, a :class:`lcr_larq.training.runs.Run`), on ``images``
    (pixels) and ``labels``.

    Returns ``{"adversarial": [{"attack", "epsilon", "accuracy"}, …]`` (with
    two attacks or more, rows of the attack ``worst``:
    :func:`~lcr_larq.evaluation.attacks.worst_case`),
    "gradient_masking": flags of :func:`~lcr_larq.evaluation.attacks.gradient_masking`,
    "float_clean_accuracy": the float counterpart's accuracy on the same images
    (None without the transfer attack), "transfer_source": that accuracy and
    whether it is above chance (:func:`~lcr_larq.evaluation.attacks.above_chance`;
    the transfer rows are no masking check otherwise), "adversarial_setup": how
    they were measured (samples, ε unit, the BNN's clean accuracy on the
    attacked images, PGD's steps, the masking test, seconds per attack, …)}``.
    """
    names = with_masking_check(attacks, masking_check)
    source, calibration = float_model(run) if "transfer" in names else (None, None)
    report = adversarial_report(run.model, source, images, labels, run.dataset.normalize,
                                names, epsilons, pgd_steps, seed, None, batch_size, progress)
    seconds: dict[str, float] = {}
    for row in report["accuracy"]:
        seconds[row["attack"]] = round(seconds.get(row["attack"], 0.0) + row["seconds"], 3)
    worst = [{"attack": WORST, "epsilon": w["epsilon"], "accuracy": w["accuracy"]}
             for w in report["worst_case"]]
    return {
        "adversarial": [{k: row[k] for k in ("attack", "epsilon", "accuracy")}
                        for row in report["accuracy"]] + worst,
        "gradient_masking": report["gradient_masking"],
        "float_clean_accuracy": report["source_clean_accuracy"],
        "transfer_source": report["transfer_source"],
        "adversarial_setup": {
            "samples": report["samples"],
            "epsilon_unit": report["epsilon_unit"],
            "clean_accuracy": report["clean_accuracy"],
            "attacks": names,
            "masking_check": masking_check,
            "masking_test": MASKING_TEST,
            "transfer_rule": TRANSFER_RULE if "transfer" in names else None,
            "pgd_steps": int(pgd_steps),
            "pgd_step_size": f"{PGD_STEP_FACTOR:g}·ε/{int(pgd_steps)}, random start in the ball",
            "random_draws": int(pgd_steps) + 1,
            "seed": int(seed),
            "gradient": GRADIENT_TEXT,
            "float_bn_recalibration": calibration,
            "seconds": seconds,
            "seconds_total": round(report["seconds"], 2),
        },
    }

"""White-box adversarial robustness of a deployed BNN, and checks against gradient masking.

Conventions:

* Pixel space. Images are in ``[0, 255]`` (uint8 or float) and ε is in pixel
  levels, i.e. units of 1/255 of that range (ε = 8 moves a pixel by at most 8
  levels). Every perturbed image is clipped to ``[0, 255]`` *before*
  normalization; the model sees ``normalize(x_adv)``. Adversarial images are
  float32 and not rounded to whole levels.
* Gradients through the sign. The white-box attacks differentiate the
  *attack view* of the network (:func:`~lcr_larq.attack_view.straight_through`):
  its forward pass is the deployed BNN's, bit for bit, and the gradient
  through every activation binarizer is the straight-through estimator
  ``1{|x| ≤ 1}``, whatever estimator the network was trained with.
* Loss. The attacks ascend the cross entropy of the logits against the labels,
  along its gradient's direction computed without float32 saturation
  (:func:`~lcr_larq.attack_view.cross_entropy_ascent`).
  :func:`fgsm` takes one step of ε along the gradient's sign. :func:`pgd` is L∞
  PGD (Madry et al., ICLR 2018): a uniform random start in the ε-ball,
  ``steps`` (10) signed steps of ``2.5·ε/steps``, each projected back onto the
  ball and the pixel range. A sample counts as broken when any iterate
  misclassifies it, and its first such iterate is the image returned.
* Samples. ``max_samples`` takes the *first* N images, as ``lcr-evaluate
  --max-images`` and :func:`lcr_larq.training.runs.test_images` do (the
  project's test splits are not sorted by class). Every random draw is made
  per image from ``(seed, draw, index of the image)``, so the images do not
  depend on the batch size.
* Gradient masking (Athalye et al., ICML 2018). If an attack that does not
  use the BNN's gradient finds more errors than PGD, PGD's gradient misleads
  it: :func:`gradient_masking` flags that ε when the difference is more than
  chance. Both attacks run on the same images, so the comparison is paired:
  of the images exactly one of the two breaks, the gradient-free attack
  breaks b and PGD c; were the two equally strong, b would be
  Binomial(b + c, 1/2). The flag is McNemar's exact test, one-sided (the
  sign test on the discordant images, :func:`sign_test`), at level
  :data:`MASKING_LEVEL` per ε, split evenly over the gradient-free attacks
  compared (Bonferroni). The two such attacks are random sign noise of the
  same ε (:func:`random_search`: as many draws as PGD scores iterates, so
  both get as many tries) and PGD on the full-precision counterpart,
  transferred to the BNN; the transfer attack counts only when that source
  classifies the attacked images better than chance (:func:`above_chance`),
  else its rows are uninformative. :func:`worst_case` counts, per ε, the
  images that every attack run leaves correct: each image under its strongest
  attack, the robust accuracy to read when an attack's gradient misleads it.

:func:`lcr_larq.evaluation.attack_run.attack_run` evaluates a trained run
(``lcr-evaluate --attacks``); the same STE view gives ``lcr-diagnose`` its
empirical Lipschitz estimate (:mod:`lcr_larq.diagnostics.empirical`).

Example (a linear two-class model: FGSM moves every pixel by ε against the
true class, the direction ``sign(w_other − w_true)``):
    >>> model = tf.keras.Sequential([tf.keras.Input((2, 1, 1)), tf.keras.layers.Flatten(),
    ...                              tf.keras.layers.Dense(2, use_bias=False)])
    >>> model.set_weights([np.array([[1.0, -1.0], [-2.0, 2.0]])])  # columns w_0, w_1
    >>> target = AttackTarget(model, lambda x: x)
    >>> x = np.full((1, 2, 1, 1), 100.0, np.float32)
    >>> (fgsm(target, x, np.array([0]), epsilon=8) - x).ravel().tolist()
    [-8.0, 8.0]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from lcr_larq.attack_view import (
    PIXEL_MAX,
    AttackTarget,
    batch_slices,
    checked_batch_size,
    checked_pixels,
    cross_entropy_ascent,
    logit_margins,
    straight_through,
)
from lcr_larq.errors import ConfigError, UserError
from lcr_larq.settings import expand_names

__all__ = [
    "PIXEL_MAX", "PGD_STEPS", "PGD_STEP_FACTOR", "WHITE_BOX", "GRADIENT_FREE", "ATTACKS",
    "MASKING_CHECKS", "EPSILON_UNIT", "AttackTarget", "straight_through",
    "cross_entropy_ascent", "logit_margins", "attack_names", "with_masking_check", "fgsm",
    "pgd", "random_sign_noise", "random_search", "accuracy", "adversarial_images",
    "attack_accuracy", "worst_case", "gradient_masking", "adversarial_report",
    "WORST", "MASKING_LEVEL", "MASKING_TEST", "TRANSFER_RULE", "sign_test", "above_chance",
]

PGD_STEPS = 10
#: PGD's step size in units of ε/steps (Madry et al.'s 2.5).
PGD_STEP_FACTOR = 2.5
#: Attacks by name: two white-box (through the STE view), two that do not use
#: the BNN's gradient.
WHITE_BOX = ("fgsm", "pgd")
GRADIENT_FREE = ("random", "transfer")
#: Every attack by name: the white-box ones, then the gradient-free ones.
ATTACKS = WHITE_BOX + GRADIENT_FREE
#: The name of the per-image worst case over the attacks run (:func:`worst_case`).
WORST = "worst"
#: The gradient-masking check's level per ε: the chance that PGD, as strong as
#: every gradient-free attack, is flagged at that ε (:func:`gradient_masking`);
#: also the level at which a transfer source must beat chance (:func:`above_chance`).
MASKING_LEVEL = 0.05
#: How :func:`gradient_masking` decides, as ``robustness.json`` states it.
MASKING_TEST = (
    "per ε, McNemar's exact test, one-sided, of each gradient-free attack against PGD on the "
    "images exactly one of the two breaks (b by the attack, c by PGD; P(X >= b), X ~ "
    f"Binomial(b + c, 1/2)), at level {MASKING_LEVEL:g} split evenly over the gradient-free "
    "attacks compared (Bonferroni)"
)
#: When the transfer attack counts (:func:`above_chance`), as ``robustness.json`` states it.
TRANSFER_RULE = (
    "the transfer rows count as a masking check only when the float counterpart classifies the "
    "attacked images better than chance: a one-sided exact binomial test of its correct images "
    f"against 1/classes, at level {MASKING_LEVEL:g}"
)
#: What ``--masking-check`` adds beside PGD.
MASKING_CHECKS = {"both": GRADIENT_FREE, "random": ("random",), "transfer": ("transfer",),
                  "none": ()}
EPSILON_UNIT = "pixel levels (1/255 of the [0, 255] range), L-infinity"
# Streams of the per-image random draws (see _per_image_uniform).
_PGD_START, _SIGN_NOISE = 0, 1


# ------------------------------------------------------------------ checks
def _check_epsilon(epsilon: float) -> float:
    epsilon = float(epsilon)
    if not 0.0 <= epsilon <= PIXEL_MAX:
        raise ConfigError(f"ε must be within [0, 255] pixel levels, got {epsilon:g}")
    return epsilon


def attack_names(names: Sequence[str]) -> list[str]:
    """``names`` checked against :data:`ATTACKS` (``all`` for every one, ``none``
    for none), in order, once each.

    Example:
        >>> attack_names(["pgd", "fgsm", "pgd"]), attack_names(["all"]), attack_names(["none"])
        (['pgd', 'fgsm'], ['fgsm', 'pgd', 'random', 'transfer'], [])
    """
    return expand_names(names, {"all": ATTACKS, "none": ()}, ATTACKS, "attack")


def with_masking_check(names: Sequence[str], check: str = "both") -> list[str]:
    """:func:`attack_names` of ``names`` and, when PGD is among them, the
    gradient-free attacks of ``check`` (a key of :data:`MASKING_CHECKS`) that
    guard it against gradient masking.

    Example:
        >>> with_masking_check(["fgsm", "pgd"]), with_masking_check(["fgsm"])
        (['fgsm', 'pgd', 'random', 'transfer'], ['fgsm'])
        >>> with_masking_check(["pgd"], "none")
        ['pgd']
    """
    out = attack_names(names)
    if check not in MASKING_CHECKS:
        raise ConfigError(f"unknown masking check {check!r}: choose {', '.join(MASKING_CHECKS)}")
    if "pgd" in out:
        out += [a for a in MASKING_CHECKS[check] if a not in out]
    return out


# ------------------------------------------------------------------ attacks
def _per_image_uniform(
    shape: tuple[int, ...], seed: int, key: tuple[int, ...], start: int
) -> np.ndarray:
    """Uniform draws in [−1, 1) for images ``start, start+1, …``: image ``i``'s
    from a generator seeded with ``(seed, *key, i)``, whatever the batching."""
    out = np.empty(shape, np.float32)
    for row in range(shape[0]):
        generator = np.random.default_rng([int(seed), *key, start + row])
        out[row] = generator.uniform(-1.0, 1.0, shape[1:])
    return out


def _project(adversarial: np.ndarray, clean: np.ndarray, epsilon: float) -> np.ndarray:
    """Onto the ε-ball around ``clean`` and then the pixel range: the result is
    in both, since ``clean`` is in the pixel range."""
    inside = np.clip(adversarial, clean - epsilon, clean + epsilon)
    return np.clip(inside, 0.0, PIXEL_MAX).astype(np.float32)


def fgsm(
    target: AttackTarget, images, labels, epsilon: float, batch_size: int = 256
) -> np.ndarray:
    """FGSM (Goodfellow et al., ICLR 2015): ``clip(x + ε·sign(∇ₓ CE), 0, 255)``
    with the gradient through the STE view. Returns float32 images."""
    images, labels = checked_pixels(images, labels)
    epsilon, batch_size = _check_epsilon(epsilon), checked_batch_size(batch_size)
    out = np.empty_like(images)
    for part in batch_slices(len(images), batch_size):
        gradient, _ = target.loss_gradient(images[part], labels[part])
        out[part] = _project(images[part] + epsilon * np.sign(gradient), images[part], epsilon)
    return out


def pgd(
    target: AttackTarget,
    images,
    labels,
    epsilon: float,
    steps: int = PGD_STEPS,
    seed: int = 0,
    batch_size: int = 256,
    step_size: float | None = None,
) -> np.ndarray:
    """L∞ PGD with a random start: ``x₀`` uniform in the ε-ball (per image from
    ``(seed, image index)``), then ``steps`` times ``x ← Π(x + a·sign(∇ₓ CE))``
    with ``a = 2.5·ε/steps`` (or ``step_size``) and Π the projection onto the
    ε-ball and ``[0, 255]``. Each image's first misclassified iterate is kept
    (the last one for an image never misclassified). Returns float32 images.
    """
    images, labels = checked_pixels(images, labels)
    epsilon, batch_size = _check_epsilon(epsilon), checked_batch_size(batch_size)
    if int(steps) != steps or steps < 0:
        raise ConfigError(f"PGD needs a whole number of steps ≥ 0, got {steps}")
    steps = int(steps)
    size = PGD_STEP_FACTOR * epsilon / max(steps, 1) if step_size is None else float(step_size)
    out = np.empty_like(images)
    for part in batch_slices(len(images), batch_size):
        clean, truth = images[part], labels[part]
        start = _per_image_uniform(clean.shape, seed, (_PGD_START,), part.start)
        current = _project(clean + epsilon * start, clean, epsilon)
        found = np.zeros(len(clean), bool)
        best = current.copy()
        for step in range(steps + 1):
            if step < steps:
                gradient, predicted = target.loss_gradient(current, truth)
            else:
                predicted = target.predict(current)
            newly = (predicted != truth) & ~found
            best[newly], found = current[newly], found | newly
            if step < steps:
                current = _project(current + size * np.sign(gradient), clean, epsilon)
        best[~found] = current[~found]
        out[part] = best
    return out


def random_sign_noise(
    images, epsilon: float, seed: int = 0, draw: int = 0, first_index: int = 0
) -> np.ndarray:
    """``clip(x + ε·s, 0, 255)`` with random signs ``s``, image ``i``'s from
    ``(seed, draw, first_index + i)``: a corner of the ε-ball that no gradient chose.

    Example:
        >>> noisy = random_sign_noise(np.full((2, 3, 3, 1), 100, np.uint8), epsilon=4)
        >>> sorted(set(noisy.ravel().tolist()))
        [96.0, 104.0]
    """
    images = np.asarray(images, np.float32)
    epsilon = _check_epsilon(epsilon)
    uniform = _per_image_uniform(images.shape, seed, (_SIGN_NOISE, int(draw)), first_index)
    signs = np.where(uniform < 0, -1.0, 1.0).astype(np.float32)
    return _project(images + epsilon * signs, images, epsilon)


def random_search(
    target: AttackTarget,
    images,
    labels,
    epsilon: float,
    draws: int = PGD_STEPS + 1,
    seed: int = 0,
    batch_size: int = 256,
) -> np.ndarray:
    """The gradient-free counterpart of :func:`pgd`: ``draws`` independent
    :func:`random_sign_noise` images per image, the first one the model
    misclassifies kept (the last draw otherwise). With ``draws = steps + 1`` it
    scores as many images per sample as PGD, which also keeps its first
    misclassified iterate.
    """
    images, labels = checked_pixels(images, labels)
    batch_size = checked_batch_size(batch_size)
    if int(draws) != draws or draws < 1:
        raise ConfigError(f"random search needs a whole number of draws ≥ 1, got {draws}")
    out = np.empty_like(images)
    for part in batch_slices(len(images), batch_size):
        clean, truth, chosen = images[part], labels[part], out[part]
        found = np.zeros(len(clean), bool)
        for draw in range(int(draws)):
            noisy = random_sign_noise(clean, epsilon, seed, draw, part.start)
            newly = (target.predict(noisy) != truth) & ~found
            last = draw == int(draws) - 1
            keep = newly | (~found if last else np.zeros_like(found))
            chosen[keep] = noisy[keep]
            found |= newly
    return out


def accuracy(target: AttackTarget, images, labels, batch_size: int = 256) -> float:
    """Top-1 accuracy (a fraction) of ``target``'s model on pixel images."""
    return float(np.mean(_correct(target, images, labels, batch_size)))


def _correct(target: AttackTarget, images, labels, batch_size: int) -> np.ndarray:
    """Whether ``target``'s model classifies each pixel image correctly."""
    images, labels = checked_pixels(images, labels)
    batch_size = checked_batch_size(batch_size)
    if not len(images):
        raise UserError("no images to measure the accuracy on")
    predicted = np.concatenate(
        [target.predict(images[p]) for p in batch_slices(len(images), batch_size)]
    )
    return predicted == labels


def adversarial_images(
    attack: str,
    target: AttackTarget,
    images,
    labels,
    epsilon: float,
    source: AttackTarget | None = None,
    pgd_steps: int = PGD_STEPS,
    seed: int = 0,
    batch_size: int = 256,
) -> np.ndarray:
    """The images of one attack (a name of :data:`ATTACKS`) on ``target``:
    ``fgsm``, ``pgd`` (``pgd_steps``), ``random`` (:func:`random_search` with
    as many draws as PGD scores iterates, ``pgd_steps + 1``) and ``transfer``
    (PGD on ``source``, the full-precision counterpart). At ε = 0 every
    attack returns the images unchanged, without running."""
    if attack not in ATTACKS:
        raise ConfigError(f"unknown attack {attack!r}: choose from {', '.join(ATTACKS)}")
    if attack == "transfer" and source is None:
        raise ConfigError("the transfer attack needs the full-precision model of the run")
    if _check_epsilon(epsilon) == 0.0:
        return checked_pixels(images, labels)[0]
    if attack == "fgsm":
        return fgsm(target, images, labels, epsilon, batch_size)
    if attack == "pgd":
        return pgd(target, images, labels, epsilon, pgd_steps, seed, batch_size)
    if attack == "random":
        return random_search(target, images, labels, epsilon, pgd_steps + 1, seed, batch_size)
    return pgd(source, images, labels, epsilon, pgd_steps, seed, batch_size)


def attack_accuracy(
    target: AttackTarget,
    images,
    labels,
    attacks: Sequence[str] = ATTACKS,
    epsilons: Sequence[float] = (0, 1, 2, 4, 8),
    source: AttackTarget | None = None,
    pgd_steps: int = PGD_STEPS,
    seed: int = 0,
    max_samples: int | None = None,
    batch_size: int = 256,
    progress: Callable[[str], None] | None = None,
) -> list[dict]:
    """``[{"attack", "epsilon", "accuracy", "seconds", "correct"}, …]``: the
    robust accuracy (fraction) of ``target``'s model under each attack at
    each ε (pixel levels), on the first ``max_samples`` images: the share
    classified correctly both clean and attacked (the clean image is in the
    ball, so it is never above the clean accuracy); ``seconds`` is the
    attack's wall time with its scoring, ``correct`` that per image.
    ``progress`` gets a line per attack.

    Example:
        >>> model = tf.keras.Sequential([tf.keras.Input((1, 1, 2)), tf.keras.layers.Flatten()])
        >>> target = AttackTarget(model, lambda x: x / 10.0)  # margins of 10 and 50 levels
        >>> x, y = np.array([[[[90, 100]]], [[[100, 50]]]], np.uint8), np.array([1, 0])
        >>> rows = attack_accuracy(target, x, y, ["fgsm"], [0, 6, 30])  # margins fall by 2ε
        >>> [(r["epsilon"], r["accuracy"]) for r in rows]
        [(0.0, 1.0), (6.0, 0.5), (30.0, 0.0)]
    """
    images, labels = checked_pixels(images, labels, max_samples)
    names = attack_names(attacks)
    # The clean image lies in every ball: an image the model gets wrong is
    # not robust, whatever a perturbation of it gives.
    clean = _correct(target, images, labels, batch_size)
    rows = []
    for attack in names:
        for epsilon in epsilons:
            began = time.perf_counter()
            adversarial = adversarial_images(
                attack, target, images, labels, epsilon, source, pgd_steps, seed, batch_size
            )
            correct = clean & _correct(target, adversarial, labels, batch_size)
            rows.append({
                "attack": attack,
                "epsilon": _check_epsilon(epsilon),
                "accuracy": float(np.mean(correct)),
                "seconds": time.perf_counter() - began,
                "correct": correct,
            })
        if progress:
            mine = [r for r in rows if r["attack"] == attack]
            cells = ", ".join(f"ε {r['epsilon']:g}: {100 * r['accuracy']:.1f}%" for r in mine)
            progress(f"{attack:9s} {cells} ({sum(r['seconds'] for r in mine):.1f} s)")
    return rows


def worst_case(rows: Sequence[dict]) -> list[dict]:
    """Per ε with two attacks or more: ``{"epsilon", "accuracy", "attacks"}``,
    the share of images that every attack leaves correctly classified (for
    each image the strongest attack; at most the lowest attack's accuracy).
    ``rows`` carry ``correct`` (:func:`attack_accuracy`).

    Example:
        >>> rows = [{"attack": "pgd", "epsilon": 2.0, "correct": np.array([1, 1, 0], bool)},
        ...         {"attack": "random", "epsilon": 2.0, "correct": np.array([0, 1, 1], bool)}]
        >>> worst_case(rows)
        [{'epsilon': 2.0, 'accuracy': 0.3333333333333333, 'attacks': ['pgd', 'random']}]
    """
    by_epsilon: dict[float, list[dict]] = {}
    for row in rows:
        by_epsilon.setdefault(float(row["epsilon"]), []).append(row)
    return [
        {"epsilon": epsilon,
         "accuracy": float(np.mean(np.logical_and.reduce([r["correct"] for r in mine]))),
         "attacks": [r["attack"] for r in mine]}
        for epsilon, mine in sorted(by_epsilon.items()) if len(mine) > 1
    ]


def sign_test(wins: int, losses: int, chance: float = 0.5) -> float:
    """The one-sided exact binomial tail ``P(X ≥ wins)``, ``X ~
    Binomial(wins + losses, chance)``: with ``chance`` ½, McNemar's exact
    test that the first of two paired attacks breaks more images than the
    second (``wins`` images broken by it alone, ``losses`` by the other alone).

    Example (7 against 1: (C(8,7) + C(8,8)) / 2⁸ = 9/256):
        >>> sign_test(7, 1) == 9 / 256, sign_test(0, 0)
        (True, 1.0)
    """
    from scipy import stats

    trials = int(wins) + int(losses)
    if wins <= 0:
        return 1.0
    return float(stats.binom.sf(int(wins) - 1, trials, chance))


def above_chance(correct: int, total: int, classes: int,
                 level: float = MASKING_LEVEL) -> dict:
    """Whether ``correct`` of ``total`` images is better than guessing among
    ``classes``: the one-sided exact binomial test against ``1/classes``.

    Example (6.2 % of 360 digits is below the 10 % of chance):
        >>> out = above_chance(22, 360, 10)
        >>> out["informative"], out["chance"], out["p_value"] > 0.99
        (False, 0.1, True)
    """
    chance = 1.0 / max(int(classes), 1)
    p_value = sign_test(int(correct), int(total) - int(correct), chance)
    return {"chance": chance, "p_value": p_value, "level": level,
            "informative": p_value < level}


def gradient_masking(rows: Sequence[dict], level: float = MASKING_LEVEL,
                     uninformative: Sequence[str] = ()) -> list[dict]:
    """Per ε with a PGD row and a gradient-free row (those of ``uninformative``
    attacks left out): each gradient-free attack against PGD
    (:data:`MASKING_TEST`), and ``possible_masking`` when one breaks more
    images than PGD beyond chance: its p-value below ``level`` divided by the
    number of gradient-free attacks compared. ``stronger`` says, as
    information, whether the strongest one (``attack``) left a lower accuracy
    than PGD at all. ``rows`` carry ``correct`` (:func:`attack_accuracy`).

    Example (random breaks 6 images PGD does not, PGD 1 that random does not):
        >>> pgd = np.array([True] * 6 + [False] + [True] * 3)
        >>> noise = np.array([False] * 6 + [True] + [True] * 3)
        >>> rows = [{"attack": "pgd", "epsilon": 2.0, "correct": pgd},
        ...         {"attack": "random", "epsilon": 2.0, "correct": noise}]
        >>> (flag,) = gradient_masking(rows)
        >>> (test,) = flag["tests"]  # p = (C(7,6) + C(7,7)) / 2⁷ = 8/128
        >>> flag["stronger"], flag["possible_masking"], test["p_value"] == 8 / 128
        (True, False, True)
    """
    by_epsilon: dict[float, dict[str, np.ndarray]] = {}
    for row in rows:
        by_epsilon.setdefault(float(row["epsilon"]), {})[row["attack"]] = np.asarray(
            row["correct"], bool)
    flags = []
    for epsilon, correct in sorted(by_epsilon.items()):
        free = {a: c for a, c in correct.items()
                if a in GRADIENT_FREE and a not in uninformative}
        if "pgd" not in correct or not free:
            continue
        pgd = correct["pgd"]
        each = level / len(free)
        tests = []
        for attack, mine in free.items():
            wins, losses = int(np.sum(pgd & ~mine)), int(np.sum(~pgd & mine))
            p_value = sign_test(wins, losses)
            tests.append({"attack": attack, "accuracy": float(np.mean(mine)),
                          "broken_only_by_attack": wins, "broken_only_by_pgd": losses,
                          "p_value": p_value, "significant": p_value < each})
        strongest = min(tests, key=lambda t: t["accuracy"])
        flags.append({
            "epsilon": epsilon,
            "pgd_accuracy": float(np.mean(pgd)),
            "attack": strongest["attack"],
            "accuracy": strongest["accuracy"],
            "stronger": strongest["accuracy"] < float(np.mean(pgd)),
            "level": each,
            "tests": tests,
            "possible_masking": any(t["significant"] for t in tests),
        })
    return flags


def adversarial_report(
    model: tf.keras.Model,
    float_model: tf.keras.Model | None,
    images,
    labels,
    normalize: Callable[[tf.Tensor], tf.Tensor],
    attacks: Sequence[str] = ATTACKS,
    epsilons: Sequence[float] = (0, 1, 2, 4, 8),
    pgd_steps: int = PGD_STEPS,
    seed: int = 0,
    max_samples: int | None = None,
    batch_size: int = 256,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Everything an adversarial evaluation of a run reports.

    Args:
        model: the deployed BNN (logits).
        float_model: its full-precision counterpart, the source of the
            transfer attack (e.g. :meth:`lcr_larq.training.runs.Run.float_counterpart`,
            best with its BN statistics re-estimated by
            :func:`lcr_larq.batchnorm.recalibrate`: those of the BNN describe
            binary activations); None without ``transfer``.
        images, labels: test images in [0, 255] (uint8 or float) and labels.
        normalize: pixels → the model's input (the dataset's ``normalize``).
        attacks: names of :data:`ATTACKS` (or ``all``); epsilons: pixel levels.

    Returns:
        ``{"samples", "epsilon_unit", "clean_accuracy", "source_clean_accuracy",
        "transfer_source": the source's clean accuracy and :func:`above_chance`
        (None without ``transfer``), "accuracy": rows of :func:`attack_accuracy`
        (without ``correct``), "worst_case": :func:`worst_case`,
        "gradient_masking": flags of :func:`gradient_masking` (the transfer
        attack left out when its source is not above chance), "seconds"}``.
    """
    began = time.perf_counter()
    names = attack_names(attacks)
    if "transfer" in names and float_model is None:
        raise ConfigError("the transfer attack needs the run's full-precision counterpart")
    images, labels = checked_pixels(images, labels, max_samples)
    target = AttackTarget(model, normalize)
    source = AttackTarget(float_model, normalize) if float_model is not None else None
    rows = attack_accuracy(
        target, images, labels, names, epsilons, source, pgd_steps, seed, None, batch_size,
        progress,
    )
    source_check = None
    if source is not None:
        source_correct = int(np.sum(_correct(source, images, labels, batch_size)))
        source_check = {
            "clean_accuracy": source_correct / len(labels),
            **above_chance(source_correct, len(labels), model.output_shape[-1]),
        }
    uninformative = () if source_check is None or source_check["informative"] else ("transfer",)
    return {
        "samples": len(labels),
        "epsilon_unit": EPSILON_UNIT,
        "clean_accuracy": accuracy(target, images, labels, batch_size),
        "source_clean_accuracy": None if source_check is None else source_check["clean_accuracy"],
        "transfer_source": source_check,
        "accuracy": [{k: v for k, v in row.items() if k != "correct"} for row in rows],
        "worst_case": worst_case(rows),
        "gradient_masking": gradient_masking(rows, MASKING_LEVEL, uninformative),
        "seconds": time.perf_counter() - began,
    }

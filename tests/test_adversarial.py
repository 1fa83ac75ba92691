"""Adversarial attacks on BNNs: the STE view against hand-written gradients, the
attacks against closed forms on linear models, and their invariants."""

import math

import larq as lq
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from lcr_larq import attack_view
from lcr_larq import layers as L
from lcr_larq.diagnostics.empirical import empirical_lipschitz
from lcr_larq.errors import ConfigError, RunError, UserError
from lcr_larq.evaluation import attacks as adv
from lcr_larq.quantizers import EDESign
from lcr_larq.surgery import float_counterpart
from models import build_model


def identity(pixels):
    return pixels


# --------------------------------------------------------------------- models
def linear_model(weights: np.ndarray, bias: np.ndarray, shape=(4, 4, 1)) -> tf.keras.Model:
    """``logits = flatten(x) @ weights + bias`` (weights: pixels × classes)."""
    model = tf.keras.Sequential([
        tf.keras.Input(shape),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(weights.shape[1]),
    ])
    model.set_weights([weights.astype(np.float32), bias.astype(np.float32)])
    return model


def binarizer_model(kind: str, w1, b1, w2, alpha=None) -> tf.keras.Model:
    """``x → h = x W1 + b1 → sign(h [− α]) → · W2``: one float layer, one
    activation binarizer of ``kind`` (with its own training estimator), one
    float layer."""
    inputs = tf.keras.Input((w1.shape[0],))
    hidden = tf.keras.layers.Dense(w1.shape[1])(inputs)
    if kind == "rsign":
        rsign = L.RSign()
        dense = tf.keras.layers.Dense(w2.shape[1], use_bias=False)
        model = tf.keras.Model(inputs, dense(rsign(hidden)))
        rsign.threshold.assign(alpha)
    else:
        quantizer = {"ede": EDESign(t=0.3), "approx_sign": "approx_sign",
                     "ste_sign": lq.quantizers.SteSign(clip_value=3.0)}[kind]
        dense = L.QuantDense(w2.shape[1], input_quantizer=quantizer, use_bias=False)
        model = tf.keras.Model(inputs, dense(hidden))
    model.layers[1].set_weights([w1, b1])
    dense.kernel.assign(w2)  # (EDESign's t and k are weights of the layer too)
    return model


def random_conv_bnn(seed: int, shape=(6, 6, 1), classes=3) -> tf.keras.Model:
    """A random conv BNN: float stem, a binary conv (EDE + Libra), BN, a dense head."""
    tf.keras.utils.set_random_seed(seed)
    inputs = tf.keras.Input(shape)
    x = tf.keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = tf.keras.layers.BatchNormalization()(x)
    x = L.QuantConv2D(4, 3, padding="same", input_quantizer=EDESign(),
                      kernel_quantizer="ste_sign", use_bias=False)(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(classes)(x))


def pixels(rng, count, shape=(6, 6, 1)):
    """Uint8 images that include the range's ends."""
    images = rng.integers(0, 256, (count, *shape)).astype(np.uint8)
    images[0, 0, 0, 0], images[0, 0, 1, 0] = 0, 255
    return images


# --------------------------------------------------------------------- the STE view
STE_KINDS = ["ede", "approx_sign", "ste_sign", "rsign"]


@pytest.mark.filterwarnings("ignore:EDESign trains without EDESchedule")  # its own gradient
@pytest.mark.parametrize("kind", STE_KINDS)
def test_view_gradient_is_the_hand_written_ste(kind, rng):
    w1 = rng.normal(0.0, 0.7, (5, 6)).astype(np.float32)
    b1 = rng.normal(0.0, 0.3, 6).astype(np.float32)
    w2 = rng.normal(size=(6, 3)).astype(np.float32)
    alpha = rng.normal(0.0, 0.5, 6).astype(np.float32)
    model = binarizer_model(kind, w1, b1, w2, alpha)
    x = rng.normal(size=(8, 5)).astype(np.float32)
    weights = rng.normal(size=(8, 3)).astype(np.float32)

    def gradient(view: bool):
        inputs = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            if view:
                with adv.straight_through(model):
                    logits = model(inputs)
            else:
                logits = model(inputs)
            objective = tf.reduce_sum(logits * weights)
        return logits.numpy(), tape.gradient(objective, inputs).numpy()

    before_sign = x @ w1 + b1 - (alpha if kind == "rsign" else 0.0)
    inside = np.abs(before_sign) <= 1.0
    assert 0 < inside.mean() < 1  # both sides of the clip are exercised
    expected = (weights @ w2.T * inside) @ w1.T
    own_logits, own = gradient(view=False)
    view_logits, through = gradient(view=True)
    np.testing.assert_array_equal(view_logits, own_logits)
    np.testing.assert_allclose(through, expected, rtol=1e-5, atol=1e-5)
    assert np.abs(own - expected).max() > 1e-3  # its training estimator is another one


def test_ste_mask_is_inclusive_at_one():
    layer = L.QuantDense(1, input_quantizer=EDESign(), use_bias=False, kernel_initializer="ones")
    model = tf.keras.Sequential([tf.keras.Input((6,)), layer])
    x = tf.constant([[-1.0, 1.0, 0.0, 1.0001, -2.0, 0.999]])
    with tf.GradientTape() as tape, adv.straight_through(model):
        tape.watch(x)
        y = model(x)
    assert tape.gradient(y, x).numpy().tolist() == [[1.0, 1.0, 1.0, 0.0, 0.0, 1.0]]


def test_view_restores_the_model(rng):
    model = binarizer_model("rsign", *(rng.normal(size=s).astype(np.float32)
                                       for s in [(3, 4), (4,), (4, 2)]), alpha=np.zeros(4))
    ede = binarizer_model("ede", *(rng.normal(size=s).astype(np.float32)
                                   for s in [(3, 4), (4,), (4, 2)]))
    names = [w.name for w in ede.weights]
    quantizer = ede.layers[2].input_quantizer
    with pytest.raises(KeyError), adv.straight_through(ede), adv.straight_through(model):
        assert ede.layers[2].input_quantizer is not quantizer
        raise KeyError("fails inside")
    assert ede.layers[2].input_quantizer is quantizer
    assert [w.name for w in ede.weights] == names
    assert "call" not in vars(model.layers[2])


def test_view_logits_equal_the_bnn_on_the_models(rng):
    for name, shape, binarizers in [("resnet8", (8, 8, 1), {"EDESign"}),
                                    ("reactnet", (16, 16, 3), {"RSign"})]:
        model = build_model(name, shape, 10)
        swapped = {type(owner).__name__ if attribute == "call" else
                   type(getattr(owner, attribute)).__name__
                   for owner, attribute, _ in attack_view._binarizer_swaps(model)}
        assert swapped == binarizers
        target = adv.AttackTarget(model, lambda p: p / 127.5 - 1.0)
        images = rng.integers(0, 256, (5, *shape)).astype(np.float32)
        plain = tf.function(lambda p, m=model: m(p / 127.5 - 1.0, training=False))
        np.testing.assert_array_equal(target.view_logits(images), plain(images).numpy())


def test_a_binarizer_the_view_cannot_reach_is_an_error():
    class HiddenSign(tf.keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self.sign = lq.quantizers.SteSign()

        def call(self, inputs):
            return self.sign(inputs)

    model = tf.keras.Sequential([tf.keras.Input((3,)), HiddenSign()])
    with pytest.raises(RunError, match="cannot pass a gradient"):
        adv.AttackTarget(model, identity)
    with pytest.raises(RunError, match="cannot pass a gradient"), adv.straight_through(model):
        pass


# --------------------------------------------------------------------- closed forms
def two_class_problem(rng, count=200, shape=(4, 4, 1)):
    """A 2-class linear model, images whose pixels stay inside [ε, 255 − ε]
    for ε ≤ 20 (no pixel clipping) and whose margins are centred on 0, labels
    80 % those the model predicts."""
    weights = rng.normal(size=(int(np.prod(shape)), 2)) * 0.1
    images = rng.uniform(108, 148, (count, *shape)).astype(np.float32)
    margins = images.reshape(count, -1) @ (weights[:, 0] - weights[:, 1])
    bias = np.array([-0.5, 0.5]) * np.median(margins)
    logits = images.reshape(count, -1) @ weights + bias
    labels = np.where(rng.uniform(size=count) < 0.8, logits.argmax(1), logits.argmin(1))
    return linear_model(weights, bias, shape), weights, bias, images, labels


def fgsm_closed_form(weights, bias, images, labels, epsilon):
    """CE gradient of a 2-class linear model: ∇ₓ = p_other·(w_other − w_true),
    so FGSM adds ε·sign(w_other − w_true); the margin falls by ε‖w_true − w_other‖₁."""
    w_true, w_other = weights[:, labels].T, weights[:, 1 - labels].T
    direction = np.sign(w_other - w_true).reshape(images.shape)
    flat = images.reshape(len(images), -1).astype(np.float64)
    margin = (np.sum(flat * (w_true - w_other), 1) + bias[labels] - bias[1 - labels])
    after = margin - epsilon * np.abs(w_true - w_other).sum(1)
    assert np.abs(after).min() > 1e-4  # no sample on the boundary: float32 agrees
    return images + epsilon * direction, float(np.mean(after > 0))


@pytest.mark.parametrize("epsilon", [0.5, 4.0, 8.0])
def test_fgsm_on_a_linear_model_is_the_closed_form(epsilon, rng):
    model, weights, bias, images, labels = two_class_problem(rng)
    target = adv.AttackTarget(model, identity)
    expected_images, expected_accuracy = fgsm_closed_form(weights, bias, images, labels, epsilon)
    adversarial = adv.fgsm(target, images, labels, epsilon, batch_size=64)
    np.testing.assert_array_equal(adversarial, expected_images.astype(np.float32))
    assert adv.accuracy(target, adversarial, labels) == expected_accuracy
    assert expected_accuracy < adv.accuracy(target, images, labels)


def test_pgd_on_a_linear_model_reaches_the_fgsm_corner(rng):
    model, weights, bias, images, labels = two_class_problem(rng)
    target = adv.AttackTarget(model, identity)
    corner, expected_accuracy = fgsm_closed_form(weights, bias, images, labels, 4.0)
    adversarial = adv.pgd(target, images, labels, 4.0, steps=10, seed=3)
    robust = target.predict(adversarial) == labels
    assert np.mean(robust) == expected_accuracy
    # Correct everywhere in the ball: the last iterate, at the corner after
    # 10 steps of 0.25·ε from anywhere in the ball.
    np.testing.assert_array_equal(adversarial[robust], corner[robust].astype(np.float32))


def test_fgsm_moves_clipped_pixels_only_inside_the_range():
    model = linear_model(np.array([[1.0, -1.0], [-1.0, 1.0]]), np.zeros(2), shape=(2, 1, 1))
    target = adv.AttackTarget(model, identity)
    images = np.array([[[[3]], [[250]]]], np.uint8)  # FGSM pushes pixel 0 down, 1 up
    adversarial = adv.fgsm(target, images, [0], epsilon=8)
    assert adversarial.ravel().tolist() == [0.0, 255.0]


@pytest.mark.parametrize("trial", range(4))
def test_pgd_stays_in_the_ball_and_the_range(trial):
    rng = np.random.default_rng(trial)
    model = random_conv_bnn(trial)
    images = pixels(rng, 12).astype(np.float32)
    labels = rng.integers(0, 3, 12)
    epsilon = float(rng.choice([0.3, 2.0, 8.0, 40.0]))
    target = adv.AttackTarget(model, lambda p: p / 64.0 - 2.0)
    steps = int(rng.integers(1, 6))
    adversarial = adv.pgd(target, images, labels, epsilon, steps=steps, seed=trial, batch_size=5)
    assert adversarial.dtype == np.float32 and adversarial.shape == images.shape
    assert np.all(adversarial >= np.maximum(images - np.float32(epsilon), 0.0))
    assert np.all(adversarial <= np.minimum(images + np.float32(epsilon), 255.0))
    assert np.abs(adversarial - images).max() > 0.5 * epsilon  # it moved


def test_epsilon_zero_gives_the_clean_accuracy_for_every_attack(rng):
    model = random_conv_bnn(1)
    images, labels = pixels(rng, 20), rng.integers(0, 3, 20)
    normalize = lambda p: tf.cast(p, tf.float32) / 64.0 - 2.0  # noqa: E731
    report = adv.adversarial_report(
        model, float_counterpart(model), images, labels, normalize, ["all"], [0.0],
        pgd_steps=3, seed=2, batch_size=7,
    )
    clean = np.argmax(model(normalize(images), training=False).numpy(), 1) == labels
    assert report["clean_accuracy"] == float(np.mean(clean))
    assert 0.0 < report["clean_accuracy"] < 1.0
    assert [(r["attack"], r["accuracy"]) for r in report["accuracy"]] == [
        (attack, float(np.mean(clean))) for attack in adv.ATTACKS]
    target = adv.AttackTarget(model, normalize)
    for attack in adv.ATTACKS:
        same = adv.adversarial_images(attack, target, images, labels, 0.0, target, 3, seed=2)
        np.testing.assert_array_equal(same, images.astype(np.float32))


def test_an_image_wrong_when_clean_is_never_robust(rng):
    """Robust accuracy counts an image when it is right clean and attacked:
    PGD on the float counterpart, transferred, turns some of the images the
    BNN gets wrong into right ones, which must not count (the clean image is
    in the ball)."""
    model = random_conv_bnn(2)
    images, labels = pixels(rng, 60), rng.integers(0, 3, 60)
    normalize = lambda p: tf.cast(p, tf.float32) / 64.0 - 2.0  # noqa: E731
    target = adv.AttackTarget(model, normalize)
    source = adv.AttackTarget(float_counterpart(model), normalize)
    clean = target.predict(images) == labels
    epsilon = 40.0
    moved = adv.adversarial_images("transfer", target, images, labels, epsilon, source, 3,
                                   seed=0)
    assert np.any((target.predict(moved) == labels) & ~clean)  # the case in question
    rows = adv.attack_accuracy(target, images, labels, ["all"], [epsilon], source=source,
                               pgd_steps=3)
    for row in rows:
        assert not np.any(row["correct"] & ~clean), row["attack"]
        assert row["accuracy"] <= np.mean(clean)


def test_seeds_fix_the_random_attacks(rng):
    model = random_conv_bnn(2)
    images, labels = pixels(rng, 10), rng.integers(0, 3, 10)
    target = adv.AttackTarget(model, lambda p: p / 64.0 - 2.0)
    for attack in ("pgd", "random", "transfer"):
        def run(seed, attack=attack):
            return adv.adversarial_images(attack, target, images, labels, 6.0, target,
                                          pgd_steps=2, seed=seed, batch_size=4)

        np.testing.assert_array_equal(run(5), run(5))
        assert not np.array_equal(run(5), run(6)), attack


def test_random_draws_do_not_depend_on_the_batching(rng):
    # Logits = the pixels: a model whose predictions do not depend on the batch.
    model = tf.keras.Sequential([tf.keras.Input((1, 1, 3)), tf.keras.layers.Flatten()])
    target = adv.AttackTarget(model, identity)
    images = rng.uniform(100, 110, (9, 1, 1, 3)).astype(np.float32)
    labels = np.argmax(images.reshape(9, 3), 1)
    for attack in ("pgd", "random"):
        one = adv.adversarial_images(attack, target, images, labels, 5.0, seed=1, batch_size=2)
        other = adv.adversarial_images(attack, target, images, labels, 5.0, seed=1, batch_size=9)
        np.testing.assert_array_equal(one, other)


def test_random_search_keeps_the_first_misclassified_draw(rng):
    model = tf.keras.Sequential([tf.keras.Input((1, 1, 2)), tf.keras.layers.Flatten()])
    target = adv.AttackTarget(model, identity)
    # Margin 0 after ±1 noise only when both signs go against the true class
    # (pixel 1 up, pixel 0 down) and ties go to class 0, so label 1 needs that.
    images = np.full((40, 1, 1, 2), 100.0, np.float32)
    images[:, 0, 0, 1] += 1.5
    labels = np.ones(40, int)
    draws = [adv.random_sign_noise(images, 1.0, seed=4, draw=d) for d in range(3)]
    broken = [np.argmax(d.reshape(40, 2), 1) != 1 for d in draws]
    searched = adv.random_search(target, images, labels, 1.0, draws=3, seed=4)
    for i in range(40):
        first = next((d for d in range(3) if broken[d][i]), 2)
        np.testing.assert_array_equal(searched[i], draws[first][i])
    assert 0 < np.mean(broken[0]) < np.mean(broken[0] | broken[1] | broken[2])


def test_max_samples_takes_the_first_images(rng):
    model = random_conv_bnn(3)
    images, labels = pixels(rng, 9), rng.integers(0, 3, 9)
    normalize = lambda p: p / 64.0 - 2.0  # noqa: E731
    target = adv.AttackTarget(model, normalize)
    first = adv.attack_accuracy(target, images, labels, ["pgd", "random"], [3], pgd_steps=2,
                                max_samples=4)
    cut = adv.attack_accuracy(target, images[:4], labels[:4], ["pgd", "random"], [3],
                              pgd_steps=2)
    assert [r["accuracy"] for r in first] == [r["accuracy"] for r in cut]
    report = adv.adversarial_report(model, None, images, labels, normalize, ["fgsm"], [1, 2],
                                    max_samples=4)
    assert report["samples"] == 4 and [r["epsilon"] for r in report["accuracy"]] == [1.0, 2.0]


def test_transfer_runs_pgd_on_the_float_model(rng):
    bnn = random_conv_bnn(4)
    images, labels = pixels(rng, 8), rng.integers(0, 3, 8)
    normalize = lambda p: p / 64.0 - 2.0  # noqa: E731
    fp = float_counterpart(bnn)
    target, source = adv.AttackTarget(bnn, normalize), adv.AttackTarget(fp, normalize)
    assert not np.allclose(target.view_logits(images), source.view_logits(images))
    transferred = adv.adversarial_images("transfer", target, images, labels, 4.0, source,
                                         pgd_steps=2, seed=1)
    np.testing.assert_array_equal(
        transferred, adv.pgd(source, images, labels, 4.0, steps=2, seed=1))


# --------------------------------------------------------------------- gradient masking
def correct(broken: int, total: int = 100, first: int = 0) -> np.ndarray:
    """Per image whether an attack left it correct: images first…first+broken−1 broken."""
    out = np.ones(total, bool)
    out[first:first + broken] = False
    return out


def masking_rows(epsilon: float, **attacks) -> list[dict]:
    return [{"attack": a, "epsilon": epsilon, "correct": c, "accuracy": float(np.mean(c))}
            for a, c in attacks.items()]


def test_a_gradient_free_attack_stronger_by_chance_only_is_not_flagged():
    """360 attacked digits: random noise breaking 1 or 2 images more than PGD
    (0.3 and 0.6 points, the smallest flag once seen) is within chance and
    flags no ε; 20 images more that PGD leaves (5.6 points) are far beyond it."""
    cases = {1.0: (1, False), 2.0: (2, False), 8.0: (20, True)}  # ε: (images more, flagged)
    rows = []
    for epsilon, (more, _) in cases.items():
        rows += masking_rows(epsilon, pgd=correct(100, 360), random=correct(100 + more, 360))
    flags = adv.gradient_masking(rows)
    assert [(f["epsilon"], f["possible_masking"]) for f in flags] == [
        (e, flagged) for e, (_, flagged) in cases.items()]


def test_the_masking_test_is_mcnemars_exact_one_sided_test():
    """Against the closed form: b images broken by the gradient-free attack
    alone, c by PGD alone, p = Σ_{k≥b} C(b+c, k) / 2^(b+c)."""
    for b, c in ((1, 0), (5, 0), (7, 1), (12, 3), (30, 25), (0, 4)):
        tail = sum(math.comb(b + c, k) for k in range(b, b + c + 1)) / 2 ** (b + c)
        assert adv.sign_test(b, c) == pytest.approx(tail, rel=1e-12)
        if b + c:
            expected = stats.binomtest(b, b + c, 0.5, alternative="greater").pvalue
            assert adv.sign_test(b, c) == pytest.approx(expected, rel=1e-12)
    # PGD breaks images 0-19 (accuracy 0.80), the noise 0-20 (0.79): one image more is
    # 1 against 0 among the images they disagree on, p = 1/2: no evidence of masking.
    one_more = adv.gradient_masking(masking_rows(1.0, pgd=correct(20), random=correct(21)))[0]
    assert one_more["stronger"] and one_more["accuracy"] == 0.79
    assert one_more["tests"][0]["broken_only_by_attack"] == 1
    assert one_more["tests"][0]["p_value"] == 0.5 and not one_more["possible_masking"]
    # the noise breaks 12 images PGD leaves, PGD 1 the noise leaves: p = 14/8192
    twelve = adv.gradient_masking(masking_rows(
        2.0, pgd=correct(20), random=correct(31, first=1)))[0]
    test = twelve["tests"][0]
    assert (test["broken_only_by_attack"], test["broken_only_by_pgd"]) == (12, 1)
    assert test["p_value"] == pytest.approx((math.comb(13, 12) + 1) / 2 ** 13)
    assert twelve["possible_masking"] and twelve["level"] == adv.MASKING_LEVEL


def test_the_masking_level_is_split_over_the_gradient_free_attacks():
    # 7 against 0: p = 1/128 = 0.0078 < 0.05 alone, and < 0.025 beside another attack
    rows = masking_rows(4.0, pgd=correct(10), random=correct(17), transfer=correct(5))
    flag = adv.gradient_masking(rows)[0]
    assert flag["level"] == adv.MASKING_LEVEL / 2 and flag["possible_masking"]
    assert [t["attack"] for t in flag["tests"]] == ["random", "transfer"]
    assert [t["significant"] for t in flag["tests"]] == [True, False]
    # 5 against 0: p = 1/32 = 0.031: flagged alone, not beside a second attack
    rows = masking_rows(4.0, pgd=correct(10), random=correct(15), transfer=correct(5))
    assert not adv.gradient_masking(rows)[0]["possible_masking"]
    alone = adv.gradient_masking(rows, uninformative=("transfer",))[0]
    assert alone["possible_masking"] and [t["attack"] for t in alone["tests"]] == ["random"]
    # FGSM and rows without PGD are no check; every ε with PGD and a check is reported
    rows += masking_rows(8.0, fgsm=correct(50)) + masking_rows(2.0, pgd=correct(9),
                                                                random=correct(3))
    assert [(f["epsilon"], f["stronger"]) for f in adv.gradient_masking(rows)] == [
        (2.0, False), (4.0, True)]


def test_a_transfer_source_near_chance_is_no_check(rng):
    """The float counterpart of a run scoring below 1/classes makes the transfer
    rows uninformative: they stay in the table but leave the masking test."""
    for correct_images, total, classes in ((22, 360, 10), (45, 360, 10), (10, 50, 2)):
        out = adv.above_chance(correct_images, total, classes)
        expected = stats.binomtest(correct_images, total, 1 / classes,
                                   alternative="greater").pvalue
        assert out["p_value"] == pytest.approx(expected, rel=1e-9)
        assert out["informative"] == (expected < adv.MASKING_LEVEL)
    bnn = random_conv_bnn(5)
    constant = linear_model(np.zeros((36, 3)), np.array([5.0, 0.0, 0.0]), shape=(6, 6, 1))
    images, labels = pixels(rng, 30), np.array([1, 2] * 15)  # the constant model: 0 %
    report = adv.adversarial_report(bnn, constant, images, labels, lambda p: p / 255.0,
                                    ["pgd", "random", "transfer"], [2.0], pgd_steps=1)
    source = report["transfer_source"]
    assert report["source_clean_accuracy"] == 0.0 == source["clean_accuracy"]
    assert not source["informative"] and source["chance"] == pytest.approx(1 / 3)
    assert {r["attack"] for r in report["accuracy"]} == {"pgd", "random", "transfer"}
    assert [t["attack"] for t in report["gradient_masking"][0]["tests"]] == ["random"]


# --------------------------------------------------------------------- Lipschitz
def test_empirical_lipschitz_of_a_linear_model(rng):
    weights = rng.normal(size=(16, 4))
    model = linear_model(weights, rng.normal(size=4))
    mean, std = 0.4, 0.2
    normalize = lambda p: (p / 255.0 - mean) / std  # noqa: E731
    images = rng.uniform(0, 255, (30, 4, 4, 1)).astype(np.float32)
    labels = rng.integers(0, 4, 30)
    out = empirical_lipschitz(adv.AttackTarget(model, normalize), images, labels,
                                  batch_size=8)
    logits = model(normalize(images)).numpy()
    others = np.where(np.eye(4)[labels] > 0, -np.inf, logits).argmax(1)
    difference = weights[:, labels].T - weights[:, others].T  # ∂m/∂z = w_y − w_j
    l2 = np.linalg.norm(difference, axis=1)
    l1_pixels = np.abs(difference).sum(1) / (255.0 * std)  # z = (x/255 − mean)/std
    assert out["samples"] == 30 and out["argmax_sample"] == int(np.argmax(l2))
    np.testing.assert_allclose(
        [out["l2_input_max"], out["l2_input_mean"], out["l1_pixel_max"], out["l1_pixel_mean"]],
        [l2.max(), l2.mean(), l1_pixels.max(), l1_pixels.mean()], rtol=1e-5)
    np.testing.assert_allclose(
        out["margin_mean"],
        np.mean(logits[np.arange(30), labels] - logits[np.arange(30), others]), rtol=1e-5)


def test_empirical_lipschitz_goes_through_the_ste(rng):
    w1 = rng.normal(0.0, 0.7, (5, 6)).astype(np.float32)
    b1 = rng.normal(0.0, 0.3, 6).astype(np.float32)
    w2 = rng.normal(size=(6, 2)).astype(np.float32)
    model = binarizer_model("ede", w1, b1, w2)
    x = rng.uniform(0.0, 3.0, (1, 5)).astype(np.float32)
    out = empirical_lipschitz(adv.AttackTarget(model, lambda p: p - 1.5), x, [0])
    inside = np.abs((x - 1.5) @ w1 + b1) <= 1.0
    assert 0 < inside.mean() < 1
    expected = (((w2[:, 0] - w2[:, 1]) * inside) @ w1.T).ravel()
    np.testing.assert_allclose(out["l2_input_max"], np.linalg.norm(expected), rtol=1e-5)
    np.testing.assert_allclose(out["l1_pixel_max"], np.abs(expected).sum(), rtol=1e-5)


# --------------------------------------------------------------------- bad input
def test_bad_input_is_a_one_line_error(rng):
    model = random_conv_bnn(0)
    images, labels = pixels(rng, 3), np.zeros(3, int)
    target = adv.AttackTarget(model, lambda p: p / 255.0)
    with pytest.raises(ConfigError, match="unknown attack 'cw'"):
        adv.attack_accuracy(target, images, labels, ["cw"])
    with pytest.raises(ConfigError, match="transfer attack needs"):
        adv.adversarial_report(model, None, images, labels, lambda p: p, ["transfer"])
    with pytest.raises(ConfigError, match=r"within \[0, 255\]"):
        adv.fgsm(target, images, labels, -1)
    with pytest.raises(UserError, match="attacks take images in"):
        adv.fgsm(target, images / 255.0 - 0.5, labels, 1)
    with pytest.raises(UserError, match="3 images but 2 labels"):
        adv.pgd(target, images, labels[:2], 1)
    with pytest.raises(ConfigError, match="--attack-samples"):
        adv.attack_accuracy(target, images, labels, ["fgsm"], max_samples=0)
    with pytest.raises(ConfigError, match="whole number of steps"):
        adv.pgd(target, images, labels, 1, steps=-1)


def test_ascent_direction_is_the_cross_entropy_gradient_up_to_a_positive_factor(rng):
    logits = tf.constant(rng.normal(0.0, 3.0, (20, 5)).astype(np.float32))
    labels = tf.constant(rng.integers(0, 5, 20).astype(np.int32))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(logits)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
        ascent = adv.cross_entropy_ascent(logits, labels)
    ce_gradient = tape.gradient(ce, logits).numpy()
    direction = tape.gradient(ascent, logits).numpy()
    probabilities = tf.nn.softmax(logits).numpy()
    others = np.where(np.eye(5)[labels.numpy()] > 0, -np.inf, probabilities).max(1)
    np.testing.assert_allclose(direction * others[:, None], ce_gradient, rtol=1e-4, atol=1e-7)


def test_fgsm_keeps_its_direction_at_a_saturated_margin():
    # Margin 400: float32's softmax − onehot is exactly 0 here.
    model = linear_model(np.array([[2.0, 0.0], [0.0, 1.0]]), np.zeros(2), shape=(2, 1, 1))
    target = adv.AttackTarget(model, identity)
    images = np.array([[[[200]], [[0]]]], np.uint8)
    assert adv.fgsm(target, images, [0], epsilon=4).ravel().tolist() == [196.0, 4.0]

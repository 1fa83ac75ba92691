"""Corruption errors (CE / mCE) and reproducible ImageNet-C style corruptions."""

import numpy as np
import pytest
from imagecorruptions import get_corruption_names

from lcr_larq.evaluation.corruptions import (
    ALEXNET_ERRORS_BY_SEVERITY,
    ALEXNET_MEAN_ERRORS,
    ALEXNET_MEAN_ERRORS_EXTRA,
    ALL_CORRUPTIONS,
    CORRUPTIONS,
    EXTRA_CORRUPTIONS,
    corrupt_images,
    corruption_error,
    mean_corruption_error,
)

NOISES = ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise")


# ----------------------------------------------------------------- constants
def test_corruption_names_match_the_reference_package():
    assert CORRUPTIONS == tuple(get_corruption_names("common"))
    assert EXTRA_CORRUPTIONS == tuple(get_corruption_names("validation"))
    assert len(set(ALL_CORRUPTIONS)) == 19


def test_alexnet_tables_are_consistent():
    assert set(ALEXNET_MEAN_ERRORS) == set(CORRUPTIONS)
    assert set(ALEXNET_ERRORS_BY_SEVERITY) == set(CORRUPTIONS)
    assert set(ALEXNET_MEAN_ERRORS_EXTRA) == set(EXTRA_CORRUPTIONS)
    # the per-severity table and the published means come from different
    # sources; each row must average to the published mean
    for name, per_severity in ALEXNET_ERRORS_BY_SEVERITY.items():
        assert len(per_severity) == 5
        assert np.mean(per_severity) == pytest.approx(
            ALEXNET_MEAN_ERRORS[name], abs=1e-6
        )


# ----------------------------------------------------------------- CE / mCE
def test_corruption_error_hand_example():
    errors = [0.1, 0.2, 0.3, 0.4, 0.5]
    # unnormalised: 0.1 + 0.2 + 0.3 + 0.4 + 0.5 = 1.5
    ce = corruption_error(errors)
    assert ce.value == pytest.approx(1.5)
    assert ce.normalized is False
    # per-severity baseline sums to 0.5 + 0.5 + 0.6 + 0.7 + 0.7 = 3.0 -> 1.5 / 3.0
    ce = corruption_error(errors, baseline=[0.5, 0.5, 0.6, 0.7, 0.7])
    assert ce.value == pytest.approx(0.5)
    assert ce.normalized is True
    # a scalar baseline is a mean over severities: sum = 5 * 0.6 = 3.0 -> 0.5
    assert corruption_error(errors, baseline=0.6).value == pytest.approx(0.5)


def test_mean_corruption_error_hand_example():
    errors = {"fog": [0.1, 0.2, 0.3, 0.4, 0.5], "snow": [0.2] * 5}
    # CE_fog = 1.5, CE_snow = 5 * 0.2 = 1.0  ->  mCE = (1.5 + 1.0) / 2 = 1.25
    res = mean_corruption_error(errors)
    assert res.value == pytest.approx(1.25)
    assert res.per_corruption == pytest.approx({"fog": 1.5, "snow": 1.0})
    assert res.normalized is False
    # baselines: fog sums to 3.0 (CE 0.5), snow to 5 * 0.25 = 1.25 (CE 0.8)
    # -> mCE = (0.5 + 0.8) / 2 = 0.65
    base = {"fog": [0.5, 0.5, 0.6, 0.7, 0.7], "snow": 0.25}
    res = mean_corruption_error(errors, baseline=base)
    assert res.value == pytest.approx(0.65)
    assert res.per_corruption == pytest.approx({"fog": 0.5, "snow": 0.8})
    assert res.normalized is True


def test_mean_corruption_error_alexnet_baseline():
    # AlexNet itself scores CE = 1 on every corruption, i.e. mCE = 100 %
    res = mean_corruption_error(dict(ALEXNET_ERRORS_BY_SEVERITY), baseline="alexnet")
    assert res.value == pytest.approx(1.0)
    # 0.5 at every severity on gaussian noise: 2.5 / (5 * 0.886428) = 0.5640616
    res = mean_corruption_error({"gaussian_noise": [0.5] * 5}, baseline="alexnet")
    assert res.value == pytest.approx(0.5640616, abs=1e-7)
    # with 3 severities, AlexNet's errors at those severities (1, 3, 5 by hand)
    res = mean_corruption_error({"gaussian_noise": [0.5] * 3}, baseline="alexnet",
                                severities=[1, 3, 5])
    assert res.value == pytest.approx(1.5 / (0.69528 + 0.93554 + 0.99452))
    # errors and severities must agree
    with pytest.raises(ValueError, match="3 errors for severities"):
        mean_corruption_error({"gaussian_noise": [0.5] * 3}, baseline="alexnet")
    # held-out corruptions have no verified AlexNet number
    with pytest.raises(ValueError):
        mean_corruption_error({"spatter": [0.5] * 5}, baseline="alexnet")


@pytest.mark.parametrize(
    "errors, baseline",
    [([0.1, 1.2], None), ([], None), ([0.1, 0.2], [0.3]), ([0.1], 0.0), ([-0.1], None)],
)
def test_corruption_error_rejects_bad_input(errors, baseline):
    with pytest.raises(ValueError):
        corruption_error(errors, baseline)


# ----------------------------------------------------------------- corruptions
@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, size=(2, 8, 8, 1), dtype=np.uint8)
    rgb = rng.integers(0, 256, size=(2, 32, 32, 3), dtype=np.uint8)
    return gray, rgb


@pytest.mark.parametrize("corruption", ALL_CORRUPTIONS)
def test_corruption_shape_dtype_and_determinism(images, corruption):
    for batch, severity in zip(images, (3, 5)):
        before = batch.copy()
        a = corrupt_images(batch, corruption, severity, seed=11)
        b = corrupt_images(batch, corruption, severity, seed=11)
        assert a.shape == batch.shape and a.dtype == np.uint8
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(batch, before)  # input untouched
        if corruption in NOISES:
            assert not np.array_equal(
                a, corrupt_images(batch, corruption, severity, 12)
            )
            assert not np.array_equal(a, batch)


def test_corruption_seeds_do_not_depend_on_batching(images):
    _, rgb = images
    whole = corrupt_images(rgb, "frost", 2, seed=5)
    second = corrupt_images(rgb[1], "frost", 2, seed=5, start_index=1)
    np.testing.assert_array_equal(whole[1], second)
    # different images of a batch get different noise
    flat = np.full((2, 32, 32, 3), 128, np.uint8)
    out = corrupt_images(flat, "gaussian_noise", 1, seed=5)
    assert not np.array_equal(out[0], out[1])


def test_global_numpy_random_state_is_restored(images):
    gray, _ = images
    np.random.seed(123)
    expected = np.random.random_sample(3)
    np.random.seed(123)
    corrupt_images(gray, "snow", 2, seed=1)
    np.testing.assert_array_equal(np.random.random_sample(3), expected)


def test_grayscale_contrast_closed_form(images):
    gray, _ = images
    out = corrupt_images(gray, "contrast", 1, seed=0)
    # contrast, severity 1: clip((x - mean) * 0.4 + mean, 0, 1) * 255, truncated
    x = gray[0, ..., 0] / 255.0
    m = x.mean()
    expected = np.clip((x - m) * 0.4 + m, 0, 1) * 255
    assert np.abs(out[0, ..., 0].astype(int) - expected.astype(np.uint8)).max() <= 1


def test_grayscale_noise_keeps_its_severity():
    # gaussian noise, severity 1: sigma = 0.08 * 255 = 20.4 grey levels per pixel
    flat = np.full((4, 32, 32, 1), 128, np.uint8)
    out = corrupt_images(flat, "gaussian_noise", 1, seed=0).astype(float)
    assert np.std(out - 128) == pytest.approx(20.4, rel=0.05)


def test_small_images_spatial_corruption_is_sane():
    # blurring a constant image leaves it constant (8x8 goes through the
    # upscale / block-average path)
    flat = np.full((1, 8, 8, 3), 77, np.uint8)
    for name in ("gaussian_blur", "defocus_blur", "glass_blur", "zoom_blur"):
        out = corrupt_images(flat, name, 2, seed=0).astype(int)
        assert np.abs(out - 77).max() <= 1, name


@pytest.mark.parametrize(
    "array, corruption, severity, error",
    [
        (np.zeros((8, 8, 3), np.float32), "fog", 1, TypeError),
        (np.zeros((8, 8, 3), np.uint8), "rain", 1, ValueError),
        (np.zeros((8, 8, 3), np.uint8), "fog", 6, ValueError),
        (np.zeros((8, 8, 2), np.uint8), "fog", 1, ValueError),
    ],
)
def test_corrupt_images_rejects_bad_input(array, corruption, severity, error):
    with pytest.raises(error):
        corrupt_images(array, corruption, severity)

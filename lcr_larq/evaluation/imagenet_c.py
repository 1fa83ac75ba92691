"""The ImageNet-C corruptions and AlexNet's published errors on them (data only).

The corruption lists name the functions of the ImageNet-C code
(``imagecorruptions``); the AlexNet tables are the baseline the normalised
corruption error divides by (Hendrycks & Dietterich, ICLR 2019), see
:mod:`lcr_larq.evaluation.corruptions`.

Example:
    >>> len(CORRUPTIONS), len(ALL_CORRUPTIONS), set(ALEXNET_MEAN_ERRORS) == set(CORRUPTIONS)
    (15, 19, True)
"""

from __future__ import annotations

__all__ = [
    "ALEXNET_ERRORS_BY_SEVERITY",
    "ALEXNET_MEAN_ERRORS",
    "ALEXNET_MEAN_ERRORS_EXTRA",
    "ALL_CORRUPTIONS",
    "CORRUPTIONS",
    "EXTRA_CORRUPTIONS",
    "SEVERITIES",
    "SIZE_AGNOSTIC_CORRUPTIONS",
]

#: The 15 ImageNet-C benchmark corruptions, in the paper's order
#: (noise, blur, weather, digital).
CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)

#: The 4 held-out ("validation") corruptions.
EXTRA_CORRUPTIONS: tuple[str, ...] = (
    "speckle_noise",
    "gaussian_blur",
    "spatter",
    "saturate",
)

#: The 15 benchmark corruptions, then the 4 held-out ones.
ALL_CORRUPTIONS: tuple[str, ...] = CORRUPTIONS + EXTRA_CORRUPTIONS
SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)

#: Corruptions whose effect does not depend on the image resolution (per-pixel
#: or global operations, and JPEG's 8x8 blocks); applied at native resolution.
SIZE_AGNOSTIC_CORRUPTIONS: frozenset[str] = frozenset(
    {
        "gaussian_noise",
        "shot_noise",
        "impulse_noise",
        "speckle_noise",
        "brightness",
        "contrast",
        "saturate",
        "jpeg_compression",
    }
)

#: AlexNet top-1 error (fraction) on ImageNet-C for severities 1..5.
#: Source: the per-severity table circulated with the mCE spreadsheet linked from
#: the ImageNet-C README (github.com/hendrycks/robustness, "Calculating the mCE");
#: transcribed here from its copy in the ``timm`` utilities. Each row averages to
#: the value in :data:`ALEXNET_MEAN_ERRORS` (checked by the tests).
ALEXNET_ERRORS_BY_SEVERITY: dict[str, tuple[float, ...]] = {
    "gaussian_noise": (0.69528, 0.82542, 0.93554, 0.98138, 0.99452),
    "shot_noise": (0.71224, 0.85108, 0.93574, 0.98182, 0.99146),
    "impulse_noise": (0.78374, 0.89808, 0.94870, 0.98720, 0.99548),
    "defocus_blur": (0.65624, 0.73202, 0.85036, 0.91364, 0.94714),
    "glass_blur": (0.64308, 0.75054, 0.88806, 0.91622, 0.93344),
    "motion_blur": (0.58430, 0.70048, 0.82108, 0.89750, 0.92638),
    "zoom_blur": (0.70008, 0.76992, 0.80784, 0.84198, 0.87198),
    "snow": (0.71726, 0.88392, 0.86468, 0.91870, 0.94952),
    "frost": (0.61390, 0.79734, 0.88790, 0.89942, 0.93430),
    "fog": (0.67474, 0.76050, 0.84378, 0.87260, 0.94500),
    "brightness": (0.45140, 0.48502, 0.54048, 0.62166, 0.72440),
    "contrast": (0.64548, 0.76150, 0.88874, 0.97760, 0.99270),
    "elastic_transform": (0.52596, 0.70116, 0.55686, 0.64076, 0.80554),
    "pixelate": (0.52218, 0.54620, 0.73728, 0.87092, 0.91262),
    "jpeg_compression": (0.51002, 0.54718, 0.57294, 0.65458, 0.74778),
}

#: AlexNet top-1 error (fraction) averaged over the 5 severities, as published
#: with the benchmark ("Raw AlexNet errors taken from
#: https://github.com/hendrycks/robustness" in google-research/augmix,
#: ``imagenet.py``, co-authored by D. Hendrycks). ``sum_s E^AlexNet_{s,c}`` is
#: ``5 *`` this value.
ALEXNET_MEAN_ERRORS: dict[str, float] = {
    "gaussian_noise": 0.886428,
    "shot_noise": 0.894468,
    "impulse_noise": 0.922640,
    "defocus_blur": 0.819880,
    "glass_blur": 0.826268,
    "motion_blur": 0.785948,
    "zoom_blur": 0.798360,
    "snow": 0.866816,
    "frost": 0.826572,
    "fog": 0.819324,
    "brightness": 0.564592,
    "contrast": 0.853204,
    "elastic_transform": 0.646056,
    "pixelate": 0.717840,
    "jpeg_compression": 0.606500,
}

#: AlexNet mean errors for the 4 held-out corruptions. CAUTION: these values
#: were found only in third-party evaluation code (several independent
#: repositories agree on them), not in a file or table by the benchmark
#: authors; they are *not* used by ``baseline="alexnet"``. Pass them explicitly
#: if you accept that provenance.
ALEXNET_MEAN_ERRORS_EXTRA: dict[str, float] = {
    "speckle_noise": 0.845388,
    "gaussian_blur": 0.787108,
    "spatter": 0.717512,
    "saturate": 0.658248,
}

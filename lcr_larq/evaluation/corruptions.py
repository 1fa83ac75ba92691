"""Common-corruption robustness: corruption errors (CE / mCE) and corrupted images.

Reference: D. Hendrycks and T. Dietterich, "Benchmarking Neural Network Robustness
to Common Corruptions and Perturbations", ICLR 2019 (arXiv:1903.12261), and the
ImageNet-C corruption code packaged as ``imagecorruptions`` (Michaelis et al.,
2019).

Definitions (``E^f_{s,c}`` = top-1 error, as a fraction, of classifier ``f`` on
corruption ``c`` at severity ``s``)::

    unnormalised  CE^f_c = sum_s E^f_{s,c}
    normalised    CE^f_c = sum_s E^f_{s,c} / sum_s E^AlexNet_{s,c}
    mCE^f              = mean over corruptions c of CE^f_c

Papers report the normalised mCE in percent (multiply by 100).  The
unnormalised CE is a sum over the severities; the reference evaluation script
prints the mean over severities instead (``sum / 5``), which does not change
normalised values. The corruption lists and AlexNet's errors are
:mod:`lcr_larq.evaluation.imagenet_c` (importable from here too).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import inspect
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from types import SimpleNamespace
from typing import Any, NamedTuple

import numpy as np

from lcr_larq.evaluation.imagenet_c import (
    ALEXNET_ERRORS_BY_SEVERITY,
    ALEXNET_MEAN_ERRORS,
    ALEXNET_MEAN_ERRORS_EXTRA,
    ALL_CORRUPTIONS,
    CORRUPTIONS,
    EXTRA_CORRUPTIONS,
    SEVERITIES,
    SIZE_AGNOSTIC_CORRUPTIONS,
)
from lcr_larq.settings import expand_names

__all__ = [
    "CORRUPTIONS",
    "EXTRA_CORRUPTIONS",
    "ALL_CORRUPTIONS",
    "SEVERITIES",
    "SIZE_AGNOSTIC_CORRUPTIONS",
    "ALEXNET_ERRORS_BY_SEVERITY",
    "ALEXNET_MEAN_ERRORS",
    "ALEXNET_MEAN_ERRORS_EXTRA",
    "CorruptionError",
    "MeanCorruptionError",
    "corruption_error",
    "mean_corruption_error",
    "corrupt_images",
    "corrupted",
    "corruption_summary",
    "corruption_names",
]


# --------------------------------------------------------------------------- CE / mCE
class CorruptionError(NamedTuple):
    """CE of one corruption and whether it is normalised by a baseline."""

    value: float
    normalized: bool


class MeanCorruptionError(NamedTuple):
    """mCE, the per-corruption CEs it averages, and whether they are normalised."""

    value: float
    per_corruption: dict[str, float]
    normalized: bool


def _errors_array(errors: Sequence[float], what: str) -> np.ndarray:
    arr = np.asarray(errors, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{what}: no severities given")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0) or np.any(arr > 1):
        raise ValueError(f"{what}: errors must be fractions in [0, 1], got {arr}")
    return arr


def corruption_error(
    errors_by_severity: Sequence[float],
    baseline: Sequence[float] | float | None = None,
) -> CorruptionError:
    """Corruption error of one corruption (Hendrycks & Dietterich, 2019, Sec. 3).

    ``CE_c = sum_s E_{s,c}`` without baseline, else
    ``CE_c = sum_s E_{s,c} / sum_s E^base_{s,c}``.

    Args:
        errors_by_severity: top-1 errors (fractions in ``[0, 1]``), one per
            severity (usually 5).
        baseline: the baseline's errors, either per severity (same length) or a
            single float = the baseline's error *averaged over the severities*
            (the form in which AlexNet's errors are published), so that
            ``sum_s E^base_{s,c} = len(errors_by_severity) * baseline``.

    Returns:
        ``CorruptionError(value, normalized)``.

    Example:
        >>> corruption_error([0.1, 0.2, 0.3, 0.4, 0.5])
        CorruptionError(value=1.5, normalized=False)
        >>> corruption_error([0.1, 0.2, 0.3, 0.4, 0.5], baseline=0.6).value
        0.5
    """
    err = _errors_array(errors_by_severity, "errors_by_severity")
    total = float(err.sum())
    if baseline is None:
        return CorruptionError(total, False)
    if np.ndim(baseline) == 0:
        base_mean = float(baseline)  # type: ignore[arg-type]
        if not 0 < base_mean <= 1:
            raise ValueError(f"baseline mean error must be in (0, 1], got {baseline}")
        base_total = base_mean * err.size
    else:
        base = _errors_array(baseline, "baseline")  # type: ignore[arg-type]
        if base.size != err.size:
            raise ValueError(
                f"baseline has {base.size} severities, errors have {err.size}"
            )
        base_total = float(base.sum())
        if base_total <= 0:
            raise ValueError("baseline errors sum to zero")
    return CorruptionError(total / base_total, True)


def mean_corruption_error(
    errors: Mapping[str, Sequence[float]],
    baseline: str | Mapping[str, Sequence[float] | float] | None = None,
    severities: Sequence[int] | None = None,
) -> MeanCorruptionError:
    """Mean corruption error ``mCE = mean_c CE_c`` over the corruptions given.

    Args:
        errors: ``{corruption name: errors per severity}`` (fractions), in the
            order of ``severities``.
        baseline: ``None`` (unnormalised), ``"alexnet"`` (AlexNet's errors of
            :data:`ALEXNET_ERRORS_BY_SEVERITY` at ``severities``, by default
            1..5; only the 15 benchmark corruptions), or a mapping name ->
            baseline accepted by :func:`corruption_error`.
        severities: the severities of ``errors`` (default 1..5).

    Returns:
        ``MeanCorruptionError(value, per_corruption, normalized)``; multiply
        ``value`` by 100 for the percentages reported in papers.

    Example:
        >>> errs = {"fog": [0.2] * 5, "snow": [0.4] * 5}
        >>> mean_corruption_error(errs).value  # (1.0 + 2.0) / 2
        1.5
    """
    if not errors:
        raise ValueError("errors is empty")
    per: dict[str, float] = {}
    normalized = baseline is not None
    for name, errs in errors.items():
        base: Sequence[float] | float | None
        if baseline is None:
            base = None
        elif isinstance(baseline, str):
            if baseline.lower() != "alexnet":
                raise ValueError(f"unknown baseline {baseline!r}")
            if name not in ALEXNET_MEAN_ERRORS:
                raise ValueError(
                    f"no verified AlexNet error for {name!r}; pass a baseline "
                    "mapping (see ALEXNET_MEAN_ERRORS_EXTRA)"
                )
            levels = list(severities or SEVERITIES)
            if len(levels) != len(errs) or any(v not in SEVERITIES for v in levels):
                raise ValueError(f"{name}: {len(errs)} errors for severities {levels}")
            base = [ALEXNET_ERRORS_BY_SEVERITY[name][v - 1] for v in levels]
        else:
            if name not in baseline:
                raise ValueError(f"baseline has no entry for {name!r}")
            base = baseline[name]
        per[name] = corruption_error(errs, base).value
    return MeanCorruptionError(float(np.mean(list(per.values()))), per, normalized)


# --------------------------------------------------------------------------- images
def _seeded_random_noise_factory(original: Any) -> Any:
    """``skimage.util.random_noise`` drawing its generator from ``np.random``.

    Recent scikit-image versions draw from a fresh ``default_rng()`` unless an
    ``rng`` (older: ``seed``) is passed, which would make impulse noise
    non-reproducible; here the generator is seeded from the (seeded) global
    NumPy state, keeping the original noise model.
    """
    params = inspect.signature(original).parameters
    key = "rng" if "rng" in params else ("seed" if "seed" in params else None)

    def random_noise(image: Any, *args: Any, **kwargs: Any) -> Any:
        if key is not None and key not in kwargs:
            kwargs[key] = int(np.random.randint(0, 2**31 - 1))
        return original(image, *args, **kwargs)

    return random_noise


def _gaussian_compat_factory(original: Any) -> Any:
    """``skimage.filters.gaussian`` accepting the removed ``multichannel`` flag."""

    def gaussian(image: Any, *args: Any, multichannel: Any = None, **kwargs: Any):
        if multichannel:
            kwargs.setdefault("channel_axis", -1)
        return original(image, *args, **kwargs)

    return gaussian


class _SkimageProxy:
    """Stand-in for the ``skimage`` module inside ``imagecorruptions``."""

    def __init__(self, skimage: Any) -> None:
        self._skimage = skimage
        self.util = SimpleNamespace(
            random_noise=_seeded_random_noise_factory(skimage.util.random_noise)
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._skimage, name)


@contextlib.contextmanager
def _imagecorruptions_module() -> Iterator[Any]:
    """Yield ``imagecorruptions.corruptions`` with compatibility fixes applied.

    ``imagecorruptions`` 1.1.2 calls ``skimage.filters.gaussian(...,
    multichannel=True)`` (removed in scikit-image 0.19+; breaks ``glass_blur``
    and ``gaussian_blur``) and ``skimage.util.random_noise`` without a seed
    (unseedable ``impulse_noise``). The module globals are swapped for the
    duration of the call and restored afterwards. Its ``import pkg_resources``
    warns (deprecated in setuptools); that warning is not the user's to act on.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
        mod = importlib.import_module("imagecorruptions.corruptions")
    skimage = importlib.import_module("skimage")
    filters = importlib.import_module("skimage.filters")
    importlib.import_module("skimage.util")  # make sure the submodule is loaded

    saved = {"gaussian": mod.gaussian, "sk": mod.sk}
    if "multichannel" not in inspect.signature(filters.gaussian).parameters:
        mod.gaussian = _gaussian_compat_factory(filters.gaussian)
    mod.sk = _SkimageProxy(skimage)
    try:
        yield mod
    finally:
        for name, value in saved.items():
            setattr(mod, name, value)


def _image_seed(seed: int, corruption: str, severity: int, index: int) -> int:
    """32-bit seed derived from ``(seed, corruption, severity, image index)``."""
    ss = np.random.SeedSequence(
        [int(seed) & 0xFFFFFFFF, ALL_CORRUPTIONS.index(corruption), severity, index]
    )
    return int(ss.generate_state(1, dtype=np.uint32)[0])


def _corrupt_rgb(
    mod: Any, rgb: np.ndarray, corruption: str, severity: int, min_size: int
) -> np.ndarray:
    """Corrupt one ``(H, W, 3)`` uint8 image; returns ``(H, W, 3)`` uint8."""
    from PIL import Image

    h, w = rgb.shape[:2]
    factor = 1
    if corruption not in SIZE_AGNOSTIC_CORRUPTIONS and min(h, w) < min_size:
        factor = -(-min_size // min(h, w))
    work = rgb
    if factor > 1:  # nearest-neighbour upscale by an integer factor
        work = np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1)
    fn = getattr(mod, corruption)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.asarray(fn(Image.fromarray(work), severity), dtype=np.float64)
    if out.shape != work.shape:
        raise RuntimeError(f"{corruption} returned shape {out.shape}, {work.shape}")
    # 0/0 (e.g. spatter when no liquid survives its threshold) means "no
    # overlay": keep the clean pixel there.
    bad = ~np.isfinite(out)
    if bad.any():
        out[bad] = work[bad]
    out = np.clip(out, 0, 255).astype(np.uint8)  # truncation, as imagecorruptions
    if factor > 1:  # exact block average = inverse of the nearest upscale
        blocks = out.reshape(h, factor, w, factor, 3).astype(np.float64)
        out = np.rint(blocks.sum(axis=(1, 3)) / (factor * factor)).astype(np.uint8)
    return out


def corrupt_images(
    images_uint8: np.ndarray,
    corruption: str,
    severity: int,
    seed: int = 0,
    min_size: int = 32,
    start_index: int = 0,
) -> np.ndarray:
    """Apply an ImageNet-C corruption to uint8 images, reproducibly.

    Wraps the corruption functions of the ``imagecorruptions`` package (the
    ImageNet-C code) with:

    * Determinism: the package draws from NumPy's *global* RNG. Each image is
      corrupted after ``np.random.seed(s_i)`` with ``s_i`` derived from
      ``(seed, corruption, severity, start_index + i)`` (``SeedSequence``), and
      the caller's global RNG state is restored afterwards. The result does not
      depend on batching (use ``start_index`` for chunks). Not thread-safe.
    * Grayscale: ``(H, W)`` or ``(H, W, 1)`` images are replicated to RGB,
      corrupted, and the first channel is returned. For channel-independent
      corruptions (noise, blur, ...) this is exactly the corruption of the
      single channel with the original severity parameters (converting back
      with a luminance weighting would, e.g., shrink additive noise by ~1/3).
      ``saturate`` is therefore the identity on grayscale images.
    * Small images: the package requires at least 32x32 and its spatial
      parameters (blur radii, frost/snow/spatter textures, zoom, elastic
      displacement) are in pixels. Images with ``min(H, W) < min_size`` are
      upscaled by the integer factor ``f = ceil(min_size / min(H, W))`` with
      nearest-neighbour interpolation, corrupted, and reduced back by exact
      ``f x f`` block averaging (rounded), so that the clean image survives the
      round trip unchanged. Size-agnostic corruptions
      (:data:`SIZE_AGNOSTIC_CORRUPTIONS`: noises, brightness, contrast,
      saturate, JPEG) are applied at native resolution, since averaging would
      dilute their per-pixel effect.
    * Compatibility with current scikit-image (see ``_imagecorruptions_module``)
      and replacement of NaN outputs by the clean pixel (spatter's ``0/0``).

    Labels are not involved.

    Args:
        images_uint8: one image ``(H, W)``/``(H, W, C)`` or a batch
            ``(N, H, W, C)``, ``C`` in ``{1, 3}``, dtype uint8.
        corruption: one of :data:`ALL_CORRUPTIONS`.
        severity: 1..5.
        seed: base seed.
        min_size: minimum side length at which spatial corruptions are applied.
        start_index: index of the first image (for per-image seeds).

    Returns:
        uint8 array with the same shape as ``images_uint8``.

    Example:
        >>> x = np.full((2, 8, 8, 1), 128, np.uint8)
        >>> y = corrupt_images(x, "gaussian_noise", 3, seed=1)
        >>> y.shape, y.dtype.name
        ((2, 8, 8, 1), 'uint8')
    """
    images = np.asarray(images_uint8)
    if images.dtype != np.uint8:
        raise TypeError(f"images must be uint8, got {images.dtype}")
    if corruption not in ALL_CORRUPTIONS:
        raise ValueError(f"unknown corruption {corruption!r}")
    if int(severity) != severity or int(severity) not in SEVERITIES:
        raise ValueError(f"severity must be an integer in 1..5, got {severity!r}")
    severity = int(severity)
    orig_shape = images.shape
    if images.ndim == 2:
        batch = images[None, :, :, None]
    elif images.ndim == 3:
        batch = images[None]
    elif images.ndim == 4:
        batch = images
    else:
        raise ValueError(f"expected (H, W), (H, W, C) or (N, H, W, C): {orig_shape}")
    channels = batch.shape[-1]
    if channels not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels, got {channels}")

    out = np.empty_like(batch)
    state = np.random.get_state()
    try:
        with _imagecorruptions_module() as mod:
            for i, img in enumerate(batch):
                rgb = img if channels == 3 else np.repeat(img, 3, axis=-1)
                np.random.seed(_image_seed(seed, corruption, severity, start_index + i))
                res = _corrupt_rgb(
                    mod, np.ascontiguousarray(rgb), corruption, severity, min_size
                )
                out[i] = res if channels == 3 else res[..., :1]
    finally:
        np.random.set_state(state)
    return out.reshape(orig_shape)


def _images_key(images: np.ndarray) -> str:
    digest = hashlib.sha1(images.tobytes())
    digest.update(repr(images.shape).encode())
    return digest.hexdigest()[:16]


def corrupted(
    images: np.ndarray,
    corruption: str,
    severity: int,
    seed: int,
    cache_dir: str | None = None,
) -> np.ndarray:
    """``images`` corrupted offline, optionally cached in ``cache_dir``.

    The cache key is the content of the clean images, the corruption, the
    severity and the seed, so a cached set is reused only for identical input.

    Example:
        >>> x = np.full((2, 32, 32, 1), 100, np.uint8)
        >>> corrupted(x, "contrast", 5, seed=0).max() < 100
        True
    """
    path = None
    if cache_dir:
        os.makedirs(cache_dir, exist_ok=True)
        name = f"{_images_key(images)}_{corruption}_{severity}_seed{seed}.npy"
        path = os.path.join(cache_dir, name)
        if os.path.isfile(path):
            try:
                cached = np.load(path, allow_pickle=False)
                if cached.shape == images.shape and cached.dtype == np.uint8:
                    return cached
            except (OSError, ValueError):
                pass  # unreadable: regenerate
    out = corrupt_images(images, corruption, severity, seed=seed)
    if path:
        tmp = f"{path}.{os.getpid()}.tmp.npy"
        np.save(tmp, out)
        os.replace(tmp, path)
    return out


# --------------------------------------------------------------------------- reports
def corruption_names(names: Sequence[str], extra: bool = False) -> list[str]:
    """Corruption names of ``--corruptions``: ``all`` (the 15 benchmark ones),
    ``extra`` (the 4 held-out ones), names, or ``none``; ``extra=True`` appends
    the 4 held-out ones. Raises :class:`~lcr_larq.errors.ConfigError` naming the
    valid names.

    Example:
        >>> corruption_names(["fog", "snow"]), corruption_names(["none"])
        (['fog', 'snow'], [])
        >>> len(corruption_names(["all"], extra=True))
        19
    """
    groups = {"all": CORRUPTIONS, "extra": EXTRA_CORRUPTIONS, "none": ()}
    out = expand_names(names, groups, ALL_CORRUPTIONS, "corruption")
    if extra:
        out.extend(EXTRA_CORRUPTIONS)
    return list(dict.fromkeys(out))


def corruption_summary(
    accuracies: dict[str, dict[str, float]], normalized: bool
) -> dict[str, Any]:
    """CE per corruption, mCE over the benchmark corruptions and over the extra ones.

    ``accuracies`` maps corruption -> {severity (str): accuracy}. With
    ``normalized`` (ImageNet) each CE is divided by AlexNet's errors at the
    same severities; the 4 extra corruptions then use the mean errors of
    :data:`~lcr_larq.evaluation.corruptions.ALEXNET_MEAN_ERRORS_EXTRA` (third-party values).

    Example:
        >>> m = corruption_summary({"fog": {"1": 0.9, "2": 0.7}, "snow": {"1": 0.5, "2": 0.5}},
        ...                        normalized=False)
        >>> round(m["mce"], 6), m["mce_corruptions"]
        (0.7, ['fog', 'snow'])
    """
    errors = {
        c: [1.0 - by_severity[s] for s in sorted(by_severity, key=int)]
        for c, by_severity in accuracies.items()
    }
    severities = {c: [int(s) for s in sorted(by, key=int)] for c, by in accuracies.items()}
    benchmark = [c for c in errors if c in CORRUPTIONS]
    extra = [c for c in errors if c not in CORRUPTIONS]

    out: dict[str, Any] = {"corruption_error": {}, "mce": None, "mce_extra": None}
    for names, key in ((benchmark, "mce"), (extra, "mce_extra")):
        for c in names:
            if normalized:
                # AlexNet's errors at these severities (the extra corruptions
                # only have third-party means over all five).
                base = "alexnet" if c in CORRUPTIONS else {c: ALEXNET_MEAN_ERRORS_EXTRA[c]}
            else:
                base = None
            result = mean_corruption_error({c: errors[c]}, base, severities[c])
            out["corruption_error"].update(result.per_corruption)
        if names:
            out[key] = float(np.mean([out["corruption_error"][c] for c in names]))
    if out["mce"] is None:  # only extra corruptions asked for
        out["mce"] = out["mce_extra"]
        benchmark = extra
    out["mce_corruptions"] = benchmark
    out["corruption_error"] = {c: out["corruption_error"][c] for c in errors}
    return out


def normalization_text(normalized: bool, severities: list[int]) -> str:
    """One sentence saying how the CE values are computed."""
    span = f"severities {','.join(map(str, severities))}"
    if normalized:
        return (
            f"normalized: CE = sum of top-1 errors over {span} divided by AlexNet's "
            "(Hendrycks & Dietterich); mCE = mean CE, x100 for the paper's percent"
        )
    return (
        f"unnormalized: CE = sum of top-1 errors (fractions) over {span}; "
        "mCE = mean CE (AlexNet normalization exists for ImageNet only)"
    )

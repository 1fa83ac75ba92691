"""The report of ``lcr-evaluate``: clean accuracy, common corruptions and attacks of a trained run.

:func:`evaluate` loads a run's plain BNN (:func:`lcr_larq.training.runs.load_run`) and
its test split, and measures top-1 accuracy on the clean images and on the
corruptions of Hendrycks & Dietterich (ICLR 2019) at the chosen severities;
it returns the report that ``lcr-evaluate`` writes as ``robustness.json``.

Corrupted images come from one of two sources (``source``):

* ``tfds``: the published sets ``cifar10_corrupted`` (CIFAR-10-C) and
  ``imagenet2012_corrupted`` (ImageNet-C), read by the dataset's source
  (:meth:`lcr_larq.data.DatasetSource.corrupted_batches`) from ``data_dir``
  where they are already prepared (they are never downloaded here);
* ``generate``: the test split corrupted offline with the ImageNet-C code
  (:func:`lcr_larq.evaluation.corruptions.corrupt_images`), deterministically for
  a given seed: any dataset, and ImageNet streamed (``max_images``).

``auto`` takes ``tfds`` when every requested corruption and severity is
prepared there, and ``generate`` otherwise; the report says which. The
metrics are those of :func:`lcr_larq.evaluation.corruptions.corruption_summary`
(normalized by AlexNet's errors for ImageNet only). Clean accuracy is
:mod:`lcr_larq.evaluation.clean`. ``protocol="linear-probe"``
is the paper's ImageNet-C protocol (Shang et al., Sec. 4.4): the backbone is
frozen and only the classifier head is fine-tuned on the clean training split
before anything is measured.

``attacks`` adds adversarial robustness (:func:`lcr_larq.evaluation.attack_run.attack_run`):
the accuracy of the deployed BNN under FGSM and L∞ PGD through the
straight-through estimator at each ε (pixel levels, 1/255 of the range), with
gradient-free attacks beside PGD that flag gradient masking.

Example:
    >>> settings = EvaluateSettings(model_dir="runs/x", corruptions=("fog",), severities=(1, 5))
    >>> settings.corruption_list, settings.severities
    (['fog'], (1, 5))
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from lcr_larq.data import DatasetSource, DatasetSpec, dataset_spec
from lcr_larq.errors import ConfigError, DataError
from lcr_larq.evaluation.attack_run import attack_run
from lcr_larq.evaluation.attacks import MASKING_CHECKS, PGD_STEPS, attack_names, with_masking_check
from lcr_larq.evaluation.clean import accuracy, linear_probe, predictor, streamed_accuracy
from lcr_larq.evaluation.corruptions import (
    SEVERITIES,
    corrupted,
    corruption_names,
    corruption_summary,
    normalization_text,
)
from lcr_larq.settings import setting
from lcr_larq.training import runs
from lcr_larq.training.runs import ReportSettings

__all__ = [
    "ADVERSARIAL_PLOT_FILE",
    "PLOT_FILE",
    "PROTOCOLS",
    "REPORT_FILE",
    "SOURCES",
    "EvaluateSettings",
    "PARTS",
    "evaluate",
    "merge_report",
]

REPORT_FILE = "robustness.json"
PLOT_FILE = "corruption_accuracy.png"
ADVERSARIAL_PLOT_FILE = "adversarial_accuracy.png"
SOURCES = ("auto", "tfds", "generate")
PROTOCOLS = ("standard", "linear-probe")


@dataclass
class EvaluateSettings(ReportSettings):
    """The settings of ``lcr-evaluate``."""

    report_file: ClassVar[str] = REPORT_FILE
    corruptions: tuple[str, ...] = setting(
        ("all",), "all (the 15 benchmark corruptions), extra (the 4 held-out ones), names, or "
        "none (clean accuracy and --attacks only)",
        metavar="NAME",
    )
    extra: bool = setting(False, "add the 4 held-out corruptions")
    severities: tuple[int, ...] = setting(
        (1, 2, 3, 4, 5), "corruption severities", choices=SEVERITIES, metavar="S"
    )
    source: str = setting(
        "auto", "tfds (published sets in --data-dir), generate (offline), auto: tfds where "
        "prepared", choices=SOURCES,
    )
    data_dir: str | None = setting(None, "TFDS data directory (default: the run's)")
    dataset: str | None = setting(None, "evaluate on this dataset instead of the run's")
    attacks: tuple[str, ...] = setting(
        ("none",), "adversarial attacks on the deployed BNN, gradients through the sign by the "
        "straight-through estimator: fgsm, pgd (L-infinity, random start), random (sign "
        "noise), transfer (PGD on the float counterpart), all or none",
        metavar="ATTACK",
    )
    epsilons: tuple[float, ...] = setting(
        (0.0, 1.0, 2.0, 4.0, 8.0), "attack budgets ε in pixel levels (1/255 of the pixel "
        "range; perturbed images are clipped to it before normalization) (default: 0 1 2 4 8)",
        low=0, high=255, metavar="EPS",
    )
    pgd_steps: int = setting(
        PGD_STEPS, "PGD steps (each 2.5·ε/steps; an image counts as broken at the "
        "first step that fools the network)", low=1, high=100_000,
    )
    masking_check: str = setting(
        "both", "gradient-free attacks run beside pgd to detect gradient masking: random, "
        "transfer, both or none", choices=tuple(MASKING_CHECKS),
    )
    attack_samples: int | None = setting(
        None, "attack the first N test images (default: those of --max-images; a streamed "
        "split such as ImageNet needs one of the two)", low=1,
    )
    seed: int = setting(
        0, "seed of the generated corruptions and of the attacks' random draws", low=0,
        high=2**32 - 1,
    )
    max_images: int | None = setting(None, "use at most N test images", low=1)
    batch_size: int = setting(256, "inference batch size", low=1, high=2**20)
    cache_dir: str | None = setting(None, "cache generated corrupted images here")
    protocol: str = setting(
        "standard", "standard, or linear-probe: freeze the backbone and fine-tune the "
        "classifier head on the clean training split first", choices=PROTOCOLS,
    )
    probe_epochs: int = setting(5, "linear-probe epochs", low=1, high=10_000)
    probe_lr: float = setting(0.01, "linear-probe SGD learning rate", above=0, high=10)
    output: str | None = setting(None, f"report path (default: DIR/{REPORT_FILE})")
    no_plot: bool = setting(False, f"do not draw {PLOT_FILE} or {ADVERSARIAL_PLOT_FILE}")
    quiet: bool = setting(False, "no progress lines")

    @property
    def corruption_list(self) -> list[str]:
        return corruption_names(self.corruptions, self.extra)

    @property
    def dataset_spec(self) -> DatasetSpec | None:
        """``--dataset`` parsed when the settings were made; None: the run's."""
        return self._dataset_spec

    @property
    def attack_list(self) -> list[str]:
        """The attacks run: ``--attacks`` and, beside PGD, the masking check."""
        return with_masking_check(self.attacks, self.masking_check)

    def check(self) -> None:
        super().check()
        self._dataset_spec = dataset_spec(self.dataset) if self.dataset else None
        try:
            corruption_names(self.corruptions, self.extra)
        except ValueError as error:
            raise ConfigError(f"--corruptions: {error}") from None
        try:
            attack_names(self.attacks)
        except ValueError as error:
            raise ConfigError(f"--attacks: {error}") from None
        if self.cache_dir:
            try:
                os.makedirs(self.cache_dir, exist_ok=True)
            except OSError as error:
                raise ConfigError(
                    f"cannot create --cache-dir {self.cache_dir} ({error.strerror}): "
                    "choose a writable directory"
                ) from None


# --------------------------------------------------------------------------- report parts
#: The two parts of a report, each measured on its own: the corruptions
#: (``--corruptions``, ``--severities``) and the attacks (``--attacks``).
PARTS = ("corruptions", "attacks")
#: The keys of ``robustness.json`` each part writes (beside its ``seconds``).
PART_KEYS = {
    "corruptions": ("source", "corrupted_images", "corruptions", "severities", "accuracy",
                    "corruption_error", "mce", "mce_corruptions", "mce_extra", "normalized",
                    "normalization", "mean_corruption_accuracy"),
    "attacks": ("adversarial", "gradient_masking", "float_clean_accuracy", "transfer_source",
                "adversarial_setup"),
}
_PART_SECONDS = {"corruptions": ("corrupt", "inference"), "attacks": ("attacks",)}


def merge_report(kept: dict, fresh: dict, parts) -> dict:
    """``fresh``, a report of the same run and images that measured only
    ``parts`` (names of :data:`PARTS`), with the other parts taken from
    ``kept`` (their entries and seconds); ``seconds.total`` adds the parts'.

    Example:
        >>> kept = {"mce": 1.2, "adversarial": [1], "seconds": {"corrupt": 5.0, "inference": 1.0,
        ...         "attacks": 9.0, "total": 16.0}}
        >>> fresh = {"mce": None, "adversarial": [2], "seconds": {"corrupt": 0.0,
        ...          "inference": 0.0, "attacks": 3.0, "total": 4.0}}
        >>> merged = merge_report(kept, fresh, ["attacks"])
        >>> merged["mce"], merged["adversarial"], merged["seconds"]["total"]
        (1.2, [2], 9.0)
    """
    merged = dict(fresh)
    seconds = dict(fresh.get("seconds") or {})
    for part in PARTS:
        if part in parts:
            continue
        for key in PART_KEYS[part]:
            if key in kept:
                merged[key] = kept[key]
            else:
                merged.pop(key, None)
        for key in _PART_SECONDS[part]:
            if key in (kept.get("seconds") or {}):
                seconds[key] = kept["seconds"][key]
            else:
                seconds.pop(key, None)
    seconds["total"] = round(sum(v for k, v in seconds.items() if k != "total"), 2)
    merged["seconds"] = seconds
    return merged


# --------------------------------------------------------------------------- evaluation
def evaluate(
    settings: EvaluateSettings, progress: Callable[[str], None] | None = None
) -> dict:
    """Measures the run of ``settings.model_dir`` on clean and corrupted test
    images, and under ``settings.attacks``; returns the report. ``progress``
    gets one line per corruption and per attack."""
    start = time.perf_counter()
    run = runs.load_run(settings.model_dir, settings.dataset_spec, settings.data_dir)
    chosen = settings.corruption_list
    dataset, model, source = run.dataset, run.model, run.dataset_spec.source
    data_dir = settings.data_dir or (run.config.data_dir if run.config else None)
    use_tfds = bool(chosen) and _use_tfds(settings, source, data_dir)
    probe = None
    if settings.protocol == "linear-probe":
        probe = linear_probe(model, dataset, settings.probe_epochs, settings.probe_lr,
                             settings.seed)
    predict = predictor(model, dataset.normalize, settings.batch_size)
    clean_x, clean_y, clean_accuracy, num_images = _clean_accuracy(
        settings, dataset, model, predict, hold=bool(chosen) and not use_tfds
    )
    report = {
        "model_dir": os.path.abspath(run.directory),
        "model": model.name,
        "weights_sha256": (run.results or {}).get("weights_sha256"),
        "dataset": dataset.name,
        "lcr_lambda": run.config.lcr_lambda if run.config else None,
        "train_seed": run.config.seed if run.config else None,
        "bn_recalibration": run.bn_recalibration,
        "protocol": settings.protocol,
        "linear_probe": probe,
        "seed": settings.seed,
        "num_images": int(num_images),
        "clean_accuracy": clean_accuracy,
        "clean_error": 1.0 - clean_accuracy,
        **_corruption_entries(settings, predict, source, data_dir, use_tfds, clean_x, clean_y,
                              tuple(dataset.input_shape[:2]), progress),
    }
    if settings.attack_list:
        images, labels = _attack_images(settings, dataset, clean_x, clean_y)
        if progress:
            progress(f"attacks on {len(labels)} test images, ε in pixel levels (/255):")
        report.update(attack_run(
            run, images, labels, settings.attacks, settings.epsilons, settings.pgd_steps,
            settings.seed, settings.batch_size, settings.masking_check, progress,
        ))
        report["seconds"]["attacks"] = report["adversarial_setup"]["seconds_total"]
    report["seconds"]["total"] = round(time.perf_counter() - start, 2)
    return report


def _corruption_entries(
    settings: EvaluateSettings, predict: Callable, source: DatasetSource, data_dir: str | None,
    use_tfds: bool, clean_x: np.ndarray | None, clean_y: np.ndarray | None,
    size: tuple[int, int], progress: Callable[[str], None] | None,
) -> dict:
    """The report's corruption entries: accuracies, CE / mCE and where the
    images came from (empty accuracies and no mCE without corruptions)."""
    chosen, severities = settings.corruption_list, list(settings.severities)
    if use_tfds:
        measure = _published_sets(predict, source, data_dir, size, settings.max_images,
                                  settings.batch_size)
        source_text = f"tfds:{source.tfds_corrupted} (published corrupted test set)"
    else:
        measure = _generated_sets(predict, clean_x, clean_y, settings.seed, settings.cache_dir)
        source_text = f"generated offline with imagecorruptions (seed {settings.seed})"
    accuracies, counts, seconds = _measure_corruptions(measure, chosen, severities, progress)
    if not chosen:
        source_text = "none (--corruptions none)"
    return {
        "source": source_text,
        "corrupted_images": counts,
        "corruptions": list(chosen),
        "severities": severities,
        "accuracy": accuracies,
        **_metrics(accuracies, source.mce_normalized, severities),
        "seconds": {"corrupt": round(seconds["corrupt"], 2),
                    "inference": round(seconds["inference"], 2)},
    }


def _attack_images(
    settings: EvaluateSettings, dataset, clean_x: np.ndarray | None, clean_y: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """The first ``--attack-samples`` (else ``--max-images``) test images and labels."""
    count = settings.attack_samples or settings.max_images
    if clean_x is not None and (count is None or count <= len(clean_x)):
        return clean_x[:count], clean_y[:count]
    if dataset.test_arrays is None and count is None:
        raise ConfigError(
            f"the {dataset.name} test split is streamed, not held in memory: the attacks "
            "need --attack-samples N (or --max-images N)"
        )
    return runs.test_images(dataset, count)


#: ``measure(corruption, severity) -> (accuracy, images, seconds corrupting)``
Measure = Callable[[str, int], tuple[float, int, float]]


def _use_tfds(settings: EvaluateSettings, source: DatasetSource, data_dir: str | None) -> bool:
    """Whether the corrupted images come from the published TFDS sets: with
    ``--source tfds`` (which needs such a set for the dataset's ``source``), or
    ``auto`` when every requested one is prepared in ``data_dir``."""
    if settings.source == "tfds" and source.tfds_corrupted is None:
        raise ConfigError(
            f"TFDS has no corrupted version of {source.name}: use --source generate")
    return settings.source == "tfds" or (
        settings.source == "auto" and source.corrupted_prepared(
            settings.corruption_list, list(settings.severities), data_dir)
    )


def _clean_accuracy(
    settings: EvaluateSettings, dataset, model, predict: Callable, hold: bool
) -> tuple[np.ndarray | None, np.ndarray | None, float, int]:
    """``(images, labels, accuracy, count)`` of the clean test split; a streamed
    split is held in memory only when its corruptions are generated (``hold``),
    otherwise it is streamed (``None`` images)."""
    max_images = settings.max_images
    streamed = dataset.test_arrays is None
    if streamed and hold and max_images is None:
        raise ConfigError(
            f"the {dataset.name} test split is streamed, not held in memory: generating its "
            "corruptions needs --max-images N (or --source tfds with the published sets)"
        )
    if streamed and not hold:
        return None, None, *streamed_accuracy(model, dataset.test, max_images)
    clean_x, clean_y = runs.test_images(dataset, max_images)
    return clean_x, clean_y, accuracy(predict, clean_x, clean_y), len(clean_y)


def _published_sets(
    predict: Callable, source: DatasetSource, data_dir: str | None, size: tuple[int, int],
    max_images: int | None, batch_size: int,
) -> Measure:
    """:data:`Measure` on the published corrupted test sets, streamed."""

    def measure(corruption: str, severity: int) -> tuple[float, int, float]:
        correct = count = 0
        for images, labels in source.corrupted_batches(
            corruption, severity, data_dir, size, max_images, batch_size
        ):
            correct += int(np.sum(predict(images) == labels))
            count += len(labels)
        if not count:
            raise DataError(f"no images for {corruption} at severity {severity}")
        return correct / count, count, 0.0

    return measure


def _generated_sets(
    predict: Callable, images: np.ndarray, labels: np.ndarray, seed: int, cache_dir: str | None
) -> Measure:
    """:data:`Measure` on ``images`` corrupted offline (cached in ``cache_dir``)."""

    def measure(corruption: str, severity: int) -> tuple[float, int, float]:
        t0 = time.perf_counter()
        corrupted_images = corrupted(images, corruption, severity, seed, cache_dir)
        corrupt_seconds = time.perf_counter() - t0
        return accuracy(predict, corrupted_images, labels), len(labels), corrupt_seconds

    return measure


def _measure_corruptions(
    measure: Measure, corruptions: list[str], severities: list[int],
    progress: Callable[[str], None] | None,
) -> tuple[dict[str, dict[str, float]], dict[str, int], dict[str, float]]:
    """``(accuracy per corruption and severity, images per set, seconds spent
    corrupting and in inference)``; one progress line per corruption."""
    accuracies: dict[str, dict[str, float]] = {}
    counts: dict[str, int] = {}
    seconds = {"corrupt": 0.0, "inference": 0.0}
    for c in corruptions:
        accuracies[c] = {}
        for s in severities:
            t0 = time.perf_counter()
            accuracies[c][str(s)], counts[f"{c}_{s}"], corrupting = measure(c, s)
            seconds["corrupt"] += corrupting
            seconds["inference"] += time.perf_counter() - t0 - corrupting
        if progress:
            cells = " ".join(f"{100 * a:5.1f}" for a in accuracies[c].values())
            progress(f"{c:18s} {cells}")
    return accuracies, counts, seconds


def _metrics(
    accuracies: dict[str, dict[str, float]], normalized: bool, severities: list[int]
) -> dict:
    """The report's CE / mCE entries (see
    :func:`lcr_larq.evaluation.corruptions.corruption_summary`) and the mean
    accuracy over every corrupted set; None without corruptions."""
    if not accuracies:
        return {"corruption_error": {}, "mce": None, "mce_corruptions": [], "mce_extra": None,
                "normalized": normalized, "normalization": None,
                "mean_corruption_accuracy": None}
    metrics = corruption_summary(accuracies, normalized)
    return {
        "corruption_error": metrics["corruption_error"],
        "mce": metrics["mce"],
        "mce_corruptions": metrics["mce_corruptions"],
        "mce_extra": metrics["mce_extra"],
        "normalized": normalized,
        "normalization": normalization_text(normalized, severities),
        "mean_corruption_accuracy": float(
            np.mean([a for by in accuracies.values() for a in by.values()])
        ),
    }

"""``lcr-plots``: the figures of a trained run (PNG), written into its directory.

For any run of ``lcr-train`` (and a second one with ``--compare``):

* ``sigma_ratio.png`` — σ_B/σ_F per block over training (``history.csv``,
  runs with λ > 0) and for the final model(s) on test images;
* ``weight_histograms.png`` — latent weights of every binary convolution,
  10,000 sampled per layer (the paper's Fig. 2);
* ``activation_correlation.png`` — the paper's Fig. 3: sample correlation and
  channel cosines of the activations entering a block, binary and latent path;

and, where ``robustness.json`` (``lcr-evaluate``) or ``lipschitz.json``
(``lcr-diagnose``) exist, ``corruption_accuracy.png``,
``adversarial_accuracy.png`` (accuracy against ε per attack, when the report
has attacks) and ``lipschitz.png``;
with ``--group LABEL:DIR1,DIR2,...`` (repeated), ``corruption_error_groups.png``:
CE per corruption, mean ± std over each group's runs::

    lcr-plots --model-dir RUN --compare BASELINE_RUN
    lcr-plots --model-dir RUN --group "λ=4:RUN_A,RUN_B" --group "λ=0:RUN_C,RUN_D"
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from lcr_larq import cli, diagnostics, plots
from lcr_larq.errors import ConfigError, RunError
from lcr_larq.settings import Settings, echo, setting
from lcr_larq.training import runs

__all__ = [
    "PlotsSettings",
    "draw",
    "main",
    "parse_group",
    "robustness_figures",
]


@dataclass
class PlotsSettings(Settings):
    """The settings of ``lcr-plots``."""

    model_dir: str | None = setting(None, "run directory written by lcr-train (required)")
    compare: str | None = setting(None, "a second run directory (e.g. without LCR)")
    output_dir: str | None = setting(None, "where the PNGs go (default: --model-dir)")
    samples: int = setting(64, "test images for the measured figures", low=2, high=10**5)
    block: str | None = setting(None, "block of the correlation figure (default: the last)")
    data_dir: str | None = setting(None, "dataset directory (default: the run's)")
    group: tuple[str, ...] | None = setting(
        None, f"LABEL:DIR1,DIR2,... runs whose robustness.json are averaged (e.g. seeds), "
        f"one group per value; draws {plots.GROUPS_FILE}", metavar="LABEL:DIRS", repeat=True,
    )

    @property
    def out(self) -> str:
        return self.output_dir or self.model_dir

    @property
    def groups(self) -> list[tuple[str, list[str]]]:
        return [parse_group(text) for text in self.group or ()]

    def check(self) -> None:
        if not self.model_dir:
            raise ConfigError("--model-dir is required: give a run directory written by lcr-train")
        for text in self.group or ():
            parse_group(text)


def parse_group(text: str) -> tuple[str, list[str]]:
    """``LABEL:DIR1,DIR2,...`` of ``--group``.

    Example:
        >>> parse_group("λ=4:runs/a,runs/b")
        ('λ=4', ['runs/a', 'runs/b'])
    """
    label, sep, dirs = text.rpartition(":")
    if not sep or not label or not dirs:
        raise ConfigError(f"--group {echo(text)}: write LABEL:DIR1,DIR2,...")
    return label, [d for d in dirs.split(",") if d]


def draw(settings: PlotsSettings) -> None:
    out = settings.out
    dirs = [settings.model_dir] + ([settings.compare] if settings.compare else [])
    loaded = [runs.load_run(d, data_dir=settings.data_dir) for d in dirs]
    labels = [
        plots.run_label(r.config.lcr_lambda if r.config else None,
                        r.config.seed if r.config else None, r.directory,
                        bool(r.config and r.config.full_precision))
        for r in loaded
    ]
    if len(labels) == 2 and labels[0] == labels[1]:
        labels = [os.path.basename(os.path.normpath(d)) for d in dirs]
    images = [diagnostics.sample_images(r.dataset, settings.samples) for r in loaded]
    finals = [diagnostics.retention_sigmas(r.model, x, iterations=100)
              for r, x in zip(loaded, images)]
    paths = [
        plots.plot_sigma_ratio(
            [(label, runs.read_history(d), f) for label, d, f in zip(labels, dirs, finals)],
            os.path.join(out, plots.SIGMA_FILE),
        ),
        plots.plot_weight_histograms(
            [(label, diagnostics.latent_weights(r.model)) for label, r in zip(labels, loaded)],
            os.path.join(out, plots.HISTOGRAM_FILE),
        ),
        plots.plot_activation_correlation(
            *diagnostics.block_activations(loaded[0].model, images[0][:32], settings.block),
            os.path.join(out, plots.CORRELATION_FILE), labels[0],
        ),
    ]
    paths += robustness_figures(labels, dirs, out)
    lipschitz = runs.load_json(os.path.join(settings.model_dir, "lipschitz.json"))
    if lipschitz:
        paths.append(plots.plot_lipschitz(lipschitz, os.path.join(out, plots.LIPSCHITZ_FILE)))
    groups = []
    for label, group_dirs in settings.groups:
        group_reports = []
        for d in group_dirs:
            report = runs.load_json(os.path.join(d, "robustness.json"))
            if report is None:
                raise RunError(f"{d} has no robustness.json: run lcr-evaluate on it")
            group_reports.append(report)
        groups.append((label, group_reports))
    if groups:
        paths.append(plots.plot_corruption_groups(groups, os.path.join(out, plots.GROUPS_FILE)))
        for label, group_reports in groups:
            s = plots.group_summary(group_reports)
            print(
                f"{label}: mCE {s['mce_mean']:.4f} ± {s['mce_std']:.4f}, clean accuracy "
                f"{100 * s['clean_accuracy_mean']:.2f} ± {100 * s['clean_accuracy_std']:.2f}% "
                f"over {s['runs']} runs"
            )
    cli.wrote(*paths)


def robustness_figures(labels: list[str], dirs: list[str], out: str) -> list[str]:
    """The figures of the runs' ``robustness.json``: corruptions and attacks,
    each drawn when a report holds them."""
    reports = [(label, runs.load_json(os.path.join(d, "robustness.json")))
               for label, d in zip(labels, dirs)]
    reports = [(label, report) for label, report in reports if report]
    paths = []
    corrupted = [(label, report) for label, report in reports if report.get("corruptions")]
    if corrupted:
        paths.append(plots.plot_corruption_accuracy(
            corrupted, os.path.join(out, plots.CORRUPTION_FILE)))
    attacked = [(label, report) for label, report in reports if report.get("adversarial")]
    if attacked:
        paths.append(plots.plot_adversarial_accuracy(
            attacked, os.path.join(out, plots.ADVERSARIAL_FILE)))
    return paths


def _draw(settings: PlotsSettings) -> None:
    try:
        draw(settings)
    except OSError as error:
        raise ConfigError(
            f"cannot write the figures ({error.strerror}): check --output-dir"
        ) from None


main = cli.command(PlotsSettings, _draw, __doc__)

if __name__ == "__main__":
    sys.exit(main())

"""Does a setting help, on my model and data? Arms × seeds, with confidence intervals.

A study is a grid: every combination of the values of one or more ``vary``
settings (``lcr_lambda=0,4``; the first value of each is the control) is an
*arm*, trained with ``seeds`` seeds (the run's ``seed``, ``seed + 1``, …).
Each arm × seed is a *cell*: an ordinary run directory of ``lcr-train``
under the study's ``output_dir`` (``lcr_lambda=4/seed_1``). The cells are
listed arm by arm, each arm over the same seeds (so every arm's seed s pairs
with the control's), and a cell's index is its place in that list
(:func:`jobs`).

Any number of *workers* train the cells, on one machine or many: each claims
a cell on the shared ``output_dir`` (:mod:`lcr_larq.experiments.claims`: an
atomic claim file, a heartbeat, taken over when its worker is gone), trains
it in the worker's own process and measures what the study asks, then claims
the next (:func:`work`, on :mod:`lcr_larq.experiments.workers`). A worker
given a cell index (``cell``, or a scheduler's ``SLURM_ARRAY_TASK_ID`` or
``JOB_COMPLETION_INDEX``: an array job) trains that cell only. The study's
recipe is written once, to ``study.yaml``; a worker with other settings is
refused. ``lcr-study`` itself is one worker followed by the report
(``parallel`` workers at once, one GPU each, or sharing the CPU), and
``report`` joins whatever has finished, naming the cells still missing. A
finished cell is skipped and a killed one resumes from its last finished
epoch, so rerunning the same study command completes it.

The report (:func:`report`): per arm n, mean, std and the 95 % Student-t
interval of the test accuracy and, when asked, of

* ``robustness``: the corruption mCE and the robust accuracy under each of
  ``attacks`` at each of ``epsilons`` (``robust_accuracy_pgd_eps2``: PGD at
  ε = 2/255, by ``lcr-evaluate --attacks``), and, beside PGD, the per-image
  worst case over PGD and the gradient-free attacks of the masking check
  (``robust_accuracy_worst_eps2``); the runs where a gradient-free attack
  beat PGD beyond chance (``lcr-evaluate``'s masking test) are listed under
  ``gradient_masking``, those where one was stronger at all under
  ``gradient_free_stronger``. Every run is evaluated on the same test
  images with the same corruption seed, so each corrupted set is generated
  once per study (cached in ``corruption-cache/``), and a run's report is
  measured again only in its stale part: its attacks when only the attack
  settings changed, its corruptions when only the severities did;
* ``diagnose``: the rank correlation between the retention estimate and the
  exact norms, the empirical local Lipschitz estimate of the deployed network
  and log10 of the product of the exact norms of its binary convolutions
  (``lcr-diagnose``);

per arm against the control, the per-seed paired differences with their
mean, interval and paired t-test p-value, and how sensitive that test was
(the smallest difference it detects with 80 % power, the seeds a 1-point
difference would need: :func:`~lcr_larq.experiments.statistics.sensitivity`);
with both, Spearman's ρ over every
finished run between each Lipschitz estimate and each robust accuracy
(``lipschitz_vs_robustness``); every run that failed or diverged, listed with
its message; the cells not finished yet; the hardware the cells ran on,
and which pairs ran on different hardware. Written as ``study.json``,
``study.csv``, ``study.md`` (Markdown tables) and ``study.png``.

Example:
    >>> settings = StudySettings(vary=("lcr_lambda=0,4", "lcr_beta=2,3"), seeds=2)
    >>> [arm.name for arm in arms(settings)]
    ['lcr_lambda=0_lcr_beta=2', 'lcr_lambda=0_lcr_beta=3', 'lcr_lambda=4_lcr_beta=2', \
'lcr_lambda=4_lcr_beta=3']
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import tensorflow as tf

from lcr_larq import training
from lcr_larq.errors import ConfigError, RunError, UserError
from lcr_larq.evaluation.attacks import (
    MASKING_TEST,
    PGD_STEPS,
    WORST,
    attack_names,
    with_masking_check,
)
from lcr_larq.evaluation.report import PARTS, REPORT_FILE, merge_report
from lcr_larq.experiments import claims, statistics, workers
from lcr_larq.settings import (
    convert,
    echo,
    flag_name,
    kinds,
    load_recipe,
    recipe_dict,
    save_recipe,
    setting,
)
from lcr_larq.training import (
    RUNS_DIR,
    TrainConfig,
    checked_data,
    input_size_note,
    provenance,
    runs,
)

__all__ = [
    "CORRUPTION_CACHE",
    "HOW_IT_RUNS",
    "LIPSCHITZ_ESTIMATES",
    "MARKDOWN",
    "METRICS",
    "NOT_VARIED",
    "ONE_POINT",
    "PLOT",
    "RECIPE",
    "REPORT",
    "TABLE",
    "Arm",
    "Job",
    "StudySettings",
    "arms",
    "cell_index",
    "cell_state",
    "check_data",
    "evaluate_flags",
    "finished",
    "gpu_count",
    "hardware_of",
    "jobs",
    "lipschitz_correlations",
    "metric_names",
    "one_point",
    "outcomes_on_disk",
    "parse_vary",
    "recipe_differences",
    "record_recipe",
    "report",
    "retention_rank_correlation",
    "robust_metric",
    "robustness_metrics",
    "run_study",
    "run_worker",
    "stale_parts",
    "work",
]

REPORT = "study.json"
#: The study's recipe, written once by the first worker.
RECIPE = "study.yaml"
#: Where a study keeps the corrupted test sets its runs share (``lcr-evaluate --cache-dir``).
CORRUPTION_CACHE = "corruption-cache"
TABLE = "study.csv"
MARKDOWN = "study.md"
PLOT = "study.png"
#: Settings a study cannot vary: the seed is its replicate axis, the rest
#: only say where and how a run reports.
NOT_VARIED = ("seed", "output_dir", "verbose", "overwrite")
#: ``test_accuracy_moving_statistics``: the same weights with the BN statistics
#: of training, before re-estimation (what most BNN code reports);
#: ``test_accuracy_as_trained``: computed as trained, in 16 bits under
#: ``--mixed-precision`` (a study where some arm has it; a float32 run's is its
#: test accuracy).
METRICS = ("test_accuracy", "test_accuracy_moving_statistics", "test_accuracy_as_trained",
           "mce", "retention_rank_correlation", "empirical_lipschitz", "log10_exact_norm_product")
#: The Lipschitz estimates of ``diagnose`` that are correlated with robust accuracy.
LIPSCHITZ_ESTIMATES = ("empirical_lipschitz", "log10_exact_norm_product")
#: What "1 point" of a metric is, for the seeds a 1-point difference needs:
#: a percentage point of an accuracy. The other metrics have no common unit
#: (the report gives their smallest detectable difference only).
ONE_POINT = {"test_accuracy": 0.01, "robust_accuracy": 0.01}
#: Settings that say how a study runs, not what it computes: its workers may
#: differ in them.
HOW_IT_RUNS = ("output_dir", "verbose", "parallel")


@dataclass
class StudySettings(TrainConfig):
    """The settings of ``lcr-study``: every training setting (the defaults
    of every arm) and the study's own."""

    vary: tuple[str, ...] = setting(
        ("lcr_lambda=0,4",),
        "FIELD=v1,v2,… a training setting and its values, the first the control; repeat "
        "--vary for a grid of arms",
        metavar="FIELD=VALUES", repeat=True,
    )
    seeds: int = setting(5, "seeds per arm: --seed, --seed + 1, …", low=1, high=1000)
    robustness: bool = setting(
        False, "also measure each run's corruption mCE (lcr-evaluate, generated corruptions) "
        "and its accuracy under --attacks"
    )
    mce_severities: tuple[int, ...] = setting(
        (1, 3, 5), "severities of --robustness", choices=(1, 2, 3, 4, 5), metavar="S"
    )
    corruption_cache: bool = setting(
        True, f"generate each corrupted test set of --robustness once for the whole study, "
        f"kept in OUTPUT_DIR/{CORRUPTION_CACHE} (false: every run generates its own)"
    )
    attacks: tuple[str, ...] = setting(
        ("pgd",), "attacks of --robustness whose accuracy at each --epsilons is a metric: "
        "fgsm, pgd, random, transfer, all or none (pgd brings the gradient-masking check "
        "of lcr-evaluate)", metavar="ATTACK",
    )
    epsilons: tuple[float, ...] = setting(
        (1.0, 2.0, 4.0, 8.0), "ε of --attacks in pixel levels, 1/255 of the pixel range "
        "(default: 1 2 4 8)", low=0, high=255, metavar="EPS",
    )
    pgd_steps: int = setting(PGD_STEPS, "PGD steps of --attacks", low=1,
                             high=100_000)
    attack_samples: int | None = setting(
        None, "attack the first N test images of each run (default: all)", low=1
    )
    diagnose: bool = setting(
        False, "also run lcr-diagnose: how well the retention estimate tracks the exact norm "
        "(the rank correlation over blocks per run), the empirical local Lipschitz estimate "
        "and the product of the exact norms; with --robustness, their rank correlation with "
        "robust accuracy over the runs"
    )
    parallel: int = setting(
        1, "workers at once on this machine, one GPU each (at most one per GPU); without a "
        "GPU they share the CPU", low=1, high=64,
    )
    worker: bool = setting(
        False, "be one worker of the study in --output-dir (shared by any number of "
        "workers, on any machines): train the cells it claims there, write no report; with "
        "--cell (or SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX) that cell only",
        recipe=False,
    )
    cell: int | None = setting(
        None, "with --worker: the index of the one cell to train, arms × seeds in order from 0 "
        "(default: SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX when set, else every cell "
        "not yet claimed)", low=0, recipe=False,
    )
    report: bool = setting(
        False, "train nothing: join the cells finished so far into the report, naming the "
        "cells still missing", recipe=False,
    )

    @property
    def run_dir(self) -> str:
        return self.output_dir or os.path.join(RUNS_DIR, "study")

    @property
    def attack_list(self) -> list[str]:
        """The attacks whose accuracy is a metric (none without ``robustness``)."""
        return attack_names(self.attacks) if self.robustness else []

    @property
    def robust_metrics(self) -> list[str]:
        """:func:`robust_metric` of every attack and ε of the study, and of the
        per-image worst case when ``lcr-evaluate`` runs more than one attack
        (PGD brings its masking check)."""
        attacks = self.attack_list
        if len(with_masking_check(attacks)) > 1:
            attacks = [*attacks, WORST]
        return [robust_metric(a, e) for a in attacks for e in self.epsilons]

    def check(self) -> None:
        super().check()
        try:
            attack_names(self.attacks)
        except ValueError as error:
            raise ConfigError(f"--attacks: {error}") from None
        for arm in arms(self):
            for seed in range(self.seeds):
                arm.config(self, seed)  # a TrainConfig is checked when it is made
        if self.cell is not None and not self.worker:
            raise ConfigError("--cell N is the cell of a worker: add --worker")
        if self.report and self.worker:
            raise ConfigError("--report joins what the workers finished: give it without "
                              "--worker")


@dataclass(frozen=True)
class Arm:
    """One combination of the varied settings."""

    values: tuple[tuple[str, object], ...]

    @property
    def name(self) -> str:
        return "_".join(f"{k}={_text(v)}" for k, v in self.values)

    def config(self, settings: StudySettings, index: int) -> TrainConfig:
        """The training settings of seed number ``index`` of this arm."""
        base = {f.name: getattr(settings, f.name) for f in dataclasses.fields(TrainConfig)}
        base.update(dict(self.values))
        base.update(
            seed=settings.seed + index, overwrite=False,
            output_dir=os.path.join(settings.run_dir, self.name, f"seed_{settings.seed + index}"),
        )
        return TrainConfig(**base)


def _text(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def robust_metric(attack: str, epsilon: float) -> str:
    """The study's name of the accuracy under ``attack`` at ε (pixel levels).

    Example:
        >>> robust_metric("pgd", 2.0), robust_metric("fgsm", 0.5)
        ('robust_accuracy_pgd_eps2', 'robust_accuracy_fgsm_eps0.5')
    """
    return f"robust_accuracy_{attack}_eps{float(epsilon):g}"


def parse_vary(text: str) -> tuple[str, list]:
    """``FIELD=v1,v2,…`` as the field and its values of their type.

    Example:
        >>> parse_vary("lcr_samples=16,32")
        ('lcr_samples', [16, 32])
    """
    field_name, sep, values = text.partition("=")
    field_name = field_name.strip().replace("-", "_")
    field_kinds = kinds(TrainConfig)
    valid = sorted(k for k in field_kinds if k not in NOT_VARIED)
    if not sep or not values.strip():
        raise ConfigError(f"--vary {echo(text)}: write FIELD=v1,v2,… with FIELD one of {valid}")
    if field_name not in valid:
        raise ConfigError(
            f"--vary {echo(text)}: unknown field {echo(field_name)}; valid fields: {valid}"
        )
    kind = field_kinds[field_name]
    if kind.sequence:
        raise ConfigError(f"--vary {echo(text)}: {field_name} takes several values itself")
    parsed = []
    for part in (p.strip() for p in values.split(",")):
        try:
            parsed.append(convert(kind, part, from_text=True))
        except ValueError:
            raise ConfigError(
                f"--vary {echo(text)}: {field_name} needs {kind.noun}, got {echo(part)}"
            ) from None
    if len(set(parsed)) != len(parsed):
        raise ConfigError(f"--vary {echo(text)}: a value appears twice")
    return field_name, parsed


def arms(settings: StudySettings) -> list[Arm]:
    """Every combination of the ``vary`` values; the first is the control."""
    grid = [parse_vary(text) for text in settings.vary]
    names = [name for name, _ in grid]
    if len(set(names)) != len(names):
        raise ConfigError("--vary: each field once (give all its values in one --vary)")
    combos = itertools.product(*(values for _, values in grid))
    return [Arm(tuple(zip(names, combo))) for combo in combos]


# --------------------------------------------------------------------------- running
@dataclass
class Job:
    """One cell of a study: an arm's run of one seed."""

    arm: Arm
    seed: int
    config: TrainConfig
    #: Its place in :func:`jobs`, the cell index of ``--cell``.
    index: int = 0

    @property
    def directory(self) -> str:
        return self.config.output_dir

    @property
    def claims(self) -> str:
        """The folder of the claims of workers on it, beside its run directory
        (:mod:`lcr_larq.experiments.claims`)."""
        return f"{self.directory}.claims"

    @property
    def log_path(self) -> str:
        """The cell's record: one JSON line per training that ended (trained,
        failed, given up) and per claim taken over from a dead worker."""
        return f"{self.directory}.log"

    @property
    def label(self) -> str:
        return f"{self.arm.name} seed {self.seed}"


def jobs(settings: StudySettings) -> list[Job]:
    """Every cell: arm by arm (the order of :func:`arms`), each over the same
    seeds ``seed``, ``seed + 1``, …; a cell's index is its place here."""
    cells = [(arm, i) for arm in arms(settings) for i in range(settings.seeds)]
    return [Job(arm, settings.seed + i, arm.config(settings, i), index)
            for index, (arm, i) in enumerate(cells)]


def finished(job: Job) -> dict | None:
    """The results of a job's run when it has finished with the job's settings."""
    results = runs.read_results(job.directory)
    recipe = runs.read_recipe(job.directory) if results is not None else None
    if recipe is None or runs.differing_settings(recipe, job.config):
        return None
    return results


def _extras(settings: StudySettings, job: Job, results: dict | None = None) -> dict:
    """mCE, robust accuracies and the Lipschitz diagnostics of a finished run,
    when asked (running ``lcr-evaluate`` on the stale parts of its report,
    :func:`stale_parts`, and ``lcr-diagnose`` where its report is missing)."""
    out: dict = {}
    if settings.robustness:
        path = os.path.join(job.directory, REPORT_FILE)
        report = runs.load_json(path)
        stale = stale_parts(report, settings, results)
        if stale:
            report = _evaluate(settings, job.directory, stale, report or {})
        out.update(robustness_metrics(report, settings))
    if settings.diagnose:
        path = os.path.join(job.directory, "lipschitz.json")
        report = runs.load_json(path)
        if report is None or not report.get("summary", {}).get("network", {}).get("empirical"):
            _run_command("diagnose", ["--model-dir", job.directory, "--methods", "exact",
                                      "retention_estimate", "--quiet", "--no-plot"])
            report = runs.load_json(path)
        network = report["summary"]["network"]
        out["retention_rank_correlation"] = retention_rank_correlation(report)
        out["empirical_lipschitz"] = network.get("empirical_lipschitz")
        out["log10_exact_norm_product"] = network.get("log10_exact_product")
    return out


def _evaluate(settings: StudySettings, directory: str, parts: list[str], kept: dict) -> dict:
    """Runs ``lcr-evaluate`` on the ``parts`` of a run's robustness, keeps the
    other parts of its report ``kept`` and writes the whole report."""
    fresh_path = os.path.join(directory, f".{REPORT_FILE}.{os.getpid()}.part")
    try:
        _run_command("evaluate", [*evaluate_flags(settings, directory, parts),
                                  "--output", fresh_path])
        report = merge_report(kept, runs.load_json(fresh_path), parts)
    finally:
        if os.path.exists(fresh_path):
            os.remove(fresh_path)
    runs.save_json(report, os.path.join(directory, REPORT_FILE))
    return report


def _run_command(name: str, flags: list[str]) -> None:
    subprocess.run([sys.executable, "-m", f"lcr_larq.cli.{name}", *flags],
                   check=True, capture_output=True, text=True)


def evaluate_flags(settings: StudySettings, directory: str,
                   parts=PARTS) -> list[str]:
    """The ``lcr-evaluate`` flags of the ``parts`` of a run's robustness (see
    :data:`~lcr_larq.evaluation.report.PARTS`): the corruptions at
    ``mce_severities`` (generated once for the study, :data:`CORRUPTION_CACHE`),
    the attacks.

    Example:
        >>> evaluate_flags(StudySettings(robustness=True, epsilons=(2.0, 8.0)), "R")[-7:]
        ['--attacks', 'pgd', '--epsilons', '2', '8', '--pgd-steps', '10']
        >>> evaluate_flags(StudySettings(robustness=True), "R", ["attacks"])[:5]
        ['--model-dir', 'R', '--quiet', '--no-plot', '--corruptions']
    """
    flags = ["--model-dir", directory, "--quiet", "--no-plot"]
    if "corruptions" in parts:
        flags += ["--severities", *map(str, settings.mce_severities)]
        if settings.corruption_cache:
            flags += ["--cache-dir", os.path.join(settings.run_dir, CORRUPTION_CACHE)]
    else:
        flags += ["--corruptions", "none"]
    if "attacks" in parts and settings.attack_list:
        flags += ["--attacks", *settings.attack_list,
                  "--epsilons", *(f"{e:g}" for e in settings.epsilons),
                  "--pgd-steps", str(settings.pgd_steps)]
        if settings.attack_samples:
            flags += ["--attack-samples", str(settings.attack_samples)]
    return flags


def stale_parts(report: dict | None, settings: StudySettings,
                results: dict | None = None) -> list[str]:
    """The parts of a run's ``robustness.json`` (names of
    :data:`~lcr_larq.evaluation.report.PARTS`) that do not hold what the
    study measures, to measure again: every part for a report of other
    weights than the run's ``results``; ``corruptions`` without the mCE at
    ``mce_severities``; ``attacks`` without every attack at every ε with the
    study's PGD steps and number of attacked images, judged by today's
    masking test.

    Example:
        >>> settings = StudySettings(robustness=True, epsilons=(2.0,))
        >>> old = {"mce": 1.0, "severities": [1, 3, 5], "num_images": 360}  # no attacks yet
        >>> stale_parts(None, settings), stale_parts(old, settings)
        (['corruptions', 'attacks'], ['attacks'])
    """
    wanted = [p for p in PARTS if p == "corruptions" or settings.attack_list]
    if report is None:
        return wanted
    digest = (results or {}).get("weights_sha256")
    if digest and report.get("weights_sha256") not in (None, digest):
        return wanted
    stale = []
    if report.get("mce") is None or report.get("severities") != list(settings.mce_severities):
        stale.append("corruptions")
    if "attacks" in wanted and not _attacks_current(report, settings):
        stale.append("attacks")
    return stale


def _attacks_current(report: dict, settings: StudySettings) -> bool:
    have = {robust_metric(r["attack"], r["epsilon"]) for r in report.get("adversarial") or []}
    setup = report.get("adversarial_setup") or {}
    images = report.get("num_images") or 0
    samples = min(settings.attack_samples or images, images)
    return (set(settings.robust_metrics) <= have and setup.get("pgd_steps") == settings.pgd_steps
            and setup.get("samples") == samples
            and setup.get("masking_test") == MASKING_TEST)


def robustness_metrics(report: dict, settings: StudySettings) -> dict:
    """The mCE, each robust accuracy (:func:`robust_metric`), the ε where a
    gradient-free attack beat PGD beyond chance (``gradient_masking_eps``,
    ``lcr-evaluate``'s masking test) and those where one was stronger at all
    (``gradient_free_stronger_eps``, information) of a run's ``robustness.json``.

    Example:
        >>> report = {"mce": 1.5, "adversarial": [
        ...     {"attack": "pgd", "epsilon": 2.0, "accuracy": 0.6}],
        ...     "gradient_masking": [{"epsilon": 2.0, "possible_masking": True,
        ...                           "stronger": True}]}
        >>> robustness_metrics(report, StudySettings(robustness=True, epsilons=(2.0,)))
        {'mce': 1.5, 'robust_accuracy_pgd_eps2': 0.6, 'robust_accuracy_worst_eps2': None, \
'gradient_masking_eps': [2.0], 'gradient_free_stronger_eps': [2.0]}
    """
    out = {"mce": report["mce"]}
    if settings.attack_list:
        by = {robust_metric(r["attack"], r["epsilon"]): r["accuracy"]
              for r in report.get("adversarial") or []}
        out.update({m: by.get(m) for m in settings.robust_metrics})
        flags = report.get("gradient_masking") or []
        out["gradient_masking_eps"] = [f["epsilon"] for f in flags if f["possible_masking"]]
        out["gradient_free_stronger_eps"] = [f["epsilon"] for f in flags if f.get("stronger")]
    return out


def retention_rank_correlation(report: dict) -> float | None:
    """Spearman's ρ over blocks between σ of the retention matrix and the
    product of the exact norms of the block's binary convolutions (binary
    path) in a ``lcr-diagnose`` report; None with fewer than three blocks."""
    pairs = [(b["sigma_rm_binary"], b["exact_product"]) for b in report.get("blocks", [])
             if b.get("sigma_rm_binary") is not None and b.get("exact_product") is not None]
    if len(pairs) < 3:
        return None
    return statistics.rank_correlation([p[0] for p in pairs], [p[1] for p in pairs])[0]


def lipschitz_correlations(rows: list[dict], robust: list[str]) -> list[dict]:
    """Spearman's ρ over the finished runs (every arm pooled) between each
    Lipschitz estimate of :data:`LIPSCHITZ_ESTIMATES` and each robust accuracy
    of ``robust``, with its p-value and the number of runs (None below three).

    Example:
        >>> rows = [{"empirical_lipschitz": x, "robust_accuracy_pgd_eps2": y}
        ...         for x, y in ((1.0, 0.9), (2.0, 0.7), (3.0, 0.8), (4.0, 0.1))]
        >>> c = lipschitz_correlations(rows, ["robust_accuracy_pgd_eps2"])[0]
        >>> c["estimate"], c["runs"], round(c["spearman"], 6)
        ('empirical_lipschitz', 4, -0.8)
    """
    out = []
    for estimate in LIPSCHITZ_ESTIMATES:
        for metric in robust:
            pairs = [(r[estimate], r[metric]) for r in rows
                     if r.get(estimate) is not None and r.get(metric) is not None]
            rho, p_value = statistics.rank_correlation([a for a, _ in pairs],
                                                       [b for _, b in pairs])
            out.append({"estimate": estimate, "metric": metric, "runs": len(pairs),
                        "spearman": rho, "p_value": p_value})
    return [c for c in out if c["runs"]]


def gpu_count() -> int:
    return len(tf.config.list_physical_devices("GPU"))


def run_study(
    settings: StudySettings, progress: Callable[[str], None] | None = None
) -> dict:
    """``lcr-study``: trains every missing cell of the study (one worker in
    this process, or ``parallel`` workers at once), then returns
    :func:`report`; with ``report``, trains nothing and reports what has
    finished. Cells that other workers hold are waited for."""
    if settings.report:
        record_recipe(settings, write=False)
    else:
        for line in (*check_data(settings), record_recipe(settings, replace=True)):
            if line and progress:
                progress(line)
        if settings.parallel > 1:
            _run_workers(settings, progress)
        else:
            work(settings, progress)
    todo = jobs(settings)
    outcomes = outcomes_on_disk(todo)
    if settings.robustness or settings.diagnose:
        _add_extras(settings, todo, outcomes)
    return report(settings, todo, outcomes)


def run_worker(settings: StudySettings, progress: Callable[[str], None] | None = None) -> int:
    """``lcr-study --worker``: trains the cell of :func:`cell_index`, or
    claims cells until every one is finished (``parallel`` such workers at
    once); writes no report. Returns the exit code: 1 when a cell it trained
    failed, else 0."""
    index = cell_index(settings)
    notes = check_data(settings)
    if progress:
        for note in notes:
            progress(note)
    record_recipe(settings)
    if settings.parallel > 1:
        return 0 if _run_workers(settings, progress) else 1
    return 1 if work(settings, progress, index, worker=True) else 0




def check_data(settings: StudySettings) -> list[str]:
    """Loads and checks the data of every distinct dataset and model of the
    study's arms (:func:`lcr_larq.training.checked_data`) before anything is
    written: a study of unusable data leaves nothing behind. Returns the
    lines saying where a model raised a dataset's size
    (:func:`lcr_larq.training.input_size_note`), once each."""
    seen, notes = set(), []
    for job in jobs(settings):
        config = job.config
        key = (config.dataset, config.data_dir, config.input_size, config.model, config.teacher)
        if key not in seen:
            seen.add(key)
            checked_data(config)
            note = input_size_note(config)
            if note and note not in notes:
                notes.append(note)
    return notes


# --------------------------------------------------------------------------- the study's recipe
def record_recipe(settings: StudySettings, replace: bool = False,
                  write: bool = True) -> str | None:
    """Writes the study's recipe to ``study.yaml`` in its ``output_dir``
    when there is none (atomically: of workers starting together, one writes
    it and the others read it), else checks that it is this study's: a
    :class:`ConfigError` naming the settings that differ (not those of
    :data:`HOW_IT_RUNS`), or, with ``replace`` (the ``lcr-study`` command,
    which may grow a study), the recipe rewritten and a note saying what
    changed. ``write=False`` (``--report``) only checks, and needs one."""
    out = settings.run_dir
    path = os.path.join(out, RECIPE)
    if not os.path.isfile(path):
        if not write:
            raise ConfigError(f"{out} holds no study ({RECIPE} is missing): start it with "
                              "lcr-study or its workers first")
        try:
            os.makedirs(out, exist_ok=True)
        except OSError as error:
            raise ConfigError(f"cannot create --output-dir {out} ({error.strerror})") from None
        if _write_once(settings, path):
            return None
    differing = recipe_differences(settings, path)
    if not differing:
        return None
    if replace:
        _write_replacing(settings, path)
        return (f"{path}: the study's settings changed ({', '.join(differing)}); workers "
                "started with the old ones are refused")
    what = "--report" if settings.report else "--worker"
    raise ConfigError(
        f"{path} holds a study with other settings ({', '.join(differing)}): give every worker "
        f"the study's own (lcr-study --config {path} --output-dir {out} {what}), or choose "
        "another --output-dir"
    )


def recipe_differences(settings: StudySettings, path: str) -> list[str]:
    """The flags whose values differ between ``settings`` and the study
    recipe at ``path`` (not those of :data:`HOW_IT_RUNS`)."""
    recorded = recipe_dict(StudySettings(**load_recipe(path, StudySettings)))
    mine = recipe_dict(settings)
    return [flag_name(k) for k in mine
            if k not in HOW_IT_RUNS and mine[k] != recorded.get(k)]


def _write_once(settings: StudySettings, path: str) -> bool:
    """Writes the recipe to ``path`` unless it exists; whether it did. The
    file appears whole (a hard link of a finished temporary file), or, where
    the filesystem has no hard links, is created exclusively."""
    temporary = f"{path}.{uuid.uuid4().hex}.tmp"
    save_recipe(settings, temporary)
    try:
        os.link(temporary, path)
        return True
    except FileExistsError:
        return False
    except OSError:  # no hard links here
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as handle, \
                open(temporary, encoding="utf-8") as source:
            handle.write(source.read())
        return True
    finally:
        os.remove(temporary)


def _write_replacing(settings: StudySettings, path: str) -> None:
    temporary = f"{path}.{uuid.uuid4().hex}.tmp"
    save_recipe(settings, temporary)
    os.replace(temporary, path)


def cell_index(settings: StudySettings,
               environ: Mapping[str, str] = os.environ) -> int | None:
    """The one cell a worker trains: ``--cell``, else the array task's index
    in :data:`workers.INDEX_VARIABLES` (the first set), else None (every cell). An
    index past the last cell, or a variable that is not an index, is a
    :class:`ConfigError` saying how many cells there are."""
    total = len(arms(settings)) * settings.seeds
    cells = (f"the study has {total} cells, indices 0 to {total - 1} "
             f"({len(arms(settings))} arms × {settings.seeds} seeds)")
    if settings.cell is not None:
        source, index = f"--cell {settings.cell}", settings.cell
    else:
        name = next((v for v in workers.INDEX_VARIABLES if environ.get(v, "").strip()), None)
        if name is None or not settings.worker:
            return None
        text = environ[name].strip()
        source = f"{name}={echo(text)}"
        try:
            index = int(text)
        except ValueError:
            raise ConfigError(f"{source} is not a cell index: {cells}") from None
        if index < 0:
            raise ConfigError(f"{source} is not a cell index: {cells}")
    if index >= total:
        raise ConfigError(f"{source} is past the last cell: {cells}")
    if settings.parallel > 1:
        raise ConfigError(f"--parallel {settings.parallel} starts workers that claim cells "
                          f"themselves: give it without a cell ({source})")
    return index


# --------------------------------------------------------------------------- workers
def work(
    settings: StudySettings,
    progress: Callable[[str], None] | None = None,
    cell: int | None = None,
    worker: bool = False,
) -> int:
    """One worker of the study (:func:`lcr_larq.experiments.workers.work`):
    claims the first cell that is neither finished nor held by a live worker
    (only cell ``cell`` when given), trains it in this process and measures
    what the study asks (``robustness``, ``diagnose``), records the outcome
    in the cell's log, and goes on until every cell is finished or failed
    since it started. Returns the number of cells that failed here."""
    todo = jobs(settings)
    me = claims.this_process(provenance.worker()["name"])
    return workers.work(
        todo, cell_state, lambda job, claim, holder: _train_cell(settings, job, claim, holder),
        me, progress, only=None if cell is None else todo[cell],
        prefix=f"{me.worker}: " if worker else "",
    )


def cell_state(job: Job, since: float) -> str:
    """``finished`` (results of the cell's settings), ``failed`` (its last
    training failed after ``since``) or ``open`` (to train)."""
    try:
        if finished(job) is not None:
            return "finished"
    except RunError:  # unreadable: training it says why
        return "open"
    last = workers.last_record(job, ("trained", "failed"))
    if last is not None and last["event"] == "failed" and last["time"] >= since:
        return "failed"
    return "open"


def _train_cell(settings: StudySettings, job: Job, claim: claims.Claim,
                me: claims.Holder) -> tuple[str, bool]:
    """Trains (or resumes) a claimed cell and measures its extras; records
    the outcome in its log; returns the progress text and whether it failed."""
    began = time.time()
    try:
        results = training.run(dataclasses.replace(job.config, verbose=0),
                               extra_callbacks=[workers.ClaimWatch(claim)])
    except workers.ClaimLost as error:
        workers.record(job, "lost claim", me, message=str(error))
        return f"given up: {error}", False
    except UserError as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        workers.record(job, "failed", me, message=message)
        return f"failed: {message}", True
    except Exception as error:  # a bug in one cell must not stop the study
        message = f"{type(error).__name__}: {error}".splitlines()[0]
        workers.record(job, "failed", me, message=message, traceback=traceback.format_exc())
        return f"failed: {message}", True
    finally:
        tf.keras.backend.clear_session()
    seconds = time.time() - began
    if not results.get("already_finished"):
        workers.record(job, "trained", me, seconds=round(seconds, 2),
                       resumed_from_epoch=results.get("resumed_from_epoch"),
                       weights_sha256=results.get("weights_sha256"))
    if settings.robustness or settings.diagnose:
        try:
            _extras(settings, job, results)
        except subprocess.CalledProcessError as error:
            lines = [x for x in (error.stderr or "").splitlines() if x.strip()]
            workers.record(job, "extras failed", me,
                           message=lines[-1] if lines else str(error))
    return f"{100 * results['test_accuracy']:.2f}% ({seconds:.0f} s)", False


def _run_workers(settings: StudySettings, progress: Callable[[str], None] | None) -> bool:
    """Runs ``parallel`` workers of the study on this machine, one GPU each
    (:func:`~lcr_larq.experiments.workers.device_environments`; without a
    GPU they share the CPU), each ``lcr-study --worker`` in a process of its
    own; whether all of them ended well."""
    gpus = gpu_count()
    envs = workers.device_environments(settings.parallel, gpus,
                                       os.environ.get("CUDA_VISIBLE_DEVICES"))
    if progress and gpus == 0:
        progress(f"--parallel {settings.parallel}: no GPU, {len(envs)} workers share the CPU "
                 f"({os.cpu_count()} cores)")
    elif progress and len(envs) < settings.parallel:
        progress(f"--parallel {settings.parallel}: {gpus} device(s), running {len(envs)} at "
                 "once")
    out = settings.run_dir
    argv = [sys.executable, "-m", "lcr_larq.cli.study", "--config", os.path.join(out, RECIPE),
            "--output-dir", out, "--worker", "--parallel", "1"]
    return workers.start_local(argv, envs, progress)


def outcomes_on_disk(todo: list[Job]) -> dict[str, dict]:
    """What became of each cell, read from the shared directory: ``finished``
    (its results), ``running`` (a live worker holds it), ``failed`` (its last
    training failed: the message) or ``missing`` (not started, stopped after
    an epoch, or its directory holds another run's settings)."""
    now, here = time.time(), claims.this_process("report")
    outcomes = {}
    for job in todo:
        live = claims.held(job.claims, here, now)
        if live is not None:
            outcomes[job.directory] = {"status": "running",
                                       "message": claims.describe(*live, now)}
            continue
        try:
            results = finished(job)
        except RunError as error:
            outcomes[job.directory] = {"status": "failed", "message": str(error)}
            continue
        if results is not None:
            outcomes[job.directory] = {"status": "finished", "results": results}
            continue
        last = workers.last_record(job, ("trained", "failed"))
        if last is not None and last["event"] == "failed":
            outcomes[job.directory] = {"status": "failed", "message": last["message"]}
            continue
        outcomes[job.directory] = {"status": "missing", "message": _missing(job)}
    return outcomes


def _missing(job: Job) -> str:
    """Why a cell that no live worker holds has no results."""
    recipe = runs.read_recipe(job.directory) if os.path.isdir(job.directory) else None
    if runs.read_results(job.directory) is not None and recipe is not None:
        differing = runs.differing_settings(recipe, job.config)
        return f"its directory holds a run with other settings ({', '.join(differing)})"
    state = runs.load_json(os.path.join(job.directory, runs.BACKUP, runs.STATE))
    if state and state.get("epoch"):
        return (f"stopped after epoch {state['epoch']} of {job.config.epochs}: a worker "
                "resumes it")
    return "not started"


def _add_extras(settings: StudySettings, todo: list[Job], outcomes: dict[str, dict]) -> None:
    """Adds :func:`_extras` to every finished job's outcome; a failed
    evaluation is recorded as ``extras_error`` (its last stderr line)."""
    for job in todo:
        outcome = outcomes[job.directory]
        if outcome["status"] == "finished":
            try:
                outcome.update(_extras(settings, job, outcome.get("results")))
            except subprocess.CalledProcessError as error:
                lines = [x for x in (error.stderr or "").splitlines() if x.strip()]
                outcome["extras_error"] = lines[-1] if lines else str(error)


# --------------------------------------------------------------------------- report
def metric_names(settings: StudySettings) -> list[str]:
    """Every metric the study may report, in the order of its tables: those of
    :data:`METRICS` with the robust accuracies after the mCE.

    Example:
        >>> metric_names(StudySettings(robustness=True, epsilons=(2.0,)))[3:7]
        ['mce', 'robust_accuracy_pgd_eps2', 'robust_accuracy_worst_eps2', \
'retention_rank_correlation']
    """
    return [*METRICS[:4], *settings.robust_metrics, *METRICS[4:]]


def report(settings: StudySettings, todo: list[Job], outcomes: dict[str, dict]) -> dict:
    """The study's numbers (see the module docstring)."""
    arm_list = arms(settings)
    control = arm_list[0]
    names = metric_names(settings)
    rows, failed, missing = [], [], []
    for job in todo:
        outcome = outcomes.get(job.directory, {"status": "missing", "message": "not started"})
        row = {"cell": job.index, "arm": job.arm.name, **{k: v for k, v in job.arm.values},
               "seed": job.seed, "directory": job.directory, "status": outcome["status"]}
        if outcome["status"] == "finished":
            results = outcome["results"]
            row.update(
                test_accuracy=results["test_accuracy"],
                test_accuracy_moving_statistics=results.get("test_accuracy_moving_statistics"),
                test_accuracy_as_trained=results.get("test_accuracy_as_trained"),
                seconds=results.get("seconds"),
                **{m: outcome.get(m) for m in names if not m.startswith("test_accuracy")},
            )
            for key in ("gradient_masking_eps", "gradient_free_stronger_eps"):
                if outcome.get(key):
                    row[key] = outcome[key]
            origin = results.get("provenance")
            row.update(hardware=provenance.hardware(origin),
                       worker=((origin or {}).get("worker") or {}).get("name"))
        else:
            entry = {"cell": job.index, "arm": job.arm.name, "seed": job.seed,
                     "directory": job.directory,
                     "message": outcome.get("message", outcome["status"])}
            (failed if outcome["status"] == "failed" else missing).append(entry)
        rows.append(row)
    if any(r.get("test_accuracy_as_trained") is not None for r in rows):
        for row in rows:  # a float32 run computes as trained: its own accuracy
            if row["status"] == "finished" and row["test_accuracy_as_trained"] is None:
                row["test_accuracy_as_trained"] = row["test_accuracy"]
    metrics = [m for m in names if any(r.get(m) is not None for r in rows)]
    per_arm = []
    for arm in arm_list:
        mine = [r for r in rows if r["arm"] == arm.name and r["status"] == "finished"]
        entry = {"arm": arm.name, "values": dict(arm.values), "control": arm == control}
        for metric in metrics:
            by_seed = {r["seed"]: r[metric] for r in mine if r.get(metric) is not None}
            entry[metric] = statistics.summary(by_seed.values())
            if arm != control:
                base = {r["seed"]: r[metric] for r in rows
                        if r["arm"] == control.name and r.get(metric) is not None}
                paired = statistics.paired(by_seed, base)
                paired["sensitivity"] = statistics.sensitivity(paired["differences"],
                                                               one_point(metric))
                entry[f"{metric}_vs_control"] = paired
        per_arm.append(entry)
    return {
        "control": control.name,
        "vary": list(settings.vary),
        "seeds": [settings.seed + i for i in range(settings.seeds)],
        "metrics": metrics,
        "confidence": statistics.CONFIDENCE,
        "arms": per_arm,
        "runs": rows,
        "gradient_masking": [
            {"arm": r["arm"], "seed": r["seed"], "epsilons": r["gradient_masking_eps"]}
            for r in rows if r.get("gradient_masking_eps")
        ],
        "gradient_free_stronger": [
            {"arm": r["arm"], "seed": r["seed"], "epsilons": r["gradient_free_stronger_eps"]}
            for r in rows if r.get("gradient_free_stronger_eps")
        ],
        "lipschitz_vs_robustness": lipschitz_correlations(
            [r for r in rows if r["status"] == "finished"], settings.robust_metrics),
        "failed": failed,
        "missing": missing,
        "cells": len(todo),
        "hardware": hardware_of(rows, control.name),
        "settings": recipe_dict(settings),
    }


def one_point(metric: str) -> float | None:
    """What a difference of "1 point" is in ``metric`` (:data:`ONE_POINT`).

    Example:
        >>> one_point("robust_accuracy_pgd_eps2"), one_point("mce")
        (0.01, None)
    """
    return next((v for prefix, v in ONE_POINT.items() if metric.startswith(prefix)), None)


def hardware_of(rows: list[dict], control: str) -> dict:
    """The hardware the finished cells ran on: ``{"kinds": [{"hardware",
    "cells"}], "differs", "pairs_across"}`` (the arm's and the control's
    run of a seed on different hardware: their difference mixes the two).

    Example:
        >>> rows = [{"cell": 0, "arm": "a", "seed": 0, "status": "finished", "hardware": "X"},
        ...         {"cell": 1, "arm": "b", "seed": 0, "status": "finished", "hardware": "Y"}]
        >>> h = hardware_of(rows, "a")
        >>> h["differs"], h["pairs_across"]
        (True, [{'arm': 'b', 'seed': 0, 'hardware': 'Y', 'control_hardware': 'X'}])
    """
    done = [r for r in rows if r["status"] == "finished"]
    kinds_seen: dict[str, list[int]] = {}
    for row in done:
        kinds_seen.setdefault(row.get("hardware") or "unknown", []).append(row["cell"])
    base = {r["seed"]: r.get("hardware") for r in done if r["arm"] == control}
    pairs = [{"arm": r["arm"], "seed": r["seed"], "hardware": r.get("hardware"),
              "control_hardware": base[r["seed"]]}
             for r in done if r["arm"] != control and r["seed"] in base
             and r.get("hardware") != base[r["seed"]]]
    return {"kinds": [{"hardware": k, "cells": v} for k, v in kinds_seen.items()],
            "differs": len(kinds_seen) > 1, "pairs_across": pairs}

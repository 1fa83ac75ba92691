"""Does a setting help, on my model and data? Arms × seeds, with confidence intervals.

A study is a grid: every combination of the values of one or more ``vary``
settings (``lcr_lambda=0,4``; the first value of each is the control) is an
*arm*, trained with ``seeds`` seeds (the run's ``seed``, ``seed + 1``, …).
Each arm × seed is an ordinary run directory of ``lcr-train`` under the
study's ``output_dir`` (``lcr_lambda=4/seed_1``), trained in a process of its
own, one after another (or ``parallel`` at once, one GPU each). A finished
run is skipped and a killed one resumes, so rerunning the same study command
completes it.

The report (:func:`report`): per arm n, mean, std and the 95 % Student-t
interval of the test accuracy and, when asked, of

* ``robustness``: the corruption mCE and the robust accuracy under each of
  ``attacks`` at each of ``epsilons`` (``robust_accuracy_pgd_eps2``: PGD at
  ε = 2/255, by ``lcr-evaluate --attacks``), and, beside PGD, the per-image
  worst case over PGD and the gradient-free attacks of the masking check
  (``robust_accuracy_worst_eps2``); the runs where a gradient-free attack
  beat PGD are listed under ``gradient_masking``;
* ``diagnose``: the rank correlation between the retention estimate and the
  exact norms, the empirical local Lipschitz estimate of the deployed network
  and log10 of the product of the exact norms of its binary convolutions
  (``lcr-diagnose``);

per arm against the control, the per-seed paired differences with their
mean, interval and paired t-test p-value; with both, Spearman's ρ over every
finished run between each Lipschitz estimate and each robust accuracy
(``lipschitz_vs_robustness``); every run that failed or diverged, listed with
its message. Written as ``study.json``, ``study.csv``, ``study.md`` (Markdown
tables) and ``study.png``.

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
from collections.abc import Callable
from dataclasses import dataclass

import tensorflow as tf

from lcr_larq.errors import ConfigError
from lcr_larq.evaluation.attacks import PGD_STEPS, WORST, attack_names, with_masking_check
from lcr_larq.experiments import statistics
from lcr_larq.settings import convert, echo, kinds, recipe_dict, save_recipe, setting
from lcr_larq.training import RUNS_DIR, TrainConfig, checked_data, runs

__all__ = [
    "LIPSCHITZ_ESTIMATES",
    "MARKDOWN",
    "METRICS",
    "NOT_VARIED",
    "PLOT",
    "REPORT",
    "TABLE",
    "Arm",
    "Job",
    "StudySettings",
    "arms",
    "check_data",
    "command",
    "evaluate_flags",
    "finished",
    "gpu_count",
    "jobs",
    "lipschitz_correlations",
    "metric_names",
    "parse_vary",
    "report",
    "retention_rank_correlation",
    "robust_metric",
    "robustness_current",
    "robustness_metrics",
    "run_study",
]

REPORT = "study.json"
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
        1, "runs at once, one GPU each (with fewer GPUs, runs are sequential)", low=1,
        high=64,
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
    arm: Arm
    seed: int
    config: TrainConfig

    @property
    def directory(self) -> str:
        return self.config.output_dir


def jobs(settings: StudySettings) -> list[Job]:
    """Every arm × seed, arm by arm."""
    return [
        Job(arm, settings.seed + i, arm.config(settings, i))
        for arm in arms(settings) for i in range(settings.seeds)
    ]


def finished(job: Job) -> dict | None:
    """The results of a job's run when it has finished with the job's settings."""
    results = runs.read_results(job.directory)
    recipe = runs.read_recipe(job.directory) if results is not None else None
    if recipe is None or runs.differing_settings(recipe, job.config):
        return None
    return results


def command(job: Job) -> list[str]:
    """The ``lcr-train`` command of a job (its settings as a recipe file)."""
    os.makedirs(job.directory, exist_ok=True)
    recipe = os.path.join(job.directory, "study-recipe.yaml")
    save_recipe(job.config, recipe)
    return [sys.executable, "-m", "lcr_larq.cli.train", "--config", recipe, "--verbose", "0"]


def _extras(settings: StudySettings, job: Job) -> dict:
    """mCE, robust accuracies and the Lipschitz diagnostics of a finished run,
    when asked (running ``lcr-evaluate`` and ``lcr-diagnose`` where their
    reports are missing or were made with other settings)."""
    out: dict = {}
    if settings.robustness:
        path = os.path.join(job.directory, "robustness.json")
        report = runs.load_json(path)
        if not robustness_current(report, settings):
            _run_command("evaluate", evaluate_flags(settings, job.directory))
            report = runs.load_json(path)
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


def _run_command(name: str, flags: list[str]) -> None:
    subprocess.run([sys.executable, "-m", f"lcr_larq.cli.{name}", *flags],
                   check=True, capture_output=True, text=True)


def evaluate_flags(settings: StudySettings, directory: str) -> list[str]:
    """The ``lcr-evaluate`` flags of a run's robustness: the corruptions at
    ``mce_severities`` and the attacks.

    Example:
        >>> evaluate_flags(StudySettings(robustness=True, epsilons=(2.0, 8.0)), "R")[-7:]
        ['--attacks', 'pgd', '--epsilons', '2', '8', '--pgd-steps', '10']
    """
    flags = ["--model-dir", directory, "--severities", *map(str, settings.mce_severities),
             "--quiet", "--no-plot"]
    if settings.attack_list:
        flags += ["--attacks", *settings.attack_list,
                  "--epsilons", *(f"{e:g}" for e in settings.epsilons),
                  "--pgd-steps", str(settings.pgd_steps)]
        if settings.attack_samples:
            flags += ["--attack-samples", str(settings.attack_samples)]
    return flags


def robustness_current(report: dict | None, settings: StudySettings) -> bool:
    """Whether a run's ``robustness.json`` holds what the study measures: the
    mCE at ``mce_severities`` and every attack at every ε, with the study's
    PGD steps and number of attacked images."""
    if report is None or report.get("mce") is None:
        return False
    if report.get("severities") != list(settings.mce_severities):
        return False
    if not settings.attack_list:
        return True
    have = {robust_metric(r["attack"], r["epsilon"]) for r in report.get("adversarial") or []}
    wanted = set(settings.robust_metrics)
    setup = report.get("adversarial_setup") or {}
    samples = min(settings.attack_samples or report["num_images"], report["num_images"])
    return (wanted <= have and setup.get("pgd_steps") == settings.pgd_steps
            and setup.get("samples") == samples)


def robustness_metrics(report: dict, settings: StudySettings) -> dict:
    """The mCE, each robust accuracy (:func:`robust_metric`) and the ε where a
    gradient-free attack beat PGD (``gradient_masking_eps``) of a run's
    ``robustness.json``.

    Example:
        >>> report = {"mce": 1.5, "adversarial": [
        ...     {"attack": "pgd", "epsilon": 2.0, "accuracy": 0.6}],
        ...     "gradient_masking": [{"epsilon": 2.0, "possible_masking": True}]}
        >>> robustness_metrics(report, StudySettings(robustness=True, epsilons=(2.0,)))
        {'mce': 1.5, 'robust_accuracy_pgd_eps2': 0.6, 'robust_accuracy_worst_eps2': None, \
'gradient_masking_eps': [2.0]}
    """
    out = {"mce": report["mce"]}
    if settings.attack_list:
        by = {robust_metric(r["attack"], r["epsilon"]): r["accuracy"]
              for r in report.get("adversarial") or []}
        out.update({m: by.get(m) for m in settings.robust_metrics})
        out["gradient_masking_eps"] = [f["epsilon"] for f in report.get("gradient_masking") or []
                                       if f["possible_masking"]]
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
    """Trains every missing run of the study (finished ones are skipped, killed
    ones resume) and returns :func:`report`."""
    out = settings.run_dir
    check_data(settings)
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"cannot create --output-dir {out} ({error.strerror})") from None
    with runs.RunLock(out):
        save_recipe(settings, os.path.join(out, "study.yaml"))
        todo = jobs(settings)
        slots = min(settings.parallel, max(1, gpu_count())) if settings.parallel > 1 else 1
        if settings.parallel > slots and progress:
            progress(f"--parallel {settings.parallel}: {slots} device(s), running {slots} at once")
        outcomes: dict[str, dict] = {}
        pending = []
        for job in todo:
            results = finished(job)
            if results is None:
                pending.append(job)
            else:
                outcomes[job.directory] = {"status": "finished", "results": results,
                                           "skipped": True}
        _train(pending, slots, outcomes, len(todo), progress)
        if settings.robustness or settings.diagnose:
            _add_extras(settings, todo, outcomes)
        return report(settings, todo, outcomes)


def check_data(settings: StudySettings) -> None:
    """Loads and checks the data of every distinct dataset and model of the
    study's arms (:func:`lcr_larq.training.checked_data`) before anything is
    written: a study of unusable data leaves nothing behind."""
    seen = set()
    for job in jobs(settings):
        config = job.config
        key = (config.dataset, config.data_dir, config.input_size, config.model, config.teacher)
        if key not in seen:
            seen.add(key)
            checked_data(config)


def _train(
    pending: list[Job], slots: int, outcomes: dict[str, dict], total: int,
    progress: Callable[[str], None] | None,
) -> None:
    """Trains the ``pending`` jobs, ``slots`` at once (one device each), and
    records each one's outcome; a progress line per finished job."""
    started = time.time()
    running: list[tuple[Job, subprocess.Popen, int, float]] = []
    free = list(range(slots))
    done = 0
    while pending or running:
        while pending and free:
            job, device = pending.pop(0), free.pop(0)
            env = dict(os.environ)
            if slots > 1:
                env["CUDA_VISIBLE_DEVICES"] = str(device)
            process = subprocess.Popen(command(job), env=env, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE, text=True)
            running.append((job, process, device, time.time()))
        job, process, device, began = running[0] if slots == 1 else _first_done(running)
        _, stderr = process.communicate()
        running = [r for r in running if r[1] is not process]
        free.append(device)
        done += 1
        outcomes[job.directory], line = _outcome(job, process.returncode, stderr,
                                                 time.time() - began)
        if progress:
            left = len(pending) + len(running)
            eta = (time.time() - started) / done * left / max(1, slots)
            progress(f"[{total - left}/{total}] {job.arm.name} seed {job.seed}: "
                     f"{line}; ETA {_duration(eta)}")


def _outcome(job: Job, returncode: int, stderr: str | None, seconds: float) -> tuple[dict, str]:
    """A finished training process's outcome (its results, or the last line it
    printed to stderr) and the progress text saying it."""
    results = runs.read_results(job.directory) if returncode == 0 else None
    if results is None:
        lines = [line for line in (stderr or "").splitlines() if line.strip()]
        message = lines[-1] if lines else f"exit code {returncode}"
        return {"status": "failed", "message": message}, f"failed: {message}"
    return ({"status": "finished", "results": results},
            f"{100 * results['test_accuracy']:.2f}% ({seconds:.0f} s)")


def _add_extras(settings: StudySettings, todo: list[Job], outcomes: dict[str, dict]) -> None:
    """Adds :func:`_extras` to every finished job's outcome; a failed
    evaluation is recorded as ``extras_error`` (its last stderr line)."""
    for job in todo:
        outcome = outcomes[job.directory]
        if outcome["status"] == "finished":
            try:
                outcome.update(_extras(settings, job))
            except subprocess.CalledProcessError as error:
                lines = [x for x in (error.stderr or "").splitlines() if x.strip()]
                outcome["extras_error"] = lines[-1] if lines else str(error)


def _first_done(running):
    while True:
        for entry in running:
            if entry[1].poll() is not None:
                return entry
        time.sleep(0.5)


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


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
    rows, failed = [], []
    for job in todo:
        outcome = outcomes.get(job.directory, {"status": "missing"})
        row = {"arm": job.arm.name, **{k: v for k, v in job.arm.values}, "seed": job.seed,
               "directory": job.directory, "status": outcome["status"]}
        if outcome["status"] == "finished":
            results = outcome["results"]
            row.update(
                test_accuracy=results["test_accuracy"],
                test_accuracy_moving_statistics=results.get("test_accuracy_moving_statistics"),
                test_accuracy_as_trained=results.get("test_accuracy_as_trained"),
                seconds=results.get("seconds"),
                **{m: outcome.get(m) for m in names if not m.startswith("test_accuracy")},
            )
            if outcome.get("gradient_masking_eps"):
                row["gradient_masking_eps"] = outcome["gradient_masking_eps"]
        else:
            failed.append({"arm": job.arm.name, "seed": job.seed, "directory": job.directory,
                           "message": outcome.get("message", outcome["status"])})
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
                entry[f"{metric}_vs_control"] = statistics.paired(by_seed, base)
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
        "lipschitz_vs_robustness": lipschitz_correlations(
            [r for r in rows if r["status"] == "finished"], settings.robust_metrics),
        "failed": failed,
        "settings": recipe_dict(settings),
    }

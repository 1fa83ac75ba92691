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
interval of the test accuracy (and, when asked, of the corruption mCE and of
the rank correlation between the retention estimate and the exact norms);
per arm against the control, the per-seed paired differences with their
mean, interval and paired t-test p-value; every run that failed or diverged,
listed with its message. Written as ``study.json``, ``study.csv``,
``study.md`` (a Markdown table) and ``study.png``.

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
from lcr_larq.experiments import statistics
from lcr_larq.settings import convert, echo, kinds, recipe_dict, save_recipe, setting
from lcr_larq.training import RUNS_DIR, TrainConfig, checked_data, runs

REPORT = "study.json"
TABLE = "study.csv"
MARKDOWN = "study.md"
PLOT = "study.png"
#: Settings a study cannot vary: the seed is its replicate axis, the rest
#: only say where and how a run reports.
NOT_VARIED = ("seed", "output_dir", "verbose", "overwrite")
#: ``test_accuracy_moving_statistics``: the same weights with the BN statistics
#: of training, before re-estimation (what most BNN code reports).
METRICS = ("test_accuracy", "test_accuracy_moving_statistics", "mce",
           "retention_rank_correlation")


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
        False, "also measure each run's corruption mCE (lcr-evaluate, generated corruptions)"
    )
    mce_severities: tuple[int, ...] = setting(
        (1, 3, 5), "severities of --robustness", choices=(1, 2, 3, 4, 5), metavar="S"
    )
    diagnose: bool = setting(
        False, "also measure how well the retention estimate tracks the exact norm "
        "(lcr-diagnose): the rank correlation over blocks per run"
    )
    parallel: int = setting(
        1, "runs at once, one GPU each (with fewer GPUs, runs are sequential)", low=1,
        high=64,
    )

    @property
    def run_dir(self) -> str:
        return self.output_dir or os.path.join(RUNS_DIR, "study")

    def check(self) -> None:
        super().check()
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
    """mCE and retention rank correlation of a finished run, when asked."""
    out: dict = {}
    if settings.robustness:
        report = runs.load_json(os.path.join(job.directory, "robustness.json"))
        if report is None or report.get("severities") != list(settings.mce_severities):
            subprocess.run(
                [sys.executable, "-m", "lcr_larq.cli.evaluate", "--model-dir", job.directory,
                 "--severities", *map(str, settings.mce_severities), "--quiet", "--no-plot"],
                check=True, capture_output=True, text=True,
            )
            report = runs.load_json(os.path.join(job.directory, "robustness.json"))
        out["mce"] = report["mce"]
    if settings.diagnose:
        report = runs.load_json(os.path.join(job.directory, "lipschitz.json"))
        if report is None:
            subprocess.run(
                [sys.executable, "-m", "lcr_larq.cli.diagnose", "--model-dir", job.directory,
                 "--methods", "exact", "retention_estimate", "--quiet", "--no-plot"],
                check=True, capture_output=True, text=True,
            )
            report = runs.load_json(os.path.join(job.directory, "lipschitz.json"))
        out["retention_rank_correlation"] = retention_rank_correlation(report)
    return out


def retention_rank_correlation(report: dict) -> float | None:
    """Spearman's ρ over blocks between σ of the retention matrix and the
    product of the exact norms of the block's binary convolutions (binary
    path) in a ``lcr-diagnose`` report; None with fewer than three blocks."""
    pairs = [(b["sigma_rm_binary"], b["exact_product"]) for b in report.get("blocks", [])
             if b.get("sigma_rm_binary") is not None and b.get("exact_product") is not None]
    if len(pairs) < 3:
        return None
    from scipy import stats

    rho = stats.spearmanr([p[0] for p in pairs], [p[1] for p in pairs]).statistic
    return float(rho)


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
def report(settings: StudySettings, todo: list[Job], outcomes: dict[str, dict]) -> dict:
    """The study's numbers (see the module docstring)."""
    arm_list = arms(settings)
    control = arm_list[0]
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
                seconds=results.get("seconds"),
                mce=outcome.get("mce"),
                retention_rank_correlation=outcome.get("retention_rank_correlation"),
            )
        else:
            failed.append({"arm": job.arm.name, "seed": job.seed, "directory": job.directory,
                           "message": outcome.get("message", outcome["status"])})
        rows.append(row)
    metrics = [m for m in METRICS if any(r.get(m) is not None for r in rows)]
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
        "failed": failed,
        "settings": recipe_dict(settings),
    }

"""The figures of the docs, made from runs this script trains: ``make docs-figures``.

::

    python docs/figures.py                      # what make docs-figures runs
    python docs/figures.py --seeds 5 --epochs 40

Every picture in ``docs/figures/`` comes from here, never from a hand:

1. ``lcr-study --vary lcr_lambda=0,4`` on digits (ResNet-20 1w1a, offline
   data; ``--seeds`` seeds, ``--epochs`` epochs) → ``study.png``;
2. ``lcr-evaluate --attacks pgd`` on the two seed-0 runs, λ = 4 and the plain
   BNN: the 15 common corruptions at 5 severities (generated), and L∞ PGD at
   ε = 0, 1, 2, 4 and 8 pixel levels with its gradient-masking check (random
   sign noise and the transfer attack from the float counterpart) and the
   per-image worst case; and ``lcr-diagnose`` (spectral norms) on the λ = 4 run;
3. ``lcr-plots --model-dir λ=4 --compare λ=0`` → ``sigma_ratio.png`` (σ_B/σ_F
   per block), ``corruption_accuracy.png`` and ``adversarial_accuracy.png``
   (both runs), ``lipschitz.png`` (the λ = 4 run), ``weight_histograms.png``
   (both) and ``activation_correlation.png`` (the λ = 4 run);

and copies them into ``docs/figures/``. The runs and reports stay in
``--work-dir`` (default ``runs/docs-figures``): rerunning skips what is there
(a ``robustness.json`` without the attacks, from before they were measured,
is measured again). At the defaults it took 22 minutes (10 minutes of CPU
time) on a 2-core AMD EPYC (Zen 4) that other work shared, before the attacks
were added; rerun on that work directory, which measured both seed-0 runs again
with the attacks and redrew every figure, it took 4 minutes (3.6 minutes of CPU
time).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIGURES = os.path.join(ROOT, "docs", "figures")
#: The figures of lcr-plots that the docs show, from the λ = 4 run's directory.
RUN_FIGURES = ("sigma_ratio.png", "corruption_accuracy.png", "adversarial_accuracy.png",
               "lipschitz.png", "weight_histograms.png", "activation_correlation.png")
#: lcr-evaluate's attacks: PGD brings random sign noise and the transfer attack
#: (the masking check) and the per-image worst case, at the default ε 0 1 2 4 8.
ATTACKS = ("--attacks", "pgd")


def command(name: str, *args: str) -> None:
    """Runs ``lcr-<name> args`` with this interpreter and the checkout's code;
    any failure stops the script."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)}
    line = [sys.executable, "-m", f"lcr_larq.cli.{name}", *args]
    print(f"$ lcr-{name} {' '.join(args)}", flush=True)
    subprocess.run(line, cwd=ROOT, env=env, check=True)


def measured(path: str) -> bool:
    """Whether the report at ``path`` holds what the figures draw: it exists,
    and a ``robustness.json`` has the corruptions and the PGD rows (one made
    without ``--attacks`` is made again)."""
    if not os.path.exists(path):
        return False
    if os.path.basename(path) != "robustness.json":
        return True
    with open(path, encoding="utf-8") as handle:
        report = json.load(handle)
    return bool(report.get("corruptions")) and any(
        row["attack"] == "pgd" for row in report.get("adversarial") or [])


def make_figures(work_dir: str, seeds: int, epochs: int) -> list[str]:
    """Trains and measures what the figures need (what is there already is
    kept); returns the PNGs made."""
    study_dir = os.path.join(work_dir, "study")
    command("study", "--vary", "lcr_lambda=0,4", "--seeds", str(seeds), "--epochs",
            str(epochs), "--output-dir", study_dir)
    lcr_run = os.path.join(study_dir, "lcr_lambda=4", "seed_0")
    plain_run = os.path.join(study_dir, "lcr_lambda=0", "seed_0")
    measures = [("evaluate", run, "robustness.json", ATTACKS) for run in (lcr_run, plain_run)]
    # lcr-plots draws --model-dir's lipschitz.json only.
    measures.append(("diagnose", lcr_run, "lipschitz.json", ()))
    for name, run, report, flags in measures:
        if not measured(os.path.join(run, report)):
            command(name, "--model-dir", run, *flags, "--quiet", "--no-plot")
    command("plots", "--model-dir", lcr_run, "--compare", plain_run)
    return [os.path.join(study_dir, "study.png"),
            *(os.path.join(lcr_run, name) for name in RUN_FIGURES)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", default=os.path.join(ROOT, "runs", "docs-figures"),
                        help="where the runs go (default: runs/docs-figures)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per arm of the study")
    parser.add_argument("--epochs", type=int, default=20, help="epochs of every run")
    args = parser.parse_args(argv)
    start = time.monotonic()
    os.makedirs(FIGURES, exist_ok=True)
    for path in make_figures(args.work_dir, args.seeds, args.epochs):
        shutil.copyfile(path, os.path.join(FIGURES, os.path.basename(path)))
        print(f"wrote docs/figures/{os.path.basename(path)}")
    print(f"figures made in {(time.monotonic() - start) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())

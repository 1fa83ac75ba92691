"""How many seeds: the paired t-test's power against scipy by hand, a simulation of the
test, the normal approximation and published values; and where the study reports it."""

import math

import numpy as np
import pytest
from scipy import stats

from lcr_larq.cli import study as command
from lcr_larq.experiments import statistics


def power_by_hand(difference, sd, n, alpha=0.05):
    """P(|T| > t(1 − α/2, n − 1)), T ~ noncentral t(n − 1, δ√n/σ), from scipy's nct."""
    dof, nc = n - 1, difference * math.sqrt(n) / sd
    critical = stats.t.ppf(1 - alpha / 2, dof)
    return (1 - stats.nct.cdf(critical, dof, nc)) + stats.nct.cdf(-critical, dof, nc)


@pytest.mark.parametrize("difference, sd, n", [
    (1.0, 2.0, 5), (0.01, 0.03, 3), (2.5, 1.0, 4), (0.3, 1.0, 40), (-1.0, 2.0, 5)])
def test_paired_power_is_the_noncentral_t_formula(difference, sd, n):
    assert statistics.paired_power(difference, sd, n) == pytest.approx(
        power_by_hand(abs(difference), sd, n), rel=1e-10)
    # No difference: the chance of a significant test is its level.
    assert statistics.paired_power(0.0, sd, n) == pytest.approx(0.05, abs=1e-12)


@pytest.mark.parametrize("difference, n", [(1.0, 4), (1.5, 6)])
def test_paired_power_is_what_simulated_studies_find(difference, n):
    """The share of simulated paired studies whose t-test rejects at 5 %."""
    rng = np.random.default_rng(7)
    studies = 40_000
    d = rng.normal(difference, 1.0, size=(studies, n))
    t = d.mean(axis=1) / (d.std(axis=1, ddof=1) / math.sqrt(n))
    rejected = np.mean(np.abs(t) > stats.t.ppf(0.975, n - 1))
    power = statistics.paired_power(difference, 1.0, n)
    assert abs(rejected - power) < 4 * math.sqrt(power * (1 - power) / studies)


def test_published_values_of_g_power():
    """G*Power 3, "Means: difference between two dependent means (matched pairs)",
    two tails, α = 0.05: the manual's replication of Cohen (1969, p. 48) — 50 pairs,
    d = 0.4 between groups correlated ρ = 0.55, so d_z = 0.4/√(2(1 − 0.55)) = 0.421637 —
    has power 0.832114; and d_z = 0.5 at 80 % power needs 34 pairs (actual power 0.8078)."""
    d_z = 0.4 / math.sqrt(2 * (1 - 0.55))
    assert d_z == pytest.approx(0.421637, abs=1e-6)
    assert statistics.paired_power(d_z, 1.0, 50) == pytest.approx(0.832114, abs=1e-6)
    assert statistics.seeds_needed(0.5, 1.0) == 34
    assert statistics.paired_power(0.5, 1.0, 34) == pytest.approx(0.8078, abs=1e-4)


@pytest.mark.parametrize("sd, n", [(3.7, 5), (0.02, 3), (1.0, 2), (1.0, 200)])
def test_the_detectable_difference_has_the_power_asked(sd, n):
    delta = statistics.detectable_difference(sd, n)
    assert statistics.paired_power(delta, sd, n) == pytest.approx(0.80, abs=1e-9)
    # The t-test needs at least what the normal approximation says.
    normal = (stats.norm.ppf(0.975) + stats.norm.ppf(0.80)) * sd / math.sqrt(n)
    assert delta >= normal
    if n >= 200:
        assert delta == pytest.approx(normal, rel=0.01)
    assert statistics.detectable_difference(sd, n + 1) < delta  # more seeds, finer


@pytest.mark.parametrize("difference, sd", [(1.0, 3.7), (0.01, 0.004), (1.0, 0.2), (0.2, 1.0)])
def test_seeds_needed_is_the_fewest_with_the_power_asked(difference, sd):
    n = statistics.seeds_needed(difference, sd)
    assert statistics.paired_power(difference, sd, n) >= 0.80
    if n > 2:
        assert statistics.paired_power(difference, sd, n - 1) < 0.80
    normal = ((stats.norm.ppf(0.975) + stats.norm.ppf(0.80)) * sd / difference) ** 2
    assert normal <= n <= normal + 4  # the t-test's few extra pairs


def test_degenerate_spreads_are_defined():
    assert statistics.detectable_difference(None, 1) is None
    assert statistics.detectable_difference(0.0, 3) == 0.0
    assert statistics.seeds_needed(1.0, 0.0) == 2 and statistics.seeds_needed(1.0, None) is None
    assert statistics.seeds_needed(1e-6, 1.0) is None  # past MOST_SEEDS
    s = statistics.sensitivity([0.03])
    assert s["sd"] is None and s["detectable_difference"] is None and s["seeds_for_unit"] is None


def test_the_study_report_states_the_sensitivity_of_each_comparison():
    differences = [0.04, 0.01, 0.07, -0.02, 0.05]
    s = statistics.sensitivity(differences, unit=0.01)
    sd = np.std(differences, ddof=1)
    assert s["sd"] == pytest.approx(sd)
    assert s["detectable_difference"] == pytest.approx(statistics.detectable_difference(sd, 5))
    assert s["seeds_for_unit"] == statistics.seeds_needed(0.01, sd)
    arm = {"arm": "lcr_lambda=4", "control": False,
           "test_accuracy_vs_control": {"sensitivity": s},
           "mce_vs_control": {"sensitivity": statistics.sensitivity([0.1, 0.2, 0.4])}}
    report = {"control": "lcr_lambda=0", "confidence": 0.95, "metrics": ["test_accuracy", "mce"],
              "arms": [{"arm": "lcr_lambda=0", "control": True}, arm]}
    (text,) = command.sensitivity_table(report)
    assert "with 80 % power" in text and "1 percentage point" in text
    assert (f"| test accuracy (%) | lcr_lambda=4 | 5 | {100 * sd:.2f} | "
            f"±{100 * s['detectable_difference']:.2f} | {s['seeds_for_unit']} |") in text
    assert "| corruption mCE | lcr_lambda=4 | 3 | 0.153 | ±" in text and text.endswith("| – |")

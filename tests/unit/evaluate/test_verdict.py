"""Verdict statistics: paired bootstrap, sample size and the verdict sentence, checked against values
computed by hand or built into the data (never the module against itself)."""
from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from luyen.evaluate.verdict import compare, examples_needed, paired_bootstrap, sentence

Z975, Z80 = 1.959964, 0.841621  # standard normal quantiles, from a printed table


def _hand_needed(sd: float, effect: float, z_a: float = Z975, z_b: float = Z80) -> int:
    return math.ceil(((z_a + z_b) * sd / abs(effect)) ** 2)


def _systems(shift: float, noise_sd: float, n: int = 40, seed: int = 7, centre: bool = False):
    """A baseline spread widely across examples, and a tuned system = baseline + shift + noise."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(30, 70, n)
    noise = rng.normal(0, noise_sd, n)
    if centre:  # the mean difference is then exactly `shift` (up to rounding), whatever the noise drew
        noise -= noise.mean()
    return (base + shift + noise).tolist(), base.tolist()


# --- paired_bootstrap on hand-checkable inputs -------------------------------------------------------

def test_constant_difference_gives_a_point_interval():
    r = paired_bootstrap([3, 4, 5, 6], [2, 3, 4, 5])  # a - b = [1, 1, 1, 1]: every resample's mean is 1
    assert r["diff"] == r["lo"] == r["hi"] == 1.0
    assert r["significant"] is True and r["n"] == 4 and r["resamples"] == 2000


def test_zero_difference_is_not_significant():
    r = paired_bootstrap([0.2, 0.5, 0.9], [0.2, 0.5, 0.9])
    assert r["diff"] == r["lo"] == r["hi"] == 0.0
    assert r["significant"] is False


def test_single_example_is_never_significant():
    r = paired_bootstrap([7.0], [2.0])
    assert r["diff"] == r["lo"] == r["hi"] == 5.0
    assert r["significant"] is False


def test_two_examples_by_hand():
    # a - b = [0, 1]: a resample's mean is 0, 0.5 or 1 with chances 1/4, 1/2, 1/4, so with 2000 resamples
    # the 2.5% and 97.5% percentiles are 0 and 1 (each extreme holds ~500 resamples, far above 50)
    r = paired_bootstrap([1.0, 1.0], [1.0, 0.0])
    assert (r["diff"], r["lo"], r["hi"], r["significant"]) == (0.5, 0.0, 1.0, False)
    # a - b = [1, 2]: interval 1 to 2 lies above 0; swapping the systems mirrors it below 0
    r = paired_bootstrap([2.0, 3.0], [1.0, 1.0])
    assert (r["diff"], r["lo"], r["hi"], r["significant"]) == (1.5, 1.0, 2.0, True)
    r = paired_bootstrap([1.0, 1.0], [2.0, 3.0])
    assert (r["diff"], r["lo"], r["hi"], r["significant"]) == (-1.5, -2.0, -1.0, True)


@pytest.mark.parametrize("confidence,z", [(0.95, 1.959964), (0.90, 1.644854)])
def test_interval_matches_normal_theory_for_paired_data(confidence, z):
    # baseline spread ~12 points across examples, difference spread 10: a paired interval has the width
    # of the differences alone, mean +- z * stdev(d) / sqrt(n) (normal theory, computed here by hand)
    n, rng = 400, np.random.default_rng(3)
    b = rng.uniform(0, 100, n)
    d = rng.normal(3, 10, n)
    a = b + d
    dd = [x - y for x, y in zip(a.tolist(), b.tolist())]
    mean, se = sum(dd) / n, statistics.stdev(dd) / math.sqrt(n)
    r = paired_bootstrap(a, b, confidence=confidence)
    assert r["diff"] == pytest.approx(mean, abs=1e-9)
    # percentile noise with 2000 resamples is ~0.06 se; 0.2 se still tells 90% from 95% (0.3 se apart)
    assert r["lo"] == pytest.approx(mean - z * se, abs=0.2 * se)
    assert r["hi"] == pytest.approx(mean + z * se, abs=0.2 * se)
    assert r["confidence"] == confidence


def test_seed_makes_the_bootstrap_deterministic():
    a, b = _systems(shift=1.0, noise_sd=5.0)
    assert paired_bootstrap(a, b, seed=11) == paired_bootstrap(a, b, seed=11)
    assert paired_bootstrap(a, b, seed=11)["lo"] != paired_bootstrap(a, b, seed=12)["lo"]


@pytest.mark.parametrize("a,b,kwargs", [
    ([1.0, 2.0], [1.0, 2.0], {"resamples": 999}),
    ([], [], {}),
    ([1.0, 2.0], [1.0], {}),
    ([1.0, math.nan], [1.0, 2.0], {}),
    ([1.0, 2.0], [1.0, 2.0], {"confidence": 1.0}),
])
def test_refuses_meaningless_input(a, b, kwargs):
    with pytest.raises(ValueError):
        paired_bootstrap(a, b, **kwargs)


def test_accepts_exactly_the_minimum_resamples():
    assert paired_bootstrap([1.0, 2.0], [0.0, 0.0], resamples=1000)["resamples"] == 1000


# --- examples_needed against the closed form ---------------------------------------------------------

def test_examples_needed_closed_form_by_hand():
    # ((1.959964 + 0.841621) * 10 / 5)^2 = 31.40 -> 32
    assert examples_needed(10, 5) == 32 == _hand_needed(10, 5)
    assert examples_needed(10, -5) == 32  # the size of the gap matters, not its sign
    # alpha .01, power .9: ((2.575829 + 1.281552) * 1 / 0.5)^2 = 59.52 -> 60
    assert examples_needed(1, 0.5, alpha=0.01, power=0.9) == 60 == _hand_needed(1, 0.5, 2.575829, 1.281552)
    # halving the effect quadruples the examples: ((2.801585) * 4 / 1)^2 = 125.58 -> 126
    assert examples_needed(4, 1) == 126


def test_examples_needed_edges():
    assert examples_needed(10, 0) is None  # no number of examples resolves no difference
    assert examples_needed(0, 2) == 1  # no spread: one example shows the difference
    with pytest.raises(ValueError):
        examples_needed(-1, 2)
    with pytest.raises(ValueError):
        examples_needed(1, 2, power=1.0)


# --- compare + sentence on constructed systems --------------------------------------------------------

def test_a_real_win():
    tuned, base = _systems(shift=10.0, noise_sd=1.0)
    c = compare({"fine-tuned": tuned, "base few-shot": base}, "fine-tuned")["base few-shot"]
    hand = sum(tuned) / 40 - sum(base) / 40
    assert c["diff"] == pytest.approx(hand, abs=1e-9) and 9 < hand < 11
    assert c["lo"] > 0 and c["significant"] and c["needed"] is None and c["higher_is_better"] is True
    means = {"fine-tuned": sum(tuned) / 40, "base few-shot": sum(base) / 40}
    text = sentence(means, {"base few-shot": c}, "fine-tuned", "ROUGE-L", n=40)
    assert text.startswith("Fine-tuning was worth it: fine-tuned beats the best baseline (base few-shot) by "
                           f"{hand:.1f} ROUGE-L points (95% CI ")
    assert text.endswith(", n=40).")


def test_a_tie_within_noise():
    # identical systems up to noise of sd 10 per example, mean gap exactly 0.5: far below what 40 resolve
    tuned, base = _systems(shift=0.5, noise_sd=10.0, centre=True)
    c = compare({"fine-tuned": tuned, "base few-shot": base}, "fine-tuned")["base few-shot"]
    d = [t - b for t, b in zip(tuned, base)]
    assert c["diff"] == pytest.approx(0.5, abs=1e-9)
    assert c["lo"] < 0 < c["hi"] and not c["significant"]
    assert c["sd"] == pytest.approx(statistics.stdev(d), rel=1e-12)
    assert c["needed"] == _hand_needed(statistics.stdev(d), 0.5) and c["needed"] > 40
    means = {"fine-tuned": sum(tuned) / 40, "base few-shot": sum(base) / 40}
    text = sentence(means, {"base few-shot": c}, "fine-tuned", "ROUGE-L", n=40)
    assert text == (f"No significant difference (n=40): fine-tuned {means['fine-tuned']:.1f} vs base few-shot "
                    f"{means['base few-shot']:.1f} ROUGE-L, 95% CI of the difference {c['lo']:.1f} to "
                    f"{c['hi']:.1f}; resolving a difference this size would take about {c['needed']} test "
                    "examples.")


def test_a_loss():
    tuned, base = _systems(shift=-8.0, noise_sd=2.0)
    c = compare({"fine-tuned": tuned, "base few-shot": base}, "fine-tuned")["base few-shot"]
    assert c["hi"] < 0 and c["significant"] and c["needed"] is None
    means = {"fine-tuned": sum(tuned) / 40, "base few-shot": sum(base) / 40}
    text = sentence(means, {"base few-shot": c}, "fine-tuned", "accuracy", n=40)
    assert text.startswith(f"Fine-tuning did not win: base few-shot scores {means['base few-shot']:.1f} accuracy "
                           f"against fine-tuned's {means['fine-tuned']:.1f} (difference 95% CI ")
    assert "Suggestion: ship base few-shot (it needs no training)" in text


def test_lower_is_better_is_flipped_so_positive_means_tuned_wins():
    nll_base = [2.0, 2.4, 1.8, 2.2, 2.6, 1.9]
    nll_tuned = [x - g for x, g in zip(nll_base, [0.3, 0.2, 0.4, 0.3, 0.35, 0.25])]  # gaps average 0.3
    flipped = compare({"t": nll_tuned, "b": nll_base}, "t", higher_is_better=False)["b"]
    raw = compare({"t": nll_tuned, "b": nll_base}, "t")["b"]
    assert flipped["diff"] == pytest.approx(0.3) and raw["diff"] == pytest.approx(-0.3)
    assert flipped["lo"] > 0 and flipped["significant"] and flipped["higher_is_better"] is False
    assert (flipped["lo"], flipped["hi"]) == (pytest.approx(-raw["hi"]), pytest.approx(-raw["lo"]))


def test_compare_covers_every_other_system_and_refuses_an_unknown_tuned():
    scores = {"a": [1.0, 2.0], "b": [1.0, 1.0], "c": [0.0, 2.0]}
    assert sorted(compare(scores, "a")) == ["b", "c"]
    with pytest.raises(ValueError):
        compare(scores, "missing")


# --- sentence on hand-built comparisons ---------------------------------------------------------------

def _comp(diff, lo, hi, significant, needed=None, higher_is_better=True):
    return {"diff": diff, "lo": lo, "hi": hi, "n": 120, "resamples": 2000, "confidence": 0.95,
            "significant": significant, "higher_is_better": higher_is_better, "needed": needed}


MEANS = {"fine-tuned": 60.04, "zero-shot": 40.0, "few-shot": 55.0, "retrieval": 50.0}


def test_rival_is_the_baseline_with_the_highest_mean():
    comps = {"zero-shot": _comp(20.0, 18.0, 22.0, True), "retrieval": _comp(-3.0, -6.0, -1.0, True),
             "few-shot": _comp(5.04, 2.31, 7.64, True)}
    assert sentence(MEANS, comps, "fine-tuned", "ROUGE-L", n=120) == (
        "Fine-tuning was worth it: fine-tuned beats the best baseline (few-shot) by 5.0 ROUGE-L points "
        "(95% CI 2.3 to 7.6, n=120).")


def test_positive_gap_without_significance_is_not_a_win():
    comps = {"few-shot": _comp(5.04, -0.52, 10.6, False, needed=171)}
    assert sentence(MEANS, comps, "fine-tuned", "ROUGE-L", n=120) == (
        "No significant difference (n=120): fine-tuned 60.0 vs few-shot 55.0 ROUGE-L, 95% CI of the difference "
        "-0.5 to 10.6; resolving a difference this size would take about 171 test examples.")


def test_zero_gap_cannot_be_resolved():
    comps = {"few-shot": _comp(0.0, -2.0, 2.0, False, needed=None)}
    text = sentence({"fine-tuned": 55.0, "few-shot": 55.0}, comps, "fine-tuned", "ROUGE-L", n=120)
    assert "cannot be resolved: the difference is 0" in text


def test_significant_loss_sentence():
    comps = {"few-shot": _comp(-4.96, -7.2, -2.75, True)}
    text = sentence({"fine-tuned": 50.04, "few-shot": 55.0}, comps, "fine-tuned", "accuracy", n=120)
    assert text.startswith("Fine-tuning did not win: few-shot scores 55.0 accuracy against fine-tuned's 50.0 "
                           "(difference 95% CI -7.2 to -2.8, n=120). Suggestion: ship few-shot")


def test_no_baseline():
    assert sentence({"fine-tuned": 71.26}, {}, "fine-tuned", "accuracy", n=30) == (
        "fine-tuned: accuracy 71.3 (no baseline was run).")


def test_perplexity_clause():
    comps = {"few-shot": _comp(5.04, 2.31, 7.64, True)}
    nll = _comp(0.3, 0.123, 0.456, True, higher_is_better=False)  # positive: tuned's NLL is lower
    text = sentence(MEANS, comps, "fine-tuned", "ROUGE-L", n=120,
                    ppl={"base": 12.3456, "tuned": 8.7, "comparison": nll})
    assert text.endswith("(95% CI 2.3 to 7.6, n=120); answer perplexity 12.35 -> 8.70 "
                         "(95% CI of the per-token NLL reduction 0.12 to 0.46).")
    # an unflipped NLL comparison (tuned minus base) is turned into the same reduction
    raw = _comp(-0.3, -0.456, -0.123, True, higher_is_better=True)
    assert sentence(MEANS, comps, "fine-tuned", "ROUGE-L", n=120,
                    ppl={"base": 12.3456, "tuned": 8.7, "comparison": raw}) == text
    # no measured perplexity: no clause
    assert "perplexity" not in sentence(MEANS, comps, "fine-tuned", "ROUGE-L", n=120,
                                        ppl={"base": math.nan, "tuned": 8.7})

"""Honest verdicts: is the fine-tuned system really better than the best baseline, or is the gap noise?

Every system is scored on the same test examples, so the comparison is *paired*: the per-example
differences are resampled (a paired bootstrap), which is far tighter than comparing two means as if
they came from different examples. The verdict says "worth it" only when the confidence interval of
the difference excludes 0, and otherwise says how many test examples would resolve a gap that size.

    >>> from luyen.evaluate.verdict import compare, sentence
    >>> base = [40.0, 55.0, 62.0, 48.0, 70.0, 35.0, 58.0, 66.0]
    >>> tuned = [b + d for b, d in zip(base, [11, 9, 10, 12, 8, 10, 9, 11])]
    >>> comps = compare({"fine-tuned": tuned, "few-shot": base}, "fine-tuned")
    >>> comps["few-shot"]["diff"], comps["few-shot"]["significant"]
    (10.0, True)
    >>> means = {"fine-tuned": sum(tuned) / 8, "few-shot": sum(base) / 8}
    >>> print(sentence(means, comps, "fine-tuned", "ROUGE-L", n=8))
    Fine-tuning was worth it: fine-tuned beats the best baseline (few-shot) by 10.0 ROUGE-L points (95% CI 9.1 to 10.8, n=8).

Pure functions on numpy only (no torch), so the statistics are testable without a model.
"""
from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

MIN_RESAMPLES = 1000  # below this the 2.5%/97.5% percentiles rest on ~25 resamples and wobble between seeds


def paired_bootstrap(a, b, *, resamples: int = 2000, seed: int = 0, confidence: float = 0.95) -> dict:
    """Percentile-bootstrap confidence interval of mean(a - b) for paired per-example scores.

    `a` and `b` score two systems on the same examples, in the same order. Example indices are resampled
    with replacement (one seeded [resamples, n] index matrix, so a seed gives one answer), and the mean
    difference of each resample gives the interval. Returns {"diff", "lo", "hi", "n", "resamples",
    "confidence", "significant"}; significant means the interval excludes 0. Below ~20 examples the
    percentile bootstrap is optimistic (intervals too narrow), so read small-n verdicts with care.
    Memory is two [resamples, n] arrays (2000 x 5000 examples: ~160 MB).
    """
    if resamples < MIN_RESAMPLES:
        raise ValueError(f"resamples={resamples}: use at least {MIN_RESAMPLES} for a stable 95% interval")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence} must lie strictly between 0 and 1")
    d = _differences(a, b)
    n = len(d)
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    means = d[idx].mean(axis=1)
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(means, [tail, 100 - tail])
    # one example says nothing about how the difference varies, so it can never be significant
    significant = n > 1 and bool(lo > 0 or hi < 0)
    return {"diff": float(d.mean()), "lo": float(lo), "hi": float(hi), "n": n, "resamples": resamples,
            "confidence": confidence, "significant": significant}


def _differences(a, b) -> np.ndarray:
    """a - b as float64, refusing what would make the interval meaningless (empty, unpaired, NaN)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"paired scores need two equal-length 1-D lists, got shapes {a.shape} and {b.shape}")
    if a.size == 0:
        raise ValueError("no examples: a bootstrap needs at least one paired score")
    d = a - b
    if not np.isfinite(d).all():
        raise ValueError("scores contain NaN or infinity; drop or fix those examples first")
    return d


def examples_needed(diffs_sd: float, effect: float, *, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Paired examples a two-sided paired test needs to resolve a mean difference of size `effect`.

    Normal-approximation sample size for a paired (one-sample) test on the differences:

        n = ceil(((z_{1-alpha/2} + z_{power}) * sd / |effect|) ** 2)

    with z the standard normal quantile and sd the standard deviation of the per-example differences.
    E.g. sd=10, effect=5, alpha=0.05, power=0.8: ((1.960 + 0.842) * 2) ** 2 = 31.4 -> 32 examples.
    Returns None when effect == 0 (no number of examples resolves no difference); at least 1.
    """
    if not (diffs_sd >= 0 and math.isfinite(diffs_sd)):
        raise ValueError(f"diffs_sd={diffs_sd} must be a finite non-negative standard deviation")
    if not (0 < alpha < 1 and 0 < power < 1):
        raise ValueError(f"alpha={alpha} and power={power} must lie strictly between 0 and 1")
    if effect == 0:
        return None
    z = NormalDist().inv_cdf
    n = ((z(1 - alpha / 2) + z(power)) * diffs_sd / abs(effect)) ** 2
    return max(1, math.ceil(n))  # sd == 0: a single example already shows the difference


def compare(scores: dict[str, list[float]], tuned: str, *, higher_is_better: bool = True,
            resamples: int = 2000, seed: int = 0) -> dict[str, dict]:
    """Paired bootstrap of `tuned` against every other system in `scores` (per-example lists, same order).

    A positive "diff" always means "tuned is better": for lower-is-better metrics (per-example NLL) the
    difference is other - tuned. Each result is paired_bootstrap's dict plus "higher_is_better", "sd"
    (standard deviation of the per-example differences, NaN for one example) and "needed": the
    examples_needed to resolve the observed gap when it is not significant (None when significant,
    when the gap is exactly 0, or when one example leaves the spread unknown). Pass only the baselines
    and the tuned system if other tuned variants should not count as rivals.
    """
    if tuned not in scores:
        raise ValueError(f"tuned system {tuned!r} is not among the scored systems {sorted(scores)}")
    sign = 1.0 if higher_is_better else -1.0  # flip so that bigger is better for both metric kinds
    mine = sign * np.asarray(scores[tuned], dtype=np.float64)
    out = {}
    for name, other in scores.items():
        if name == tuned:
            continue
        theirs = sign * np.asarray(other, dtype=np.float64)
        res = paired_bootstrap(mine, theirs, resamples=resamples, seed=seed)
        d = mine - theirs
        sd = float(np.std(d, ddof=1)) if len(d) > 1 else math.nan
        res["higher_is_better"] = higher_is_better
        res["sd"] = sd
        res["needed"] = (examples_needed(sd, res["diff"])
                         if not res["significant"] and math.isfinite(sd) else None)
        out[name] = res
    return out


def sentence(means: dict[str, float], comparisons: dict[str, dict], tuned: str, metric_label: str, n: int,
             ppl: dict | None = None) -> str:
    """The verdict paragraph: tuned against the best baseline (highest mean among `comparisons`' systems).

    `means` are every system's primary metric (0..100) and `comparisons` compare()'s output on the same
    metric, in the same units. "Worth it" only when the interval vs that rival lies above 0; a tie
    says how many examples would resolve the gap; a loss suggests shipping the rival. `ppl`, optional:
    {"base": perplexity, "tuned": perplexity, "comparison": compare() entry on per-token NLL, "of": the system
    the base perplexity is from when it is not the rival (a rival without a model has none), else None}.
    """
    rivals = [name for name in comparisons if name in means]
    if not rivals:
        return f"{tuned}: {metric_label} {means[tuned]:.1f} (no baseline was run)."
    rival = max(rivals, key=lambda name: means[name])
    c = comparisons[rival]
    a, b, pct = means[tuned], means[rival], f"{100 * c.get('confidence', 0.95):g}%"
    ci = f"{c['lo']:.1f} to {c['hi']:.1f}"
    tail = _ppl_clause(ppl)
    if c["significant"] and c["lo"] > 0:
        return (f"Fine-tuning was worth it: {tuned} beats the best baseline ({rival}) by {c['diff']:.1f} "
                f"{metric_label} points ({pct} CI {ci}, n={n}){tail}.")
    if not c["significant"]:
        return (f"No significant difference (n={n}): {tuned} {a:.1f} vs {rival} {b:.1f} {metric_label}, "
                f"{pct} CI of the difference {ci}; {_needed_clause(c)}{tail}.")
    return (f"Fine-tuning did not win: {rival} scores {b:.1f} {metric_label} against {tuned}'s {a:.1f} "
            f"(difference {pct} CI {ci}, n={n}){tail}. Suggestion: ship {rival} (it needs no training), or "
            "train on more and cleaner examples, for more epochs, and check the data report for leakage "
            "and truncation.")


def _needed_clause(c: dict) -> str:
    if c.get("needed") is not None:
        return f"resolving a difference this size would take about {c['needed']} test examples"
    if c["diff"] == 0:
        return "a difference this size cannot be resolved: the difference is 0"
    return "how many examples would resolve it is unknown: one example shows no spread"


def _ppl_clause(ppl: dict | None) -> str:
    """'; answer perplexity A -> B (...)', or '' when no finite perplexities were measured."""
    if not ppl or not all(math.isfinite(ppl.get(k, math.nan)) for k in ("base", "tuned")):
        return ""
    of = f" ({ppl['of']})" if ppl.get("of") else ""  # named when it is not the rival's (a rival without a model)
    text = f"; answer perplexity {ppl['base']:.2f}{of} -> {ppl['tuned']:.2f}"
    c = ppl.get("comparison")
    if not c:
        return text
    # report a reduction (positive = tuned's NLL is lower) whichever way the comparison was run
    lo, hi = (c["lo"], c["hi"]) if not c.get("higher_is_better", False) else (-c["hi"], -c["lo"])
    pct = f"{100 * c.get('confidence', 0.95):g}%"
    return text + f" ({pct} CI of the per-token NLL reduction {lo:.2f} to {hi:.2f})"


def against_baselines(per: dict[str, dict], tuned: str) -> dict:
    """Paired bootstraps of `tuned` against every baseline (the systems whose name does not start with
    `tuned`) on the per-example scores `per[name]`: "primary" (the primary metric) and "nll" (per-token
    answer NLL, lower is better, flipped so that a positive difference favours fine-tuning). {} when
    `tuned` was not scored."""
    if tuned not in per:
        return {}
    keep = [n for n in per if n == tuned or not n.startswith(tuned)]
    out = {"primary": compare({n: per[n]["primary"] for n in keep}, tuned),  # a system without a model has no NLL
           "nll": compare({n: per[n]["nll"] for n in keep if per[n]["nll"] is not None}, tuned, higher_is_better=False)}
    return {k: {n: rounded(c) for n, c in d.items()} for k, d in out.items()}


def rounded(stats: dict) -> dict:
    """Floats to 4 decimals, for metrics.json and the manifest."""
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in stats.items()}

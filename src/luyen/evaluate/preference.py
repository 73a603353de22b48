"""What preference tuning changed, measured on the preference test split, and the judge's pairwise verdict.

    section = preference_section(engines, data_dir, beta=0.1)   # None when the test split holds no pairs
    wins = pairwise_win_rate(judge, questions, references, tuned_answers, base_answers)

For each test pair the chosen and the rejected answer are scored by the model the run started from
(the base, or the SFT run DPO started from: the adapter switched off) and by the tuned model (answer
log-probabilities, `evaluate.likelihood`). Reported with 95% bootstrap intervals over the pairs:

- likelihood accuracy of each model: the share of pairs whose chosen answer it finds more likely;
- reward accuracy of the tuned model: the share whose implicit reward beta (log pi - log pi_ref) ranks
  chosen above rejected; the mean reward margin; the change in the chosen and rejected answers'
  log-likelihood (DPO is known to lower both: the margin can grow while the chosen answer gets less likely).

The judge compares the tuned model's answer with the base's on the same question in both orders (A/B then
B/A) and scores 1 for a win in both, 0.5 for a tie or a verdict that flips with the order (position bias),
0 for a loss, as MT-Bench's pairwise grading does.
"""
from __future__ import annotations

import numpy as np

from luyen.evaluate.verdict import paired_bootstrap, rounded

PAIRWISE = """You are comparing two assistants' answers to a customer's question (it may be in Vietnamese).
Question: {question}
Reference answer: {reference}

[Answer A]
{a}

[Answer B]
{b}

Which answer is more correct, helpful and polite, judged against the reference? Reply with a one-sentence
reason, then "[[A]]" if A is better, "[[B]]" if B is better, or "[[C]]" for a tie."""


def preference_section(engines, data_dir, *, beta: float, max_length: int = 4096) -> dict | None:
    """Likelihood and reward accuracies of the preference test split, base vs tuned (see the module)."""
    from luyen.data.stage import read_split
    from luyen.evaluate.likelihood import example_nll
    from luyen.train.preference import encode_preferences
    test = [r for r in read_split(data_dir, "test") if r["kind"] == "preference"]
    if not test:
        return None
    tuned = engines.tuned
    pairs, _ = encode_preferences(test, tuned.tok, tuned.template, max_length, paired=True)
    if not pairs:
        return None
    sides = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    logp = {}
    with engines.base_weights():
        logp["base"] = -np.array([n for n, _ in example_nll(engines.base.model, sides, engines.base.pad_id)])
    logp["tuned"] = -np.array([n for n, _ in example_nll(tuned.model, sides, tuned.pad_id)])
    k = len(pairs)
    c = {s: v[:k] for s, v in logp.items()}
    r = {s: v[k:] for s, v in logp.items()}
    zero = np.zeros(k)
    dc, dr = c["tuned"] - c["base"], r["tuned"] - r["base"]

    def mean_ci(values, scale: float = 1.0) -> dict:
        return rounded({key: (v * scale if key in ("diff", "lo", "hi") else v)
                        for key, v in paired_bootstrap(values, zero).items()})

    out = {"pairs": k, "beta": beta,
           **{f"{s}_likelihood_accuracy": mean_ci((c[s] > r[s]).astype(float)) for s in ("base", "tuned")},
           "likelihood_accuracy_gain": rounded(paired_bootstrap((c["tuned"] > r["tuned"]).astype(float),
                                                                (c["base"] > r["base"]).astype(float))),
           "reward_accuracy": mean_ci((dc > dr).astype(float)),
           "reward_margin": mean_ci(beta * (dc - dr)),
           "delta_logp_chosen": mean_ci(dc), "delta_logp_rejected": mean_ci(dr)}
    return out


def lines(section: dict) -> list[str]:
    """The report's preference paragraph, one finding per line."""
    def ci(d, pct=False):
        f = (lambda x: f"{100 * x:.0f}%") if pct else (lambda x: f"{x:+.2f}")
        return f"{f(d['diff'])} (95% CI {f(d['lo'])} to {f(d['hi'])})"
    s = section
    return [f"Preference test split, {s['pairs']} pairs (chosen vs rejected answers):",
            f"- the base finds the chosen answer more likely in {ci(s['base_likelihood_accuracy'], True)} of pairs, "
            f"the tuned model in {ci(s['tuned_likelihood_accuracy'], True)}",
            f"- reward accuracy (beta {s['beta']:g}: the tuned model's implicit reward ranks chosen first) "
            f"{ci(s['reward_accuracy'], True)}; mean reward margin {ci(s['reward_margin'])}",
            f"- log-likelihood change, chosen {ci(s['delta_logp_chosen'])}, rejected {ci(s['delta_logp_rejected'])} "
            "nats per answer"]


def parse_choice(reply: str) -> str | None:
    """"A", "B" or "C" (tie) from a pairwise judge's reply ("... [[A]]"), else None."""
    import re
    found = re.findall(r"\[\[\s*([ABC])\s*\]\]", reply or "")
    return found[-1] if found else None


def pairwise_win_rate(judge, questions: list[str], references: list[str], tuned: list[str], base: list[str]) -> dict:
    """The tuned answers' win rate against the base's by the judge, both orders (see the module docstring)."""
    first = judge.ask([PAIRWISE.format(question=q, reference=ref, a=t, b=b)
                       for q, ref, t, b in zip(questions, references, tuned, base)])
    second = judge.ask([PAIRWISE.format(question=q, reference=ref, a=b, b=t)
                        for q, ref, t, b in zip(questions, references, tuned, base)])
    scores, unparsed = [], 0
    for one, two in zip(first, second):
        a, b = parse_choice(one), parse_choice(two)
        if a is None or b is None:
            unparsed += 1
            continue
        win = {"A": 1.0, "B": 0.0, "C": 0.5}[a], {"A": 0.0, "B": 1.0, "C": 0.5}[b]  # tuned's score in each order
        scores.append(sum(win) / 2)
    out = {"n": len(scores), "unparsed": unparsed,
           "wins": sum(s == 1.0 for s in scores), "losses": sum(s == 0.0 for s in scores),
           "ties_or_order_flips": sum(s == 0.5 for s in scores)}
    if scores:
        out["win_rate"] = rounded(paired_bootstrap(np.array(scores), np.zeros(len(scores))))
    return out

"""The evaluation report: one Markdown and one self-contained HTML page (no script, no external
resource, model output always escaped) from what the stage measured.

    text = markdown(report)      # report = {"results", "verdict", "samples", "primary", "comparisons", "general", ...}
    page = html(report)
    verdict(results, "rougeL", comparisons, n=40)   # the paragraph that opens both

Each baseline's row carries the paired difference "fine-tuned minus this system" with its 95%
bootstrap interval, so a reader sees at once which gaps are larger than the noise of the test set.
"""
from __future__ import annotations

import html as _html
import math

from luyen.evaluate.systems import TUNED

COLUMNS = [("answer_perplexity", "answer PPL", "{:.2f}"), ("sequence_perplexity", "sequence PPL", "{:.2f}"),
           ("bleu", "BLEU-4", "{:.1f}"), ("chrf", "chrF", "{:.1f}"), ("rouge1", "ROUGE-1", "{:.1f}"),
           ("rouge2", "ROUGE-2", "{:.1f}"), ("rougeL", "ROUGE-L", "{:.1f}"), ("exact_match", "EM", "{:.1f}"),
           ("f1", "F1", "{:.1f}"), ("accuracy", "accuracy", "{:.1f}"), ("macro_f1", "macro-F1", "{:.1f}"),
           ("unmatched", "no label", "{:.0f}"), ("judge", "judge (1-5)", "{:.2f}"),
           ("stop_rate", "stops %", "{:.0f}"), ("loop_rate", "loops %", "{:.0f}"),
           ("length_ratio", "length / ref", "{:.2f}"), ("language_match", "right language %", "{:.0f}"),
           ("copy_rate", "copied %", "{:.0f}"),
           ("mean_answer_words", "words/answer", "{:.1f}"), ("seconds_per_example", "s/example", "{:.2f}")]
LABELS = {"rougeL": "ROUGE-L", "accuracy": "accuracy"}
EXPLAIN = ("Δ columns: the fine-tuned model minus this system on the same test examples, with the 95% interval "
           "of a paired bootstrap (2,000 resamples); an interval that contains 0 is no evidence of a difference. "
           "Δ NLL: answer negative log-likelihood per token, positive = the fine-tuned model is better. "
           "stops: answers that ended on a stop token before the length limit; loops: answers with a 4-word "
           "phrase repeated 3 or more times; length / ref: answer words over reference words; right language: "
           "answers in their reference's language (vi/en); copied: answer words in 8-word runs that also occur in "
           "the system's prompt (its question, instructions, examples or passages); retrieved passage: no model, each "
           "question's best passage (the first the retrieval systems are given) is its answer; s/example: seconds "
           "spent answering, over the number of examples (answered in batches; scoring the reference answers not "
           "counted).")


def _cols(results: dict) -> list[tuple[str, str, str]]:
    return [c for c in COLUMNS if any(c[0] in r for r in results.values())]


def _delta(c: dict | None, digits: int = 1) -> str:
    if not c:
        return ""
    return f"{c['diff']:+.{digits}f} [{c['lo']:+.{digits}f}, {c['hi']:+.{digits}f}]"


def table_rows(report: dict) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the main table, shared by both renderings."""
    results, primary, comps = report["results"], report["primary"], report.get("comparisons") or {}
    cols = _cols(results)
    head = ["system"] + [c[1] for c in cols]
    deltas = bool(comps.get("primary"))
    if deltas:
        head += [f"Δ {LABELS.get(primary, primary)} (95% CI)", "Δ NLL (95% CI)"]
    rows = []
    for name, r in results.items():
        row = [name] + [c[2].format(r[c[0]]) if c[0] in r and r[c[0]] is not None else "" for c in cols]
        if deltas:
            row += [_delta(comps["primary"].get(name)), _delta(comps.get("nll", {}).get(name), 3)]
        rows.append(row)
    return head, rows


def general_line(g: dict | None) -> str:
    """One sentence on the general-ability check (fine-tuning can make a model forget)."""
    if not g:
        return ""
    c = g["comparison"]
    text = (f"General ability ({g['n']} multiple-choice items, vi + en, scored by log-likelihood): base "
            f"{g['base']['accuracy']:.1f}% -> fine-tuned {g['tuned']['accuracy']:.1f}% (Δ {c['diff']:+.1f} points, "
            f"95% CI {c['lo']:+.1f} to {c['hi']:+.1f}).")
    if c["significant"] and c["hi"] < 0:
        text += " Warning: the fine-tuned model is significantly worse at general tasks than its base."
    return text


def pairwise_line(p: dict, against: str) -> str:
    """One sentence on the judge's pairwise comparison (evaluate.preference.pairwise_win_rate)."""
    if not p.get("win_rate"):
        return f"Judge, fine-tuned vs {against}: no verdict parsed ({p['unparsed']} replies without [[A]]/[[B]]/[[C]])."
    w = p["win_rate"]
    return (f"Judge, fine-tuned vs {against} on {p['n']} questions, both orders: win rate {100 * w['diff']:.0f}% "
            f"(95% CI {100 * w['lo']:.0f}% to {100 * w['hi']:.0f}%; {p['wins']} wins, {p['losses']} losses, "
            f"{p['ties_or_order_flips']} ties or order flips, {p['unparsed']} unparsed).")


def extra_lines(report: dict) -> list[str]:
    """The general-ability, preference and pairwise-judge findings, one paragraph each."""
    from luyen.evaluate.preference import lines
    out = [general_line(report["general"])] if report.get("general") else []
    if report.get("preference"):
        out.append("\n".join(lines(report["preference"])))
    if report.get("pairwise"):
        out.append(pairwise_line(report["pairwise"], report["pairwise"]["against"]))
    return out


def verdict(results: dict, primary: str, comparisons: dict, n: int) -> str:
    """The verdict paragraph (luyen.evaluate.verdict): a win only when the paired bootstrap interval
    against the best baseline excludes 0; without comparisons, the best system."""
    from luyen.evaluate.verdict import sentence
    label = LABELS.get(primary, primary)
    if not comparisons:
        best = max(results, key=lambda name: results[name][primary])
        return f"Best: {best} with {label} {results[best][primary]:.1f} (n={n})."
    means = {name: r[primary] for name, r in results.items()}
    baselines = {name: c for name, c in comparisons["primary"].items() if not name.startswith(TUNED)}
    rival = max(baselines, key=means.get) if baselines else None
    modelled = [name for name in baselines if name in comparisons["nll"]]  # the retrieved passage has no perplexity
    ppl, named = None, [TUNED, rival]
    if modelled:
        against = rival if rival in modelled else max(modelled, key=means.get)
        ppl = {"base": results[against].get("answer_perplexity", math.nan), "of": None if against == rival else against,
               "tuned": results[TUNED].get("answer_perplexity", math.nan), "comparison": comparisons["nll"][against]}
        named += [against] if against != rival else []  # a rival without a model neither stops nor copies
    return sentence(means, baselines, TUNED, label, n, ppl=ppl) + stops(results, named) + copies(results, named)


def stops(results: dict, names: list[str | None]) -> str:
    """' But <system> rarely stops: k/n answers ended on their own.' for each named system under 80%."""
    out = ""
    for name in names:
        r = results.get(name) if name else None
        if r and "stop_rate" in r and r["stop_rate"] < 80:
            out += f" But {name} rarely stops: {r['stopped']:.0f}/{r['answers']:.0f} answers ended on their own."
    return out


def copies(results: dict, names: list[str | None]) -> str:
    """' <System> copies p% of its answer words from its prompt.' for each named system at 50% or more:
    much of its score is then text it was given, not text it wrote."""
    out = ""
    for name in names:
        r = results.get(name) if name else None
        if r and r.get("copy_rate", 0) >= 50:
            out += f" {name[0].upper()}{name[1:]} copies {r['copy_rate']:.0f}% of its answer words from its prompt."
    return out


def generation_line(g, budget_from: str = "set", runtime: str = "transformers") -> str:
    """The generation settings every system answered with (a GenerateConfig), where the budget came from,
    and what generated the answers (Engines.runtime)."""
    how = "greedy" if g.temperature == 0 else f"temperature {g.temperature}, top_p {g.top_p}, seed {g.seed}"
    source = "" if budget_from == "set" else f" ({budget_from})"
    return (f"{how}, max_new_tokens {g.max_new_tokens}{source}, repetition_penalty {g.repetition_penalty}, "
            f"no_repeat_ngram_size {g.no_repeat_ngram_size}; the same for every system; answers by {runtime}")


def markdown(report: dict) -> str:
    head, rows = table_rows(report)
    lines = ["# Evaluation", "", report["verdict"], ""]
    for paragraph in extra_lines(report):
        lines += [paragraph, ""]
    lines += ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    if report.get("comparisons", {}).get("primary"):
        lines += ["", EXPLAIN]
    lines += ["", f"Generation: {report.get('generation', '')}", "", "## Samples", ""]
    for s in report["samples"][:5]:
        lines.append(f"**Q:** {s['prompt']}  ")
        lines.append(f"**reference:** {s['reference']}  ")
        for name in report["results"]:
            lines.append(f"**{name}:** {s[name]}  ")
        lines.append("")
    return "\n".join(lines) + "\n"


def _bars(results: dict, key: str, title: str) -> str:
    """A small inline SVG bar chart (no external resource, no script)."""
    vals = [(n, r[key]) for n, r in results.items() if r.get(key) is not None and math.isfinite(r[key])]
    if not vals:
        return ""
    top = max(v for _, v in vals) or 1.0
    rows = []
    for i, (n, v) in enumerate(vals):
        w = 260 * v / top
        rows.append(f'<text x="0" y="{28 + i * 26}" font-size="12">{_html.escape(n)}</text>'
                    f'<rect x="130" y="{16 + i * 26}" width="{w:.1f}" height="16" fill="#4a7bd0"/>'
                    f'<text x="{136 + w:.1f}" y="{28 + i * 26}" font-size="12">{v:.2f}</text>')
    h = 24 + 26 * len(vals)
    return (f'<figure><figcaption>{_html.escape(title)}</figcaption><svg xmlns="http://www.w3.org/2000/svg" '
            f'width="460" height="{h}" role="img">{"".join(rows)}</svg></figure>')


def html(report: dict) -> str:
    results, primary = report["results"], report["primary"]
    head, rows = table_rows(report)
    e = _html.escape
    table = ("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>" +
             "".join("<tr><th>" + e(r[0]) + "</th>" + "".join(f"<td>{e(c)}</td>" for c in r[1:]) + "</tr>" for r in rows)
             + "</table>")
    charts = "".join(_bars(results, k, t) for k, t in ((primary, LABELS.get(primary, primary)),
                                                        ("answer_perplexity", "answer perplexity (lower is better)"),
                                                        ("chrf", "chrF")))
    names = "".join(f"<th>{e(n)}</th>" for n in results)
    side = "".join("<tr><td>" + e(s["prompt"]) + "</td><td>" + e(s["reference"]) + "</td>" +
                   "".join(f"<td>{e(s[n])}</td>" for n in results) + "</tr>" for s in report["samples"][:10])
    notes = "".join("<p>" + e(p).replace("\n", "<br>") + "</p>" for p in extra_lines(report))
    if report.get("comparisons", {}).get("primary"):
        notes += f"<p><small>{e(EXPLAIN)}</small></p>"
    return ("<!doctype html><html lang=\"vi\"><head><meta charset=\"utf-8\"><title>luyen evaluation</title>"
            "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}figure{display:inline-block;margin:1em}"
            "</style></head><body><h1>Evaluation</h1>"
            f"<p><strong>{e(report['verdict'])}</strong></p>{table}{notes}"
            f"<p>Generation: {e(report.get('generation', ''))}</p>"
            f"{charts}<h2>Samples</h2><table><tr><th>prompt</th><th>reference</th>{names}</tr>{side}</table>"
            "</body></html>\n")

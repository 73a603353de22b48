"""The preflight report: one dict (report.json) and its terminal rendering.

It answers, before any training: what is in the data, what was wrong with it, what cleaning removed,
how long the examples are in the model's own tokens, whether the chat template and stop tokens
work, whether evaluation data leaks from training, and what training will cost here.
"""
from __future__ import annotations

import numpy as np
from rich.console import Console
from rich.table import Table

from luyen.data.pipeline import LANGS, Outcome, Tally, longest
from luyen.data.preference import PREFERENCE_FORMATS
from luyen.data.split import SPLITS
from luyen.data.tokens import TokenCounter, length_stats


def build_report(tally: Tally, out: Outcome, counter: TokenCounter, *, tokenizer, template_source: str,
                 max_length: int, estimate: dict | None, on_error: str) -> dict:
    c, keep = out.columns, out.keep
    total, loss = c["total"], c["loss"]
    bounded = c["kind"] != "text"
    over = int((longest(c)[bounded] > max_length).sum())
    splits = {name: int((out.split == i).sum()) for i, name in enumerate(SPLITS)}
    report = {
        "records": {"rows_read": tally.rows, "by_format": dict(tally.formats), "by_kind": dict(tally.kinds),
                    "per_file": {f: dict(v) for f, v in tally.per_file.items()}, "kept": int(keep.sum())},
        "errors": {"count": sum(tally.errors.values()), "by_problem": dict(tally.errors),
                   "first": tally.error_lines, "on_error": on_error},
        "cleaning": {"empty_removed": tally.empty, **out.removed,
                     **({"chosen_equals_rejected": tally.same_pair} if _pairs_read(tally) else {})},
        "scrub": {"found": dict(tally.scrub_found), "records_redacted": tally.scrub_redacted,
                  "records_dropped": tally.scrub_dropped},
        "tokens": {"tokenizer": getattr(tokenizer, "name_or_path", ""), "chat_template": template_source,
                   "all": length_stats(total), "kept": length_stats(total[keep]),
                   "max_length": max_length, "over_max_length": over,
                   "over_max_length_share": round(over / max(int(bounded.sum()), 1), 4),
                   "loss_token_share": round(float(loss[keep].sum()) / max(float(total[keep].sum()), 1), 4),
                   "train_tokens": int(total[keep][out.split == 0].sum()),
                   "train_loss_tokens": int(loss[keep][out.split == 0].sum())},
        "template": _template_checks(counter, tokenizer),
        "language": {lang: int((c["lang"][keep] == i).sum()) for i, lang in enumerate(LANGS)},
        "split": {**splits, "leakage": out.leakage},
        "labels": _labels(out),
        **_pair_sections(tally, out, max_length),
        "estimate": estimate,
    }
    report["problems"], report["warnings"] = _verdict(report)
    report["usable"] = not report["problems"]
    return report


def _template_checks(counter: TokenCounter, tok) -> dict:
    ch = counter.checks
    eos, pad = tok.eos_token_id, tok.pad_token_id
    return {"end_marker": counter.marker, "stop_token_ids": counter.stop_ids, "checked_exactly": ch.n,
            "length_estimate_mean_abs_error": round(ch.abs_error / ch.n, 2) if ch.n else None,
            "round_trip_ok": ch.n - len(ch.round_trip_failures) if ch.n else None,
            "round_trip_failures": ch.round_trip_failures, "targets_without_stop_token": ch.no_stop_token,
            "examples_with_empty_loss_mask": ch.empty_mask, "eos_token": tok.eos_token, "pad_token": tok.pad_token,
            "pad_is_stop_token": pad is not None and pad in counter.stop_ids, "has_eos": eos is not None}


def _labels(out: Outcome) -> dict | None:
    if not out.labels:
        return None
    lab = out.columns["label"][out.keep]
    return {name: {s: int(((lab == i) & (out.split == k)).sum()) for k, s in enumerate(SPLITS)}
            for i, name in enumerate(out.labels)}


def _pair_sections(tally: Tally, out: Outcome, max_length: int) -> dict:
    """`preference` (pairs, per-side tokens, truncation, chosen/rejected answer length ratio) and
    `feedback` (KTO label balance), each only when the data holds that kind."""
    c, keep, sections = out.columns, out.keep, {}
    pairs = _pairs_read(tally)
    if pairs:
        rows = c["kind"] == "preference"
        a, b = (c["total"][rows], c["total_rejected"][rows]) if rows.any() else (np.zeros(0, np.int32),) * 2
        over = np.maximum(a, b) > max_length
        kept = rows & keep
        ratio = c["answer_a"][kept] / np.maximum(c["answer_b"][kept], 1) if kept.any() else np.ones(1)
        sections["preference"] = {
            "pairs": pairs, "measured": int(rows.sum()), "kept": int(kept.sum()),
            "chosen_equals_rejected": tally.same_pair, "empty_sides": tally.errors.get("empty_side", 0),
            "tokens": {"chosen": length_stats(a), "rejected": length_stats(b)},
            "over_max_length": int(over.sum()), "truncation_share": round(float(over.mean()) if len(a) else 0.0, 4),
            "length_ratio": {"mean": round(float(ratio.mean()), 3), "median": round(float(np.median(ratio)), 3)}}
    if tally.formats.get("kto"):
        lab = c["feedback_label"][(c["kind"] == "feedback") & keep] if "feedback_label" in c else np.zeros(0)
        good, n = int((lab == 1).sum()), len(lab)
        sections["feedback"] = {"examples": n, "desirable": good, "undesirable": n - good,
                                "desirable_share": round(good / max(n, 1), 4)}
    return sections


def _pairs_read(tally: Tally) -> int:
    return sum(tally.formats[f] for f in PREFERENCE_FORMATS)


def _pair_warnings(r: dict) -> list[str]:
    out, p, f = [], r.get("preference"), r.get("feedback")
    if p and p["kept"]:
        mean = p["length_ratio"]["mean"]
        if mean > 1.3 or mean < 1 / 1.3:
            out.append(f"chosen answers are {mean:.2f}x as long as rejected ones on average: DPO learns that longer "
                       f"is {'better' if mean > 1 else 'worse'}, not what is right; balance the lengths or use a "
                       "length-normalised objective (train.method=simpo, or train.preference.loss_type=ipo)")
    if f and f["examples"] and min(f["desirable_share"], 1 - f["desirable_share"]) < 0.2:
        few = "desirable (label true)" if f["desirable_share"] < 0.5 else "undesirable (label false)"
        out.append(f"only {min(f['desirable'], f['undesirable'])} of {f['examples']} feedback examples are {few}: "
                   "KTO needs both; add some or set train.preference.desirable_weight/undesirable_weight")
    return out


def _verdict(r: dict) -> tuple[list[str], list[str]]:
    problems, warnings = [], []
    kinds = r["records"]["by_kind"]
    if len(kinds) > 1:
        problems.append("mixed record kinds (" + ", ".join(f"{n} {k}" for k, n in kinds.items()) +
                        "): one run trains one kind; split the inputs or set data.format")
    mixed = {f: v for f, v in r["records"]["per_file"].items() if len(v) > 1}
    for f, v in mixed.items():
        warnings.append(f"{f} mixes formats ({', '.join(f'{n} {k}' for k, n in v.items())})")
    if r["errors"]["count"] and r["errors"]["on_error"] == "fail":
        problems.append(f"{r['errors']['count']} bad records; fix them or set data.on_error=skip")
    elif r["errors"]["count"]:
        warnings.append(f"{r['errors']['count']} bad records skipped (data.on_error=skip)")
    if r["records"]["kept"] == 0:
        problems.append("no usable records left after cleaning")
    t = r["template"]
    if t["checked_exactly"] and t["examples_with_empty_loss_mask"] > t["checked_exactly"] / 2:
        problems.append("most examples have no loss-bearing tokens: the chat template hides the answers")
    if t["round_trip_failures"]:
        warnings.append(f"chat template round trip failed on {len(t['round_trip_failures'])} examples")
    if t["targets_without_stop_token"]:
        warnings.append(f"{t['targets_without_stop_token']} targets do not end with a stop token")
    if t["pad_is_stop_token"]:
        warnings.append("pad token equals a stop token; luyen masks padding by position, so EOS is still learned")
    share = r["tokens"]["over_max_length_share"]
    if share > 0.05:
        warnings.append(f"{share:.0%} of examples exceed max_length={r['tokens']['max_length']} and are dropped")
    s = r["split"]
    if r["records"]["kept"] >= 3 and (s["val"] == 0 or s["test"] == 0):
        warnings.append("validation or test split is empty; add data or change data.split")
    return problems, warnings + _pair_warnings(r)


def render_report(r: dict, console: Console) -> None:
    rec, tok, tpl = r["records"], r["tokens"], r["template"]
    t = Table(title="luyen data check", show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    t.add_row("records", f"{rec['rows_read']} rows read, {rec['kept']} kept; kinds "
              + ", ".join(f"{k}={n}" for k, n in rec["by_kind"].items()) + "; formats "
              + ", ".join(f"{k}={n}" for k, n in rec["by_format"].items()))
    t.add_row("errors", f"{r['errors']['count']} " + _pairs(r["errors"]["by_problem"]))
    t.add_row("removed", _pairs(r["cleaning"]))
    t.add_row("secrets/PII", _pairs(r["scrub"]["found"]) or "none found")
    a = tok["kept"]
    t.add_row("tokens", f"min {a['min']} / mean {a['mean']} / p50 {a['p50']} / p95 {a['p95']} / max {a['max']}"
              f"  ({tok['chat_template']})")
    t.add_row("truncation", f"{tok['over_max_length_share']:.1%} over max_length={tok['max_length']}")
    t.add_row("loss tokens", f"{tok['loss_token_share']:.1%} of tokens are targets")
    t.add_row("template", f"end marker {tpl['end_marker']!r}, round trip {tpl['round_trip_ok']}/{tpl['checked_exactly']} ok, "
              f"length estimate ±{tpl['length_estimate_mean_abs_error']} tokens")
    t.add_row("EOS/PAD", f"eos={tpl['eos_token']!r} pad={tpl['pad_token']!r} stop ids {tpl['stop_token_ids']}, "
              f"{tpl['targets_without_stop_token']} targets without stop token")
    if p := r.get("preference"):
        ch, rj, lr = p["tokens"]["chosen"], p["tokens"]["rejected"], p["length_ratio"]
        t.add_row("preference", f"{p['pairs']} pairs, {p['kept']} kept, {p['chosen_equals_rejected']} with chosen = "
                  f"rejected dropped; prompt+chosen p50 {ch['p50']} / p95 {ch['p95']} / max {ch['max']}, prompt+rejected "
                  f"p50 {rj['p50']} / p95 {rj['p95']} / max {rj['max']}; {p['truncation_share']:.1%} of pairs over "
                  f"max_length; chosen/rejected answer length mean {lr['mean']}, median {lr['median']}")
    if f := r.get("feedback"):
        t.add_row("feedback", f"{f['desirable']} desirable / {f['undesirable']} undesirable "
                  f"({f['desirable_share']:.0%} desirable)")
    t.add_row("language", _pairs(r["language"]))
    s = r["split"]
    t.add_row("split", f"train {s['train']} / val {s['val']} / test {s['test']}; leakage: "
              f"{s['leakage']['near_duplicate_groups_across_splits']} near-dup groups across splits, "
              f"{s['leakage']['eval_prompts_also_in_train']} eval prompts seen in train")
    if r.get("estimate"):
        e = r["estimate"]
        t.add_row("estimate", f"{e['method']}, {e.get('epochs', '?')} epoch(s) of the train split (train: section of "
                  f"the config; pass yours with -c): ~{_duration(e['seconds'])}, "
                  f"peak ~{e['peak_memory_gb']} GB ({e['matmul_peak_gflops']} GFLOP/s measured, "
                  f"{e['assumed_efficiency']:.0%} assumed)")
    console.print(t)
    for line in r["errors"]["first"][:10]:
        console.print(f"[red]error[/red] {line}", soft_wrap=True)
    for w in r["warnings"]:
        console.print(f"[yellow]warning[/yellow] {w}", soft_wrap=True)
    for p in r["problems"]:
        console.print(f"[red]problem[/red] {p}", soft_wrap=True)
    console.print("[green]usable[/green]" if r["usable"] else "[red]not usable[/red]")


def _pairs(d: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items() if v)


def _duration(s: float) -> str:
    return f"{s:.2g} s" if s < 10 else f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.1f} h"

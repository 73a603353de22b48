"""How a system's answers behave, beside how right they are: does it stop, does it loop, is it the
right length, is it in the right language. A model that scores a few ROUGE points more but never
stops is not one a user wants to talk to.

    behaviour(answers, references, stopped)   # {"stop_rate", "loop_rate", "length_ratio", "language_match", ...}
    behaviour(answers, references, stopped, prompts)   # + "copy_rate"

* stop rate: answers that ended on a stop token (or stop string) before `max_new_tokens`;
* loop rate: answers in which some word n-gram (n = LOOP_N) occurs LOOP_TIMES times or more;
* length ratio: words in all answers over words in all references (1.0 = the references' length);
* language match: answers in the language of their reference (Vietnamese told apart from English by
  the letters only Vietnamese uses; text with neither is "other");
* copied (when the prompts are given): answer words inside a run of COPY_N words that also occurs in
  the prompt the system was given, over all answer words. A base model that pastes its instruction,
  a few-shot example or a retrieved passage scores ROUGE from text it did not write; this says so.
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter

LOOP_N = 4       # a repeated 4-word phrase ("học hỏi từ dữ liệu") is a loop; shorter ones recur in normal text
LOOP_TIMES = 3
COPY_N = 8       # an 8-word run shared with the prompt is copied; shorter ones are shared by chance (names, terms)
WORD = re.compile(r"[^\W_]+")
# Letters of the Vietnamese alphabet that English never uses (after NFC): đ and the vowels with tone
# marks or with the horn/breve/circumflex.
VIETNAMESE = set("đăâêôơưàáảãạằắẳẵặầấẩẫậèéẻẽẹềếểễệìíỉĩịòóỏõọồốổỗộờớởỡợùúủũụừứửữựỳýỷỹỵ")


def words(text: str) -> list[str]:
    return WORD.findall(unicodedata.normalize("NFC", text).lower())


def loops(text: str, n: int = LOOP_N, times: int = LOOP_TIMES) -> bool:
    """True when some n-word phrase occurs ``times`` times or more."""
    w = words(text)
    grams = Counter(tuple(w[i:i + n]) for i in range(len(w) - n + 1))
    return bool(grams) and max(grams.values()) >= times


def language(text: str) -> str:
    """'vi', 'en' or 'other': Vietnamese when at least 5% of the letters are ones only Vietnamese uses
    (a Vietnamese sentence has ~20-30%, an English one with a Vietnamese name well under 5%)."""
    letters = [c for c in unicodedata.normalize("NFC", text).lower() if c.isalpha()]
    if not letters:
        return "other"
    if sum(c in VIETNAMESE for c in letters) / len(letters) >= 0.05:
        return "vi"
    return "en" if sum("a" <= c <= "z" for c in letters) / len(letters) >= 0.9 else "other"


def copied(answer: str, prompt: str, n: int = COPY_N) -> int:
    """How many of the answer's words lie inside some n-word run that also occurs in ``prompt``."""
    a, p = words(answer), words(prompt)
    seen = {tuple(p[i:i + n]) for i in range(len(p) - n + 1)}
    inside = [False] * len(a)
    for i in range(len(a) - n + 1):
        if tuple(a[i:i + n]) in seen:
            inside[i:i + n] = [True] * n
    return sum(inside)


def length_ratio(answers: list[str], references: list[str]) -> float:
    """Words in all answers over words in all references (NaN when the references have none)."""
    ref_words = sum(len(words(r)) for r in references)
    return sum(len(words(a)) for a in answers) / ref_words if ref_words else float("nan")


def behaviour(answers: list[str], references: list[str], stopped: list[bool], prompts: list[str] | None = None) -> dict:
    """The behaviour measures (rates in 0..100) and the counts behind them; ``prompts`` (each answer's
    whole prompt as text) adds the copied share."""
    if not len(answers) == len(references) == len(stopped) == len(prompts if prompts is not None else answers):
        raise ValueError(f"{len(answers)} answers, {len(references)} references, {len(stopped)} stop flags"
                         + (f", {len(prompts)} prompts" if prompts is not None else ""))
    n = max(len(answers), 1)
    answer_words = sum(len(words(a)) for a in answers)
    same_lang = sum(language(a) == language(r) for a, r in zip(answers, references))
    out = {"stop_rate": 100 * sum(stopped) / n, "stopped": sum(stopped),
           "loop_rate": 100 * sum(loops(a) for a in answers) / n, "looped": sum(loops(a) for a in answers),
           "length_ratio": length_ratio(answers, references),
           "language_match": 100 * same_lang / n, "answers": len(answers)}
    if prompts is not None:
        out["copy_rate"] = 100 * sum(map(copied, answers, prompts)) / answer_words if answer_words else 0.0
    return out

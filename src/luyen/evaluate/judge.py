"""An optional LLM judge through any OpenAI-compatible endpoint (off unless `eval.judge.url` is set).

    judge = Judge.from_config(cfg.eval.judge)          # None when no url is configured
    scores = judge.score(questions, references, answers)  # JudgeScores: mean 1-5, per-item, unparsed
    replies = judge.ask(contents)                          # any prompts (evaluate.preference: pairwise A/B)

Each answer is graded against the reference on a 1-5 scale in one chat request at temperature 0, as
MT-Bench's reference-guided single grading does; the judge's reply must hold "Rating: N" (or a lone
digit). Replies with no rating are counted, never guessed. Requests run concurrently, a few at a
time, and a failing endpoint stops the evaluation with a one-line error instead of scoring nothing.
"""
from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from luyen.errors import LuyenError

PROMPT = """You are grading an assistant's answer against a reference answer.
Question: {question}
Reference answer: {reference}
Assistant's answer: {answer}

Judge correctness and helpfulness compared with the reference (the answer may be in Vietnamese).
Reply with a one-sentence reason, then "Rating: N" where N is an integer from 1 (wrong or useless)
to 5 (as correct and complete as the reference)."""

_RATING = re.compile(r"rating\s*[:=]?\s*\[?\[?\s*([1-5])\b", re.IGNORECASE)
_LONE = re.compile(r"^\s*([1-5])\s*(?:/\s*5)?\s*\.?\s*$")


def parse_rating(reply: str) -> int | None:
    """The 1-5 rating in a judge's reply ("... Rating: 4", "Rating: [[4]]", or just "4"), else None."""
    found = _RATING.findall(reply or "")
    if found:
        return int(found[-1])
    m = _LONE.match(reply or "")
    return int(m.group(1)) if m else None


@dataclass
class JudgeScores:
    ratings: list[int | None] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)

    @property
    def parsed(self) -> int:
        return sum(r is not None for r in self.ratings)

    @property
    def mean(self) -> float | None:
        got = [r for r in self.ratings if r is not None]
        return sum(got) / len(got) if got else None


class Judge:
    def __init__(self, url: str, model: str, api_key: str | None = None, timeout: float = 60.0,
                 concurrency: int = 4, max_tokens: int = 128):
        try:
            from openai import OpenAI
        except ImportError:
            raise LuyenError("the judge needs the openai client", field="eval.judge",
                             fix="pip install 'luyen[eval]'") from None
        self.url, self.model, self.concurrency, self.max_tokens = url, model, concurrency, max_tokens
        self.client = OpenAI(base_url=url, api_key=api_key or "none", timeout=timeout, max_retries=1)

    @classmethod
    def from_config(cls, jc) -> "Judge | None":
        if not jc.url:
            return None
        key = os.environ.get(jc.api_key_env) if jc.api_key_env else None
        return cls(jc.url, jc.model, key, timeout=jc.timeout, concurrency=jc.concurrency)

    def ask(self, contents: list[str]) -> list[str]:
        """The judge's replies to these user messages (a few requests at a time), in order."""
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(self._request, contents))

    def _request(self, content: str) -> str:
        import openai
        try:
            r = self.client.chat.completions.create(
                model=self.model, temperature=0, max_tokens=self.max_tokens,
                messages=[{"role": "user", "content": content}])
        except openai.APIStatusError as e:
            raise LuyenError(f"the judge endpoint answered HTTP {e.status_code}: {_short(e.message)}",
                             field="eval.judge.url", fix="check eval.judge.url, eval.judge.model and the API key") from None
        except openai.APIError as e:
            raise LuyenError(f"the judge endpoint {self.url} failed: {_short(str(e))}", field="eval.judge.url",
                             fix="start the judge server or correct eval.judge.url") from None
        return r.choices[0].message.content or ""

    def score(self, questions: list[str], references: list[str], answers: list[str]) -> JudgeScores:
        replies = self.ask([PROMPT.format(question=q, reference=r, answer=a)
                            for q, r, a in zip(questions, references, answers)])
        return JudgeScores([parse_rating(r) for r in replies], replies)


def _short(text: str, n: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[:n] + "..."

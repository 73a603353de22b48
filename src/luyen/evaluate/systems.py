"""Which systems answer the test set, with which prompts, and how one system is scored.

    test = TestSet.read(Path("runs/demo/data"), limit=20, shots=3)
    engines = load_engines("runs/demo/train", ["zero-shot", "few-shot"], cfg, console)
    for system in systems(engines, ["zero-shot", "few-shot"], rag=False):
        metrics, answers, per_example = score(system, test, cfg, judge=None, console=console)

Systems: the base model zero-shot, few-shot (k training examples as earlier chat turns) and with
retrieved passages, the best retrieved passage itself (no model at all: is a lookup as good?), and
the trained model (a `luyen train` run) plain and with passages; all prompted
through the chat template the trained model uses. For an adapter run the base is the same weights
with the adapter switched off, so no second model is loaded. Where transformers answers, each prompt
runs once for both the reference answer's perplexity and the system's own answer (`_prefilled`).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from luyen.config import RunConfig
from luyen.errors import LuyenError
from luyen.evaluate.metrics import classification_metrics, generation_metrics, perplexity

BASELINES = ("zero-shot", "few-shot", "rag")  # rag: the base model with retrieved passages (needs an index)
TUNED = "fine-tuned"
PASSAGE = "retrieved passage"  # no model: the best passage itself is the answer (with an index, generation tasks)
_LABEL = {"zero-shot": "zero-shot", "few-shot": "few-shot", "rag": "+ retrieval"}


@dataclass
class Engines:
    """The trained model's engine and the base's (the same one, adapter off, for an adapter run)."""
    tuned: object
    base: object
    adapter: bool  # the base is `tuned` with its adapter switched off
    trained_run: bool  # a `luyen train` run, so there is a base to compare with
    budget_from: str  # where max_new_tokens came from, for the report

    def base_weights(self):
        """A context in which `base` answers with the base weights."""
        return self.tuned.model.disable_adapter() if self.adapter else nullcontext()

    def runtime(self) -> str:
        """What generated the answers (eval.runtime as chosen): one runtime for every system, or each model's."""
        tuned, base = self.tuned.runtime, self.base.runtime
        short = tuned.split(" (")[0]  # "llama.cpp f16 (<file>; <agreement>)" -> "llama.cpp f16"
        if short != base.split(" (")[0]:
            return f"{tuned} for the fine-tuned model, {base} for the base"
        if short.startswith("llama.cpp"):
            return f"{short} (a GGUF of each model, checked against transformers fp32); perplexities by transformers"
        # the precision and kernels: under bf16 another kernel's rounding parts greedy answers at near-ties
        dtype = str(next(self.tuned.model.parameters()).dtype).removeprefix("torch.")
        return f"{short} in {dtype} ({self.tuned.kernels.split(';')[0].split(':')[0]})"


@dataclass
class System:
    name: str
    engine: object
    style: str  # zero-shot | few-shot | rag: how build_prompt builds its prompts
    weights: Callable = nullcontext  # a context in which `engine` answers with this system's weights


@dataclass
class TestSet:
    examples: list[tuple[list[dict], str]]  # (the messages before the answer, the reference answer)
    labelled: bool
    shots_chat: list[dict]  # the few-shot turns
    index: object | None  # the RAG index

    @classmethod
    def read(cls, data_dir: Path, limit: int, shots: int, index=None, few_shot: bool = True) -> "TestSet":
        """The test split of a `luyen data` run (its first ``limit`` examples; 0 = all), and ``shots``
        training examples as chat turns when ``few_shot``."""
        from luyen.data.formats import as_chat
        from luyen.data.stage import read_split
        from luyen.manifest import read_manifest
        read_manifest(data_dir, stage="data")
        test = [r for r in read_split(data_dir, "test") if _reference(r)]
        test = test[:limit] if limit else test
        if not test:
            raise LuyenError("the test split has no examples to evaluate", file=str(data_dir / "test.jsonl"),
                             fix="prepare the data with a non-zero data.split.test")
        labelled = all(r["kind"] == "labelled" for r in test)
        train = [r for r in read_split(data_dir, "train") if _reference(r)]
        shots_chat = [m for r in pick_shots(train, shots, labelled) for m in as_chat(r)[-2:]] if few_shot else []
        return cls([split_chat(as_chat(r)) for r in test], labelled, shots_chat, index)

    @property
    def refs(self) -> list[str]:
        return [a for _, a in self.examples]

    def prompts(self, style: str, cfg: RunConfig) -> list[list[dict]]:
        return [build_prompt(style, p, self.shots_chat, self.index, cfg) for p, _ in self.examples]


def _reference(record: dict) -> bool:
    """Whether a record's answer can be a reference (or a few-shot example): a chat-like record, but not
    an answer people rated bad (KTO feedback)."""
    from luyen.data.formats import as_chat
    return as_chat(record) is not None and not (record["kind"] == "feedback" and not record["label"])


def load_engines(model: str | Path, baselines: list[str], cfg: RunConfig, console) -> Engines:
    """The trained model in the precision chosen for this machine, and its base when baselines need it;
    each answering through eval.runtime (llama.cpp under auto on a CPU; perplexities stay transformers')."""
    from luyen.infer.engine import Engine, model_budget
    from luyen.manifest import read_manifest
    from luyen.models.trained import load_trained, model_folder
    from luyen.precision import choose
    chosen = choose()
    dtype = chosen.dtype
    tuned_model, tok = load_trained(model, dtype=dtype)
    engine = _answering(Engine(tuned_model, tok), str(model), cfg, console)
    console.print(f"eval: precision {chosen.describe()}; matmuls: {engine.kernels}", highlight=False)
    budget_from = ("set" if cfg.generate.max_new_tokens else
                   "the model's: its training answers' 95th percentile + 50%" if model_budget(tuned_model) else "default")
    adapter = hasattr(tuned_model, "disable_adapter")
    trained_run = (Path(model) / "manifest.json").is_file() or (model_folder(model) != Path(model))
    base = engine
    if adapter and trained_run and baselines and engine.runner is not None:  # the base's answers need a llama.cpp copy of their own
        import copy
        base_name = tuned_model.peft_config[tuned_model.active_adapter].base_model_name_or_path
        base = copy.copy(engine)  # the same weights for perplexity (adapter switched off), another runner
        # the plain base, loaded as `luyen chat <base>` loads it, so its GGUF's key (a hash of these weights)
        # is that file's: the adapter-wrapped copy's weights carry other names and would build a second one
        base_model, base_tok = load_trained(base_name, dtype=dtype)
        if base_tok.get_vocab() == tok.get_vocab():
            base = _answering(base, base_name, cfg, console, base_model)
        else:
            base.runner, base.runtime = None, "transformers (the run's vocabulary is not its base's)"
        del base_model
    elif not adapter and trained_run and baselines:
        from luyen.train.scratch import parse_scratch
        base_name = read_manifest(Path(model), stage="train")["config"]["model"]["name"]
        if parse_scratch(base_name):  # trained from nothing: no base to compare with, the model alone is scored
            console.print(f"eval: {base_name} has no base model; the baselines are this model's own prompts",
                          highlight=False)
            return Engines(engine, engine, adapter, False, budget_from)
        base = _answering(Engine(load_trained(base_name, dtype=dtype)[0], tok, engine.template), base_name, cfg, console)
    return Engines(engine, base, adapter, trained_run, budget_from)


def _answering(engine, name: str, cfg: RunConfig, console, model=None):
    """``engine`` with eval.runtime under it for its answers (luyen.infer.gguf: a llama.cpp copy of ``name``
    built once and checked, or transformers with the reason); says which."""
    if cfg.eval.runtime != "transformers":
        from luyen.infer import gguf
        with console.status(f"eval: a llama.cpp copy of {name}", spinner="dots") as status:
            engine.runner, engine.runtime = gguf.runner_for(name, model if model is not None else engine.model, engine.tok,
                                                            cfg.eval.runtime, say=status.update)
        console.print(f"eval: {name} answers through {engine.runtime}", highlight=False, markup=False)
    return engine


def systems(engines: Engines, baselines: list[str], rag: bool) -> list[System]:
    """Every system to score, baselines first: a trained run's base and tuned model, else the model alone."""
    if not engines.trained_run:
        return [System(f"model {_LABEL[b]}", engines.tuned, b) for b in baselines]
    out = [System(f"base {_LABEL[b]}", engines.base, b, engines.base_weights) for b in baselines]
    out.append(System(TUNED, engines.tuned, "zero-shot"))
    if rag:
        out.append(System(f"{TUNED} + retrieval", engines.tuned, "rag"))
    return out


def build_prompt(style: str, prompt: list[dict], shots_chat: list[dict], index, cfg: RunConfig) -> list[dict]:
    """The messages one system is given for one test prompt."""
    if style == "few-shot":  # the item's system prompt stays first, where every other system has it
        system = [m for m in prompt[:1] if m["role"] == "system"]
        return system + shots_chat + prompt[len(system):]
    if style == "rag":  # the grounding chat, generate and serve send too (k from the index)
        from luyen.rag import ground
        return ground(index, prompt, cfg.rag.template)[0]
    return prompt


def pick_shots(train: list[dict], k: int, labelled: bool) -> list[dict]:
    """The first ``k`` training examples; for labelled data, label-balanced (one of each label in turn),
    so the prompt does not teach the majority label."""
    if not labelled:
        return train[:k]
    by_label: dict[str, list[dict]] = {}
    for r in train:
        by_label.setdefault(r["label"], []).append(r)
    picked, depth = [], 0
    while len(picked) < k and any(depth < len(v) for v in by_label.values()):
        picked += [v[depth] for v in by_label.values() if depth < len(v)][:k - len(picked)]
        depth += 1
    return picked


def split_chat(chat: list[dict]) -> tuple[list[dict], str]:
    """The messages before the last assistant turn, and that turn's text (the reference)."""
    last = max(i for i, m in enumerate(chat) if m["role"] == "assistant")
    return chat[:last], chat[last]["content"]


def score(system: System, test: TestSet, cfg: RunConfig, judge, console) -> tuple[dict, list[str], dict]:
    """One system on the test set: its metrics (rounded; the judge's rating too when there is a judge),
    its answers, and its per-example scores for the bootstrap."""
    t0 = time.perf_counter()
    n = len(test.examples)
    with system.weights(), console.status(f"eval: {system.name}: perplexity and {n} answers", spinner="dots"):
        m, preds, per = _measure(system, test.prompts(system.style, cfg), test.refs, cfg, test.labelled)
    if judge is not None:
        m.update(judged(judge, cfg, test.examples, preds, console, system.name))
    m["wall_seconds"] = time.perf_counter() - t0
    console.print(f"eval: {system.name} on {n} test examples in {m['wall_seconds']:.0f} s", highlight=False)
    return {k: round(v, 4) for k, v in m.items()}, preds, per


def _measure(system: System, prompts: list[list[dict]], refs: list[str], cfg: RunConfig, labelled: bool):
    """Metrics, answers, and per-example scores ({"primary": 0..100 per example, "nll": per-token
    answer NLL per example})."""
    from luyen.evaluate.behaviour import behaviour
    from luyen.evaluate.metrics import label_matches, rouge_l_per_example
    eng, whole = system.engine, system.style == "zero-shot"
    together = _prefilled(eng, prompts, refs, cfg, whole)
    scores, outs, answering = together or (answer_nll(eng, prompts, refs, whole=whole), None, 0.0)
    if outs is None:  # answered apart from the scoring: llama.cpp, or a prompt the scoring pass cannot share
        started = time.perf_counter()
        outs = eng.chat(prompts, cfg.generate)
        answering = time.perf_counter() - started
    ppl, nll = _perplexities(scores, whole)
    preds = [o.text.strip() for o in outs]
    m = classification_metrics(preds, refs) if labelled else generation_metrics(preds, refs)
    m.update(ppl)
    said = None if labelled else ["\n".join(msg["content"] for msg in p) for p in prompts]  # what each was given
    m.update(behaviour(preds, refs, [o.finish_reason == "stop" for o in outs], said))
    m["mean_answer_words"] = mean_words(preds)
    m["seconds_per_example"] = answering / len(outs)  # answering only: not the scoring of the reference answers
    primary = [100 * x for x in label_matches(preds, refs)] if labelled else rouge_l_per_example(preds, refs)
    return m, preds, {"primary": primary, "nll": [n / k if k else 0.0 for n, k in nll]}


def mean_words(answers: list[str]) -> float:
    """The table's words/answer: whitespace-separated words per answer."""
    return sum(len(a.split()) for a in answers) / len(answers)


def with_passage(scored: dict, test: TestSet, index, cfg: RunConfig) -> dict:
    """``scored`` with the retrieval-only baseline put after the base systems: each question answered by
    the text of the best passage the retrieval systems are given (the same `rag.ground` search), scored
    as an answer. It has no perplexity, and no stop, loop or copy rates: it generates nothing."""
    from luyen.evaluate.behaviour import length_ratio
    from luyen.evaluate.metrics import rouge_l_per_example
    from luyen.rag import ground
    started = time.perf_counter()
    found = [ground(index, prompt, cfg.rag.template)[1] for prompt in test.prompts("zero-shot", cfg)]
    preds = [hits[0].text.strip() if hits else "" for hits in found]
    seconds = time.perf_counter() - started
    m = generation_metrics(preds, test.refs)
    m.update(length_ratio=length_ratio(preds, test.refs), mean_answer_words=mean_words(preds),
             seconds_per_example=seconds / len(preds))
    row = ({k: round(v, 4) for k, v in m.items()}, preds, {"primary": rouge_l_per_example(preds, test.refs), "nll": None})
    names = list(scored)
    at = next((i for i, name in enumerate(names) if name.startswith(TUNED)), len(names))
    return {**{n: scored[n] for n in names[:at]}, PASSAGE: row, **{n: scored[n] for n in names[at:]}}


def judged(judge, cfg: RunConfig, examples, preds: list[str], console, name: str) -> dict:
    """The judge model's mean 1-5 rating of the first eval.judge.max_examples answers."""
    n = min(len(examples), cfg.eval.judge.max_examples)
    with console.status(f"eval: {name}: judge {cfg.eval.judge.model} grading {n} answers"):
        scores = judge.score([p[-1]["content"] for p, _ in examples[:n]], [a for _, a in examples[:n]], preds[:n])
    out = {"judge_unparsed": n - scores.parsed}
    if scores.mean is not None:
        out["judge"] = scores.mean
    return out


def answer_nll(engine, prompts: list[list[dict]], answers: list[str], whole: bool = False,
               batch: int = 8) -> list:
    """Per example: the summed negative log-likelihood of the reference answer (the final assistant
    turn and its end marker, nothing else: not few-shot answers, not earlier turns) and its token
    count. ``whole``: per example ((nll, count) of every token of the formatted example, (nll, count)
    of its answer), from one forward pass."""
    from luyen.evaluate.likelihood import example_nll
    examples, within = _scored(engine, prompts, answers, whole)
    return example_nll(engine.model, examples, engine.pad_id, batch=batch, within=within)


def _scored(engine, prompts: list[list[dict]], answers: list[str], whole: bool) -> tuple[list, list | None]:
    """What `answer_nll` scores, per example: the formatted example with the reference answer's tokens as
    targets (every token's with ``whole``), and with ``whole`` which of those targets are the answer's."""
    import numpy as np

    from luyen.data.template import encode_chat
    from luyen.train.batches import IGNORE, shifted
    encoded = [encode_chat(engine.tok, engine.template, p + [{"role": "assistant", "content": a}], targets="last")
               for p, a in zip(prompts, answers)]
    if not whole:
        return [shifted(ids, mask) for ids, mask in encoded], None
    examples = [shifted(ids, [True] * len(ids)) for ids, _ in encoded]
    return examples, [np.asarray(shifted(ids, mask).targets != IGNORE) for ids, mask in encoded]


def _prefilled(engine, prompts: list[list[dict]], answers: list[str], cfg: RunConfig, whole: bool):
    """(`answer_nll`'s scores, the answers, the seconds spent answering) with each prompt run once for both
    (likelihood.prefilled_nll: the reference answer is scored after the prompt, then the cache is cut back
    to the prompt and the answer generated from it), a batch of generate.batch_size prompts at a time.
    When llama.cpp answers (eval.runtime) the scores are still these, in these batches, so a perplexity
    does not depend on the runtime (under bf16 another batching rounds differently), and the answers are
    None: the caller asks llama.cpp. None where scoring takes another way: a
    prompt-learning adapter (its virtual tokens), or a chat template whose prompt is not how its scored
    example begins."""
    from luyen.evaluate.likelihood import prefilled_nll
    from luyen.infer.engine import prompt_learning
    if prompt_learning(engine.model):
        return None
    examples, within = _scored(engine, prompts, answers, whole)
    starts = [engine.encode(engine.render(p)) for p in prompts]
    if any(list(e.ids[:len(s)]) != s for e, s in zip(examples, starts)):
        return None
    cfg_gen, size = engine.settings(cfg.generate), cfg.generate.batch_size
    here = engine.runner is None  # transformers answers from the prefilled cache; else llama.cpp answers after
    scores, outs, answering = [], [], 0.0
    for i in range(0, len(examples), size):
        part = slice(i, i + size)
        started = time.perf_counter()
        nll, ids, mask, cache = prefilled_nll(engine.model, examples[part], [len(s) for s in starts[part]],
                                              engine.pad_id, within[part] if within else None,
                                              keep_cache=here)
        scores += nll
        if here:  # answering is charged the prompts' share of the positions that pass ran over, not the references'
            share = sum(map(len, starts[part])) / sum(len(e.ids) for e in examples[part])
            prompt = (time.perf_counter() - started) * share
            started = time.perf_counter()
            outs += engine.answer(ids, mask, cfg_gen, cache, spent=prompt)
            answering += prompt + time.perf_counter() - started
    return scores, outs if here else None, answering


def _perplexities(scores: list, whole: bool) -> tuple[dict, list]:
    """Token-weighted perplexity of the reference answers (and of whole formatted examples, scored in the
    same forward pass), and the per-example answer NLL behind it, from `answer_nll`'s scores."""
    per = [answer for _, answer in scores] if whole else scores
    out = {"answer_perplexity": perplexity(sum(n for n, _ in per), sum(k for _, k in per)),
           "answer_tokens": sum(k for _, k in per)}
    if whole:
        seq = [every for every, _ in scores]
        out["sequence_perplexity"] = perplexity(sum(n for n, _ in seq), sum(k for _, k in seq))
    return out, per

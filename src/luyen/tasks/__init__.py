"""What luyen trains: one `Task` record each, chosen by ``train.task`` (``auto``: from the data and the model).

| task          | learns from (record kind)        | model (transformers)            | loss                       | predicts              |
|---------------|----------------------------------|---------------------------------|----------------------------|-----------------------|
| causal        | chat, text, pair, labelled, ...  | AutoModelForCausalLM (decoder)  | next token on the answer   | an answer (generate)  |
| seq2seq       | pair (document -> summary)       | AutoModelForSeq2SeqLM (T5/BART) | next token on the target   | a summary (generate)  |
| classification| labelled                         | AutoModelForSequenceClassification | cross-entropy (weighted) | label + probabilities |
| extractive_qa | extractive (SQuAD v1/v2)         | AutoModelForQuestionAnswering   | start/end cross-entropy    | span + score          |
| embedding     | (query, passage) pairs           | a sentence encoder              | in-batch contrastive       | a vector              |

``auto`` reads the architecture from the model's config and the kind from the prepared data:
an encoder-decoder learns pairs (seq2seq); an encoder (BERT, RoBERTa, XLM-R, MiniLM) learns labelled
text (classification) or SQuAD data (extractive_qa); a decoder learns everything as chat (causal),
and classification too when train.task says so. A pairing that cannot work is a one-line error that
says which models fit. The head tasks share the training loop, checkpoints and run contract with
causal training (tasks.train); their own parts (encoding, loss, prediction, metrics) live in one
module each (tasks.classify, tasks.seq2seq, tasks.extract).

    task = resolve(cfg, data_dir)          # a Task
    manifest = task.train(cfg, data_dir, out_dir, resume=False, overwrite=False, console=None)
"""
from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path

from luyen.errors import LuyenError

SPEC_FILE = "luyen_task.json"  # in a head model's folder: its task, labels, prefix, lengths, calibration
# encoder families (model_type) that transformers also lists as causal LMs (BertLMHeadModel ...)
ENCODER_TYPES = {"bert", "roberta", "xlm-roberta", "distilbert", "electra", "deberta", "deberta-v2", "albert",
                 "camembert", "mpnet", "modernbert", "xlm", "ernie", "rembert", "megatron-bert"}


@dataclass(frozen=True)
class Task:
    name: str
    kinds: tuple[str, ...]   # record kinds it learns from (empty: any kind a chat can be made of)
    auto_class: str | None   # the transformers Auto class of its model (None: its own loader)
    peft_task: str | None    # peft's task_type for LoRA (it keeps the head trainable: modules_to_save)
    fits: str                # the architectures that fit, in words, for errors
    entry: str               # "module:function" that trains it: (cfg, data_dir, out_dir, **kw) -> Manifest
    module: str | None = None  # a head's own parts: encode, objective, load, predict, metrics

    def impl(self):
        return importlib.import_module(self.module)

    def train(self, cfg, data_dir, out_dir, **kw):
        module, function = self.entry.split(":")
        extra = {"task": self} if self.head else {}
        return getattr(importlib.import_module(module), function)(cfg, data_dir, out_dir, **extra, **kw)

    @property
    def head(self) -> bool:
        """Trained and served by tasks.train / tasks.predictor (not a chat model, not a retriever)."""
        return self.auto_class is not None


HEAD = "luyen.tasks.train:run"
TASKS = {t.name: t for t in (
    Task("causal", (), None, None, "a decoder (gemma3-270m, Llama, Qwen, Mistral, ...)", "luyen.train.stage:train_causal"),
    Task("seq2seq", ("pair",), "AutoModelForSeq2SeqLM", "SEQ_2_SEQ_LM",
         "an encoder-decoder (t5-small, google/mt5-small, facebook/bart-base, VietAI/vit5-base)", HEAD, "luyen.tasks.seq2seq"),
    Task("classification", ("labelled",), "AutoModelForSequenceClassification", "SEQ_CLS",
         "an encoder (all-MiniLM-L6-v2, vinai/phobert-base, xlm-roberta-base) or a decoder with a "
         "classification head (gemma3-270m)", HEAD, "luyen.tasks.classify"),
    Task("extractive_qa", ("extractive",), "AutoModelForQuestionAnswering", "QUESTION_ANS",
         "an encoder (all-MiniLM-L6-v2, xlm-roberta-base, bert-base-multilingual-cased)", HEAD, "luyen.tasks.extract"),
    Task("embedding", (), None, None, "a sentence encoder or a decoder", "luyen.train.embedding:run"),
)}


def architecture(config) -> str:
    """'encoder-decoder', 'encoder' or 'decoder', from a transformers config."""
    if getattr(config, "is_encoder_decoder", False):
        return "encoder-decoder"
    if getattr(config, "model_type", None) in ENCODER_TYPES:
        return "encoder"
    archs = getattr(config, "architectures", None) or []
    if archs and all(a.endswith(("ForMaskedLM", "Model", "ForSequenceClassification", "ForQuestionAnswering"))
                     and "CausalLM" not in a for a in archs) and not getattr(config, "is_decoder", False):
        mapping = _mapping("MODEL_FOR_CAUSAL_LM_MAPPING_NAMES")
        if config.model_type not in mapping:
            return "encoder"
    return "decoder"


def _mapping(name: str) -> dict:
    from transformers.models.auto import modeling_auto
    return getattr(modeling_auto, name)


def supports(task: Task, config) -> bool:
    """Whether transformers has `task`'s head for this model type."""
    mapping = {"AutoModelForSeq2SeqLM": "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES",
               "AutoModelForSequenceClassification": "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES",
               "AutoModelForQuestionAnswering": "MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES"}[task.auto_class]
    if task.name == "extractive_qa" and architecture(config) == "encoder-decoder":
        return False
    return getattr(config, "model_type", None) in _mapping(mapping)


def data_kinds(data_dir: Path, limit: int = 5000) -> set[str]:
    """The record kinds of a prepared data folder's training split (its first `limit` records)."""
    kinds, path = set(), Path(data_dir) / "train.jsonl"
    if not path.is_file():
        return kinds
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= limit:
                break
            kinds.add(json.loads(line)["kind"])
    return kinds


def model_config(cfg):
    """The transformers config of cfg.model.name (None for a new model, model.name scratch:..., and for a
    LoRA chat run, whose adapter folder has no model config: both are decoders)."""
    from transformers import AutoConfig

    from luyen.models.trained import is_adapter, source_folder
    from luyen.train.scratch import parse_scratch
    if parse_scratch(cfg.model.name) is not None or is_adapter(cfg.model.name):
        return None  # a new model, or a chat run's adapter (DPO after SFT): a decoder
    mc = cfg.model
    folder = source_folder(mc.name, cache_dir=mc.cache_dir, trust_remote_code=mc.trust_remote_code)
    return AutoConfig.from_pretrained(folder, trust_remote_code=mc.trust_remote_code)


def resolve(cfg, data_dir: str | Path | None) -> Task:
    """The task cfg.train.task names, or for ``auto`` the one the data and the model call for; a
    LuyenError when the data, the model and the task do not fit together."""
    name = cfg.train.task
    if name in ("embedding", "causal"):
        return TASKS[name]
    config = model_config(cfg)
    arch = architecture(config) if config is not None else "decoder"
    kinds = data_kinds(Path(data_dir)) if data_dir else set()
    if name == "auto":
        name = _auto(arch, kinds, cfg.model.name)
        if name == "causal":
            return TASKS[name]
    task = TASKS[name]
    if config is None or not supports(task, config):
        raise LuyenError(f"train.task={task.name} needs {task.fits}; {cfg.model.name} ({arch}) has no such head",
                         field="model.name", fix=f"use {task.fits}")
    wrong = sorted(kinds - set(task.kinds))
    if wrong:
        raise LuyenError(f"train.task={task.name} learns from {'/'.join(task.kinds)} records, but the data holds "
                         f"{', '.join(wrong)} records", field="train.task",
                         fix=f"prepare {_DATA[task.name]} data, or choose the task that fits the data")
    return task


_DATA = {"seq2seq": "document/summary (pair)", "classification": "text/label", "extractive_qa": "SQuAD-style"}


def _auto(arch: str, kinds: set[str], model: str) -> str:
    if arch == "decoder":
        return "causal"
    wanted = {"encoder-decoder": {"pair": "seq2seq"},
              "encoder": {"labelled": "classification", "extractive": "extractive_qa"}}[arch]
    found = {wanted[k] for k in kinds if k in wanted}
    if len(found) == 1 and kinds <= set(wanted):
        return found.pop()
    can = " or ".join(f"{_DATA[t]} records ({t})" for t in wanted.values())
    raise LuyenError(f"{model} is an {arch} model: it learns {can}, but the data holds "
                     f"{', '.join(sorted(kinds)) or 'nothing'}", field="model.name",
                     fix="chat, instruction and preference data train a decoder (model.name=gemma3-270m); "
                     "or set train.task and prepare data of its kind")


def read_spec(folder: Path) -> dict | None:
    """A head model folder's task spec (luyen_task.json), None for any other folder."""
    path = Path(folder) / SPEC_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

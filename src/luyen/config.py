"""One configuration tree for every stage: YAML file + dotted ``key=value`` overrides.

    cfg = load_config("configs/data.yaml", ["data.split.seed=7", "train.method=lora"])

Unknown keys are an error naming the key and the closest valid one. A field's description is its
documentation: ``luyen config show`` prints the tree with them.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from luyen.errors import LuyenError

Action = Literal["redact", "drop", "keep"]
Runtime = Literal["auto", "transformers", "llama.cpp-f16", "llama.cpp-f16_q8emb", "llama.cpp-q8_0"]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class CleanConfig(Section):
    nfc: bool = Field(True, description="Unicode NFC, so composed and decomposed Vietnamese compare equal.")
    vietnamese_tone: Literal["keep", "new", "old"] = Field("keep", description="Tone-mark placement: keep as written, 'new' (hòa, thủy) or 'old' (hoà, thuỷ).")
    strip_control: bool = Field(True, description="Remove control and zero-width characters.")
    fold_whitespace: bool = Field(True, description="Collapse runs of spaces; keep single newlines.")


class DedupConfig(Section):
    exact: bool = Field(True, description="Remove records whose text is identical after normalisation.")
    near: bool = Field(True, description="Remove near-duplicates (MinHash LSH over word bigrams).")
    threshold: float = Field(0.8, gt=0, lt=1, description="Estimated Jaccard similarity that counts as near-duplicate.")
    num_perm: int = Field(64, ge=16, le=256, description="MinHash permutations (more = more precise, slower).")


class ScrubConfig(Section):
    secrets: Action = Field("redact", description="API keys, private keys, JWTs, URL passwords: redact with a typed placeholder, drop the record, or keep.")
    pii: Action = Field("redact", description="Emails, phone numbers, card numbers (Luhn), Vietnamese ID numbers: redact, drop or keep.")


class SplitConfig(Section):
    train: float = Field(0.8, ge=0, le=1, description="Share of records for training.")
    val: float = Field(0.1, ge=0, le=1, description="Share for validation.")
    test: float = Field(0.1, ge=0, le=1, description="Share for the final test.")
    stratify: bool = Field(True, description="Keep label proportions in every split (labelled data only).")

    @model_validator(mode="after")
    def _sums_to_one(self):
        if abs(self.train + self.val + self.test - 1.0) > 1e-6:
            raise ValueError(f"data.split.train + val + test must be 1.0, got {self.train + self.val + self.test:g}")
        return self


class DataConfig(Section):
    files: list[str] = Field(default_factory=list, description="Data files, globs or folders that `luyen data` and `luyen run` read (positional words of `luyen data` add to them).")
    val_files: list[str] = Field(default_factory=list, description="Files whose records all go to validation (OpenAI's validation_file); the others split into train and test in data.split's proportions.")
    format: Literal["auto", "qa", "alpaca", "io", "openai", "sharegpt", "text", "summary", "squad", "labelled", "preference", "openai_dpo", "hh", "kto"] = Field(
        "auto", description="Input format; 'auto' detects it per record and reports any mix. Preference data: preference (TRL prompt/chosen/rejected, strings or messages), openai_dpo (input/preferred_output/non_preferred_output), hh (chosen/rejected whole transcripts), kto (prompt/completion/label).")
    columns: dict[str, str] = Field(default_factory=dict, description="Map your column names to standard ones, e.g. {cau_hoi: question, tra_loi: answer}.")
    on_error: Literal["fail", "skip"] = Field("fail", description="'fail' stops at the first bad record; 'skip' drops bad records and counts them.")
    max_record_bytes: int = Field(1_000_000, gt=0, description="Records larger than this are errors (a sign of a broken file).")
    max_length: int = Field(1024, gt=0, description="Token budget per example; longer chat/pair records are dropped (text is chunked at training).")
    min_length: int = Field(1, ge=0, description="Records with fewer tokens are dropped.")
    clean: CleanConfig = Field(default_factory=CleanConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    scrub: ScrubConfig = Field(default_factory=ScrubConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)


class ModelConfig(Section):
    name: str = Field("gemma3-270m", description="The model a command works with (--model/-m everywhere): the base to train from, the model to evaluate, export, chat with or serve (a `luyen train` run folder included). "
                      "Preset name, hub id (org/name), local folder, or .gguf file; for `luyen train` also "
                      "scratch:<arch>-<size> (arch causal or masked, size tiny, small or base; e.g. scratch:causal-tiny): "
                      "a new model on a tokenizer trained on your data (train.pretrain.*), trained with train.method=full.")
    tokenizer: str | None = Field(None, description="The tokenizer `luyen data` measures lengths with when it is not the model's own; required for a scratch: model, whose tokenizer is only trained at train time.")
    chat_template: str | None = Field(None, description="Jinja chat template (text or path); default: the tokenizer's own, else luyen's documented default.")
    trust_remote_code: bool = Field(False, description="Run model code shipped with a hub model. Off unless you trust it.")
    cache_dir: str | None = Field(None, description="Where converted models live (default ~/.cache/luyen).")


class LoraConfig(Section):
    r: int = Field(8, ge=1, description="LoRA rank.")
    alpha: int = Field(32, ge=1, description="LoRA alpha (scale = alpha / r, or alpha / sqrt(r) with rslora).")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA input.")
    target_modules: str | list[str] = Field("all-linear", description="Module names to adapt (e.g. [q_proj, v_proj]) or 'all-linear' (every linear layer but the output).")
    rslora: bool = Field(False, description="Rank-stabilised LoRA scaling (alpha / sqrt(r)).")
    dora: bool = Field(False, description="Weight-decomposed LoRA (DoRA): slower, sometimes better at low rank.")
    plus_ratio: float = Field(1.0, ge=1, description="LoRA+ (Hayou et al. 2024): the B matrices learn at train.lr x this (the paper suggests 16 with a lower lr); 1 = plain LoRA.")
    train_tokens: Literal["auto", "none"] | list[str] = Field(
        "auto", description="Embedding rows trained beside the adapters (peft trainable tokens): 'auto' = the chat template's special tokens the base model never learned (Gemma base's <end_of_turn>: without it the model cannot learn to stop), 'none', or a list of tokens.")


class PretrainConfig(Section):
    """A new model (model.name: scratch:<arch>-<size>); its architecture and size are in the name."""
    vocab_size: int = Field(8000, ge=300, description="BPE vocabulary size of the tokenizer trained on your text (model.name: scratch:...).")
    mlm_probability: float = Field(0.15, gt=0, lt=1, description="Share of tokens masked (model.name: scratch:masked-...).")


class EmbeddingConfig(Section):
    """train.task=embedding: a sentence encoder trained on (query, passage) pairs over rag.documents."""
    pooling: Literal["auto", "mean", "lasttoken", "cls"] = Field(
        "auto", description="How token states become one vector: a sentence-transformers model keeps its own; a decoder (gemma3-270m) pools its last token (trained on the same airline pairs: held-out hybrid MRR 0.87 against 0.84 for bidirectional mean pooling, dense 0.72 against 0.67).")
    bidirectional: bool = Field(False, description="A decoder attends both ways when it encodes (EmbeddingGemma's recipe, with mean pooling); false keeps its causal mask, as last-token pooling wants (the last token has read the whole text).")
    query_prompt: str = Field("query: ", description="Text put before every query (training and search alike).")
    passage_prompt: str = Field("passage: ", description="Text put before every passage (training and indexing alike).")
    max_length: int = Field(256, ge=16, description="Longest query or passage in encoder tokens (the encoder's window).")
    temperature: float = Field(0.05, gt=0, le=1, description="Softmax temperature of the contrastive loss over in-batch and mined negatives.")
    hard_negatives: int = Field(1, ge=0, le=8, description="BM25-mined negatives per pair, from other documents than the pair's.")
    generate: int = Field(1, ge=0, le=8, description="Questions the writer model writes per passage; 0 = headings, first sentences and train.data only.")
    translate: bool = Field(True, description="Add English translations of the Vietnamese training queries (written by the writer model), so English questions find Vietnamese passages.")
    pairs: str | None = Field(None, description="Train on this pairs.jsonl (an earlier retriever run's, perhaps edited) instead of writing new pairs; its train/val split is kept.")
    fold: bool = Field(True, description="Add each Vietnamese training query typed without tone marks, as many phone users type.")
    writer: str = Field("gemma3-270m", description="The model that writes and translates training questions.")
    queries: list[str] = Field(default_factory=list, description="The team's labelled queries to train on (.jsonl {query, relevant: [document names]}, as `luyen rag eval` reads); never the eval files.")
    eval_queries: list[str] = Field(default_factory=list, description="Query files (.jsonl, `query` field) the training pairs must not leak into: near-duplicates are dropped (written) or refused (train.data, queries).")
    val: float = Field(0.1, ge=0, lt=0.5, description="Share of training queries held out to measure recall while training.")


class HeadConfig(Section):
    """train.task=seq2seq|classification|extractive_qa: a model with its own head, not a chat model."""
    class_weights: Literal["none", "balanced"] = Field("none", description="classification: 'balanced' weights each class's loss by n / (classes x its count), for imbalanced labels.")
    calibrate: bool = Field(True, description="classification: fit a temperature on the validation split after training so probabilities match accuracy (reported as ECE before/after).")
    source_prefix: str | None = Field(None, description="seq2seq: text put before every source; unset = what the model expects (T5/mT5: 'summarize: ', others none).")
    target_length: int = Field(256, ge=8, description="seq2seq: longest target (summary) in tokens; longer ones are cut.")
    doc_stride: int = Field(128, ge=0, description="extractive_qa: tokens shared by consecutive windows of a context longer than max_length.")
    max_answer_tokens: int = Field(30, ge=1, description="extractive_qa: longest span predicted, in tokens.")


class PreferenceConfig(Section):
    """train.method=dpo|kto|orpo|simpo: learning from answers people preferred (pairs) or rated good/bad."""
    over: Literal["lora", "qlora", "full"] = Field("lora", description="What trains: LoRA, LoRA over a 4-bit base, or every weight (the reference's log-probs then come from the weights before training).")
    beta: float = Field(0.1, gt=0, description="DPO/IPO/KTO: how far the policy may move from the reference; ORPO: weight of the odds-ratio term; SimPO: reward scale (its paper uses 2-2.5).")
    loss_type: Literal["sigmoid", "ipo", "hinge"] = Field("sigmoid", description="dpo: sigmoid (DPO), ipo or hinge (SLiC).")
    label_smoothing: float = Field(0.0, ge=0, lt=0.5, description="dpo/simpo: assumed share of flipped labels (cDPO).")
    sft_weight: float = Field(0.0, ge=0, description="dpo: weight of an NLL term on the chosen answer (RPO); 0 = off.")
    desirable_weight: float = Field(1.0, gt=0, description="kto: weight of thumbs-up examples.")
    undesirable_weight: float = Field(1.0, gt=0, description="kto: weight of thumbs-down examples.")
    simpo_gamma: float = Field(0.5, ge=0, description="simpo: target reward margin (gamma).")


class TrainConfig(Section):
    task: Literal["auto", "causal", "seq2seq", "classification", "extractive_qa", "embedding"] = Field("auto", description="auto: from the model and the data (a decoder learns any data as chat: causal; an encoder-decoder learns document/summary pairs: seq2seq; an encoder learns labelled text: classification, or SQuAD data: extractive_qa); embedding: a sentence encoder learns to retrieve rag.documents.")
    data: str | None = Field(None, description="Prepared data folder (the --out of `luyen data prepare`); or pass --data.")
    resume: bool = Field(False, description="Continue the unfinished run in the output folder from its last checkpoint (`luyen run` does this by itself).")
    method: Literal["full", "lora", "qlora", "prompt", "ptuning", "freeze", "dpo", "kto", "orpo", "simpo"] = Field("lora", description="Fine-tuning method; see `luyen train --methods` for what each trains. A new model (model.name: scratch:causal-tiny) and continued pretraining on raw text use full. dpo, orpo and simpo learn from preference pairs, kto from thumbs up/down, each over train.preference.over (lora, qlora or full).")
    epochs: float = Field(3, gt=0, description="Passes over the training split (ignored when max_steps > 0).")
    max_steps: int = Field(0, ge=0, description="Optimiser steps to run; 0 = decided by epochs.")
    batch_size: int = Field(4, ge=1, description="Examples per micro-batch (per process); activation memory grows with it.")
    grad_accum: int = Field(2, ge=1, description="Micro-batches per optimiser step (exact: same update as one bigger batch).")
    lr: float | None = Field(None, gt=0, description="Peak learning rate; default: the method's (lora 2e-4, full 2e-5, ...).")
    scheduler: Literal["linear", "cosine", "constant"] = Field("cosine", description="Learning-rate schedule after warmup.")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Share of steps spent warming the learning rate up from 0.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay (not applied to biases and norms).")
    max_grad_norm: float = Field(1.0, ge=0, description="Clip the gradient norm to this; 0 = no clipping.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Compute dtype; auto = float32 on CPU, bfloat16 on GPUs that support it.")
    gradient_checkpointing: bool = Field(False, description="Recompute activations in backward: less memory, ~30% slower.")
    max_length: int | None = Field(None, gt=0, description="Longest example in tokens; default data.max_length. Longer examples are refused.")
    packing: bool = Field(False, description="Pack several examples into one row (each attends only to itself); default: length buckets.")
    shuffle: bool = Field(True, description="Shuffle the order of batches every epoch (seeded).")
    eval_steps: int = Field(0, ge=0, description="Evaluate on the validation split every N steps; 0 = at the end of each epoch.")
    early_stopping: int = Field(0, ge=0, description="Stop after N evaluations without a better validation loss; 0 = off.")
    save_steps: int = Field(0, ge=0, description="Checkpoint every N steps; 0 = only at evaluations and the end.")
    save_total_limit: int = Field(2, ge=1, description="Keep the last K checkpoints.")
    logging_steps: int = Field(1, ge=1, description="Write metrics every N steps.")
    threads: int = Field(0, ge=0, description="CPU threads for torch; 0 = every core.")
    logit_chunk: int = Field(512, ge=16, description="Positions whose output logits exist at once (memory vs speed).")
    train_on_prompt: bool = Field(False, description="Learn every token of a training chat up to its last answer's end (questions, system text and turn headers too), not only the answers; LLaMA-Factory's train_on_prompt, Axolotl's train_on_inputs. Validation still scores the answers alone. Supervised chat training only.")
    neftune_alpha: float = Field(0.0, ge=0, description="NEFTune (Jain et al. 2023; TRL's neftune_noise_alpha, 5 is usual): uniform noise of size alpha / sqrt(length x width) on the input embeddings in training steps, never in validation; 0 = off. Supervised and head training only.")
    lora: LoraConfig = Field(default_factory=LoraConfig)
    num_virtual_tokens: int = Field(20, ge=1, description="Soft prompt length (prompt and ptuning).")
    freeze_layers_but: int = Field(2, ge=1, description="freeze: train only the last N transformer layers (and the final norm).")
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)
    embedding: EmbeddingConfig = Field(default_factory=EmbeddingConfig)
    preference: PreferenceConfig = Field(default_factory=PreferenceConfig)
    head: HeadConfig = Field(default_factory=HeadConfig)

    @model_validator(mode="before")
    @classmethod
    def _pretrain_is_a_model_source(cls, data):
        if isinstance(data, dict) and data.get("method") == "pretrain":
            raise LuyenError("train.method=pretrain is gone", field="train.method",
                             fix="train a new model with model.name=scratch:causal-tiny and train.method=full (arch causal "
                             "or masked, size tiny, small or base), or continue pretraining model.name on raw text with train.method=full")
        return data


class GenerateConfig(Section):
    max_new_tokens: int | None = Field(
        None, ge=1, description="Longest answer in tokens; unset = the trained model's own budget (its training answers' "
        "95th-percentile length + 50%, saved in its generation_config.json), else 256.")
    temperature: float = Field(0.0, ge=0, description="0 = greedy (the default, so evaluations are reproducible); >0 samples.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling: keep the smallest token set with this much probability.")
    top_k: int = Field(0, ge=0, description="Sample only among the k likeliest tokens; 0 = no limit.")
    repetition_penalty: float | None = Field(None, gt=0, description="Above 1 discourages repeating tokens the answer already holds (the "
        "prompt's are not counted); unset = the trained model's (its run's generate.repetition_penalty, in its generation_config.json), else 1.0.")
    no_repeat_ngram_size: int = Field(0, ge=0, description="Never repeat an n-gram of this size; 0 = off.")
    stop: list[str] = Field(default_factory=list, description="Strings that end the answer (not included in it).")
    seed: int | None = Field(None, description="Seed for sampling; None = the run seed.")
    batch_size: int = Field(8, ge=1, description="Prompts generated together (one KV cache per batch).")
    screen: bool = Field(True, description="Greedy fp32 decoding on a CPU: the output layer in int8, each step's 64 best tokens redone in fp32 (luyen.infer.screen); false = fp32.")
    runtime: Runtime = Field("auto", description="`luyen generate`/`chat`: what runs the model. auto = llama.cpp f16 on a CPU with the gguf "
        "extra (a GGUF built once per model, checked against transformers), else transformers; q8_0 is faster, rounds more. Evaluation: eval.runtime.")
    system: str | None = Field(None, description="System message that opens every chat (`luyen chat`, `luyen generate`).")
    chat: bool | None = Field(None, description="Wrap prompts in the chat template; unset = when the model has a template of its own.")
    prompt: str | None = Field(None, description="`luyen generate`: one prompt to answer (or continue), printed to stdout.")
    input: str | None = Field(None, description="`luyen generate`: a JSONL file of {\"prompt\"} or {\"messages\"} lines, answered into --out.")


class JudgeConfig(Section):
    url: str | None = Field(None, description="OpenAI-compatible base URL of a judge model (e.g. http://127.0.0.1:8000/v1); unset = no judge.")
    model: str = Field("judge", description="Model name sent to the judge endpoint.")
    api_key_env: str | None = Field("OPENAI_API_KEY", description="Environment variable holding the judge's API key (never the key itself).")
    timeout: float = Field(60.0, gt=0, description="Seconds to wait for one judgement.")
    concurrency: int = Field(4, ge=1, description="Judgements requested at once.")
    max_examples: int = Field(100, ge=1, description="Judge at most this many test examples per system.")
    pairwise: bool = Field(True, description="Of a trained run, also ask which answer is better, fine-tuned or base zero-shot, in both orders (win rate).")


Baseline = Literal["zero-shot", "few-shot", "rag"]


class EvalConfig(Section):
    data: str | None = Field(None, description="Prepared data folder whose test split is evaluated (`luyen run`: its data stage).")
    baselines: list[Baseline] = Field(["zero-shot", "few-shot"], description="The base model's prompts the fine-tuned model is compared with: zero-shot, few-shot, rag (rag needs rag.index; with an index the best retrieved passage, as the answer, is scored too).")
    limit: int | None = Field(None, ge=1, description="Evaluate only the first N test examples; unset = all.")
    shots: int = Field(3, ge=0, description="Training examples shown to the few-shot baseline.")
    general: bool = Field(True, description="Score the base and the fine-tuned model on luyen's own general-ability items (168 multiple-choice, vi + en) and warn when fine-tuning made the model significantly worse.")
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    runtime: Runtime = Field("transformers", description="What generates every system's answers (generate.runtime's choices; auto = llama.cpp f16, as `luyen chat` answers on a CPU, ~2.5x faster there); perplexities are always transformers'.")
    decoder: str = Field("gemma3-270m", description="A task head (classification, extractive_qa, seq2seq) is compared with this chat model answering zero-shot and few-shot: a decoder or a chat `luyen train` run.")


class ServeConfig(Section):
    host: str = Field("127.0.0.1", description="Address to bind; any non-loopback address requires api_key.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port (0 = any free port).")
    api_key: str | None = Field(None, description="Bearer key every route but /health requires; none = open (loopback only).")
    backend: Literal["transformers", "llamacpp"] = Field("transformers", description="transformers (batched, LoRA adapters) or llamacpp (a .gguf file).")
    adapters: dict[str, str] = Field(default_factory=dict, description="LoRA adapters over the base, {name: folder}; a request picks one by its `model`.")
    max_batch_size: int = Field(16, ge=1, description="Requests generated together in one batch.")
    batch_wait_ms: float = Field(5.0, ge=0, description="How long the first request of a batch waits for others to join it.")
    max_body_bytes: int = Field(1_000_000, gt=0, description="Larger request bodies are refused with 413.")
    max_prompt_tokens: int = Field(0, ge=0, description="Longer prompts are refused with 400; 0 = the model's context minus max_tokens.")
    max_tokens: int = Field(1024, ge=1, description="The largest max_tokens a request may ask for (400 above it).")
    default_max_tokens: int = Field(256, ge=1, description="max_tokens of a request that does not set it, for a model without the answer budget `luyen train` records (p95 answer length x 1.5).")
    cache_size: int = Field(256, ge=0, description="Deterministic answers kept (LRU) to answer identical requests; 0 = off.")
    cors_origins: list[str] = Field(default_factory=list, description="Origins allowed to call the API from a browser; empty = CORS off.")
    state_dir: str | None = Field(None, description="Turns on OpenAI's fine-tuning API and the training page (/train), keeping uploaded files, jobs (each a `luyen run` folder) and their SQLite database here; unset = off.")
    max_running_jobs: int = Field(1, ge=1, description="Fine-tuning jobs that train at once (each in its own process); the rest wait queued.")
    job_threads: int = Field(0, ge=0, description="CPU threads a training job uses; 0 = half the cores. Serving keeps the others while a job runs.")
    max_file_bytes: int = Field(200_000_000, gt=0, description="Largest file POST /v1/files accepts (413 above it).")
    job_config: str | None = Field(None, description="A YAML config every fine-tuning job starts from (eval, data and train settings); a job's own hyperparameters override it.")


class RagConfig(Section):
    k: int = Field(5, ge=1, description="Passages retrieved per question.")
    mode: Literal["hybrid", "dense", "bm25"] = Field("hybrid", description="Retrieval: dense (sentence encoder), bm25 (over syllables), or both fused by reciprocal rank.")
    encoder: str = Field("all-MiniLM-L6-v2", description="Sentence encoder: the shipped all-MiniLM-L6-v2, a `luyen train` run of train.task=embedding, or a local sentence-transformers folder (never downloaded).")
    chunk_tokens: int = Field(200, ge=16, description="Longest passage in encoder tokens (must fit the encoder's window, 254 for MiniLM).")
    overlap_tokens: int = Field(40, ge=0, description="Tokens of whole sentences a passage repeats from the one before it.")
    text_field: str = Field("text", description="Field holding the text in .jsonl documents.")
    rrf_k: int = Field(10, ge=1, description="Reciprocal rank fusion constant: score = sum of weight / (rrf_k + rank); smaller trusts top ranks more.")
    dense_weight: float = Field(0.2, ge=0, description="Weight of the dense ranking in the fusion; low because the shipped English encoder is weak on Vietnamese (raise it for a multilingual encoder).")
    bm25_weight: float = Field(1.0, ge=0, description="Weight of the BM25 ranking in the fusion.")
    candidates: int = Field(50, ge=1, description="Passages each method ranks before fusing.")
    template: str | None = Field(None, description="Prompt with {context} and {question}; default: answer from the numbered passages and cite them as [n].")
    documents: list[str] = Field(default_factory=list, description="Files, globs or folders to index; `luyen run` builds the index when set and evaluates and serves with it.")
    index: str | None = Field(None, description="An index folder (`luyen rag index`) to answer over: `eval` adds systems with retrieval, `chat`, `generate` and `serve` ground every answer in its passages.")

    @model_validator(mode="after")
    def _overlap_below_chunk(self):
        if self.overlap_tokens >= self.chunk_tokens:
            raise ValueError(f"rag.overlap_tokens ({self.overlap_tokens}) must be below rag.chunk_tokens ({self.chunk_tokens})")
        return self


Format = Literal["merged", "gguf", "onnx"]


class ExportConfig(Section):
    format: Format = Field("merged", description="merged (safetensors, for vLLM/TGI), gguf (llama.cpp, Ollama) or onnx.")
    quant: list[str] = Field(default_factory=list, description="gguf: f16, f16_q8emb (f16, token table q8_0), q8_0, q4_k_m (default q8_0); onnx: int8.")


Stage = Literal["data", "rag", "train", "eval", "export"]


class RunConfig(Section):
    name: str = Field("run", description="Run name; `luyen run` writes runs/<name>/.")
    stages: list[Stage] = Field(["data", "rag", "train", "eval", "export"], description="The stages `luyen run` runs, in this order (rag only when rag.documents names documents).")
    seed: int = Field(42, description="Seed for splitting, shuffling and initialisation.")
    out: str | None = Field(None, description="Where the command writes (--out/-o everywhere); `luyen run`: the run folder, default runs/<name>, one sub-folder per stage.")
    overwrite: bool = Field(False, description="Replace what the output folder holds (`luyen run` decides per stage by itself).")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    rag: RagConfig = Field(default_factory=RagConfig)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                values: dict[str, Any] | None = None) -> RunConfig:
    """Read YAML (optional), apply ``a.b=c`` overrides, then ``values`` ({dotted key: typed value}, what
    command-line flags set: taken as given, not parsed as YAML, so an API key "0123" stays text);
    validate. Errors are one-line LuyenErrors."""
    raw: dict[str, Any] = {}
    where = str(path) if path else "command line"
    if path:
        raw = _read_yaml(Path(path))
    given = [_parse_override(item) for item in overrides or []] + list((values or {}).items())
    for key, value in given:
        _check_key(RunConfig, key.split("."), where="command line")
        _set_dotted(raw, key, value)
    _check_keys(RunConfig, raw, [], where)
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or None
        raise LuyenError(err["msg"], file=where, field=field, fix="see `luyen config show` for valid values") from None


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise LuyenError("config file not found", file=str(path), fix="check the path")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        raise LuyenError(f"not valid YAML ({getattr(e, 'problem', None) or e})", file=str(path),
                         line=None if line is None else line + 1, fix="fix the YAML syntax") from None
    if data is not None and not isinstance(data, dict):
        raise LuyenError("the top level must be a mapping of sections (data:, model:, train: ...)", file=str(path))
    return data or {}


def _parse_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise LuyenError(f"override '{item}' is not key=value", fix="write e.g. train.lr=1e-4")
    key, text = item.split("=", 1)
    return key.strip(), yaml.safe_load(text) if text.strip() else ""


def _set_dotted(raw: dict, key: str, value: Any) -> None:
    node, (*parents, last) = raw, key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise LuyenError(f"cannot set '{key}': '{part}' is not a section")
    node[last] = value


def _check_key(model: type[BaseModel], parts: list[str], where: str) -> None:
    for i, part in enumerate(parts):
        fields = model.model_fields
        if part not in fields:
            _unknown(part, list(fields), ".".join(parts[:i]), where)
        ann = fields[part].annotation
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return  # a leaf (or a dict like data.columns): pydantic checks the value
        model = ann


def _check_keys(model: type[BaseModel], raw: dict, prefix: list[str], where: str) -> None:
    for key, value in raw.items():
        if str(key) not in model.model_fields:
            _unknown(str(key), list(model.model_fields), ".".join(prefix), where)
        ann = model.model_fields[str(key)].annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel) and isinstance(value, dict):
            _check_keys(ann, value, prefix + [str(key)], where)


def _unknown(key: str, valid: list[str], prefix: str, where: str) -> None:
    full = f"{prefix}.{key}" if prefix else key
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    hint = f"did you mean '{prefix + '.' if prefix else ''}{close[0]}'?" if close else f"valid keys: {', '.join(valid)}"
    raise LuyenError(f"unknown config key '{full}'", file=where, fix=hint)


def describe(model: type[BaseModel] = RunConfig, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted key, default, description) for every leaf: the docs of the config, generated."""
    rows = []
    for name, f in model.model_fields.items():
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows += describe(ann, f"{prefix}{name}.")
        else:
            default = f.default_factory() if f.default_factory else f.default
            rows.append((prefix + name, repr(default), f.description or ""))
    return rows

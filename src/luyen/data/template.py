"""Chat templates and loss masks: the one place that turns a chat into token ids and labels.

Training, evaluation, export and serving all format chats through here, so the template a model
was trained with is the template it is used with. The tokenizer's own template wins; a base model
without one gets luyen's documented default:

* vocabularies with Gemma's turn markers (<start_of_turn>, <end_of_turn>) get Gemma's layout
  (system text is prepended to the first user turn, as Gemma's own template does);
* any other vocabulary gets ChatML-style turns that end with the tokenizer's EOS token, so every
  assistant target ends with a single stop token whatever the vocabulary.

The loss covers each assistant turn's content plus the turn's end marker (every assistant turn of a
multi-turn chat), nothing else.

    ids, mask = encode_chat(tok, template, [{"role": "user", "content": "Hi"},
                                            {"role": "assistant", "content": "Chào!"}])
"""
from __future__ import annotations

from pathlib import Path

GEMMA_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}{%- set first = messages[0]['content'] + '\n\n' -%}"
    "{%- set turns = messages[1:] -%}{%- else -%}{%- set first = '' -%}{%- set turns = messages -%}{%- endif -%}"
    "{%- for m in turns -%}"
    "{{ '<start_of_turn>' + ('model' if m['role'] == 'assistant' else m['role']) + '\n' }}"
    "{{ (first if loop.first else '') + m['content'] + '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)
CHATML_EOS_TEMPLATE = (
    "{{ bos_token if bos_token else '' }}"
    "{%- for m in messages -%}"
    "{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + eos_token + '\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}"
)


def resolve_chat_template(tokenizer, override: str | None = None) -> str:
    """The template to use: an explicit one (text or a path to a .jinja file), the tokenizer's, or the default."""
    if override:
        path = Path(override)
        return path.read_text(encoding="utf-8") if len(override) < 4096 and path.is_file() else override
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.chat_template
    vocab = tokenizer.get_vocab()
    if "<start_of_turn>" in vocab and "<end_of_turn>" in vocab:
        return GEMMA_TEMPLATE
    return CHATML_EOS_TEMPLATE


def render(tokenizer, template: str, messages: list[dict], add_generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False,
                                         add_generation_prompt=add_generation_prompt)


def end_marker(tokenizer, template: str) -> str:
    """The text the template puts right after an assistant turn's content (e.g. '<end_of_turn>')."""
    probe = "\u2063probe\u2063"
    text = render(tokenizer, template, [{"role": "user", "content": "u"}, {"role": "assistant", "content": probe}])
    if probe not in text:
        return ""  # the template drops assistant turns; encode_chat reports that per record
    return text[text.rindex(probe) + len(probe):].strip()


def stop_token_ids(tokenizer, template: str) -> list[int]:
    """Token ids that end generation: EOS, the template's end-of-turn token when it is one token, and
    the special token that opens a turn (Gemma's <start_of_turn>): an answer never contains a new turn,
    so a model that starts one instead of ending its own has finished its answer."""
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    marker = end_marker(tokenizer, template)
    marker_ids = tokenizer.encode(marker, add_special_tokens=False) if marker else []
    for token in ([marker_ids[0]] if len(marker_ids) == 1 else []) + _turn_opener(tokenizer, template):
        if token not in ids:
            ids.append(token)
    return ids


def special_ids(tokenizer, template: str) -> list[int]:
    """The special tokens the template writes around a user and an assistant turn, BOS excepted
    (Gemma: <start_of_turn>, <end_of_turn>; ChatML-EOS: EOS)."""
    text = render(tokenizer, template, [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}])
    ids = tokenizer.encode(text, add_special_tokens=False)
    return sorted({i for i in ids if i in _special(tokenizer) and i != tokenizer.bos_token_id})


def _turn_opener(tokenizer, template: str) -> list[int]:
    """[id] of the special token a user turn starts with (after BOS), when there is one."""
    probe = "\u2063probe\u2063"
    try:
        text = render(tokenizer, template, [{"role": "user", "content": probe}])
    except Exception:  # noqa: BLE001  (a template may refuse a lone user turn)
        return []
    head = text[:text.find(probe)] if probe in text else ""
    if tokenizer.bos_token and head.startswith(tokenizer.bos_token):
        head = head[len(tokenizer.bos_token):]
    ids = tokenizer.encode(head, add_special_tokens=False) if head else []
    return [ids[0]] if ids and ids[0] in _special(tokenizer) else []


def _special(tokenizer) -> set[int]:
    """Ids of the tokenizer's special and added tokens."""
    return set(getattr(tokenizer, "all_special_ids", []) or []) | set(getattr(tokenizer, "added_tokens_decoder", {}) or {})


def encode_chat(tokenizer, template: str, messages: list[dict], marker: str | None = None,
                targets: str = "all") -> tuple[list[int], list[bool]]:
    """Token ids of the formatted chat and, per token, whether it is a loss-bearing target.

    ``targets="all"`` marks every assistant turn (training); ``"last"`` only the final one (evaluation
    scores the answer to the question, never earlier turns or few-shot examples); ``"chat"`` every token
    up to the last assistant turn's end marker, prompts and turn headers too (train.train_on_prompt)."""
    marker = end_marker(tokenizer, template) if marker is None else marker
    text = render(tokenizer, template, messages)
    turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    spans, cursor = [], 0
    for i in (turns[-1:] if targets == "last" else turns):
        start = max(cursor, _turn_start(tokenizer, template, messages, i, text))
        pos = text.find(messages[i]["content"], start)
        if pos < 0:
            raise ValueError("the chat template drops or rewrites an assistant turn's content")
        end = pos + len(messages[i]["content"])
        spans.append((pos, _marker_end(text, end, marker)))
        cursor = spans[-1][1]
    if targets == "chat" and spans:
        spans = [(0, spans[-1][1])]
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    mask = [any(s <= a and b <= e for s, e in spans) and b > a for a, b in enc["offset_mapping"]]
    return enc["input_ids"], mask


def _turn_start(tokenizer, template: str, messages: list[dict], i: int, text: str) -> int:
    """Where assistant turn ``i``'s content can start: after the rendered chat up to it plus the
    generation prompt (its turn header), so an answer such as "model" or "a" is never found inside the
    header or an earlier turn. For templates whose partial renders are not prefixes of the whole, 0:
    the search then starts after the previous assistant turn."""
    for gen in (True, False):
        try:
            before = render(tokenizer, template, messages[:i], add_generation_prompt=gen) if i else ""
        except Exception:  # noqa: BLE001  (a template may refuse a partial chat with its own raise_exception)
            continue
        if text.startswith(before):
            return len(before)
    return 0


def _marker_end(text: str, end: int, marker: str) -> int:
    """The end of the turn's target: past the end marker when it follows the content, whitespace first
    allowed (Llama-2 style templates write ``content + ' ' + eos``)."""
    j = end
    while j < len(text) and text[j].isspace():
        j += 1
    return j + len(marker) if marker and text.startswith(marker, j) else end

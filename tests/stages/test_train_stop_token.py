"""A model must learn to stop: every chat's last target is a stop token, or training refuses to start."""
from __future__ import annotations

import pytest

from luyen.config import load_config
from luyen.errors import LuyenError
from luyen.train.stage import run

NO_STOP = ("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}Q: {{ m['content'] }}\n"
           "{% else %}A: {{ m['content'] }}\n{% endif %}{% endfor %}")
LLAMA2_STYLE = ("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]"
                "{% else %} {{ m['content'] }} {{ eos_token }}{% endif %}{% endfor %}")


def cfg(model_dir, template):
    c = load_config(None, [f"model.name={model_dir}", "data.max_length=256", "train.max_steps=1"])
    c.model.chat_template = template
    return c


def test_a_template_without_a_stop_token_after_the_answer_stops_training(tmp_path, tiny_model_dir, tiny_data_dir):
    with pytest.raises(LuyenError, match=r"train.jsonl: \d+ of \d+ training chats end their answer without a stop "
                                         r"token.*model.chat_template") as e:
        run(cfg(tiny_model_dir, NO_STOP), tiny_data_dir, tmp_path / "nostop")
    assert "\n" not in str(e.value) and not (tmp_path / "nostop" / "checkpoints").exists()


def test_a_stop_token_after_whitespace_trains(tmp_path, tiny_model_dir, tiny_data_dir):
    m = run(cfg(tiny_model_dir, LLAMA2_STYLE), tiny_data_dir, tmp_path / "llama2")
    assert m["metrics"]["steps"] == 1

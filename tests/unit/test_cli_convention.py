"""One CLI convention: `luyen COMMAND [CONFIG.yaml] [key=value ...] [words] [--flags]`, every flag a
config key, and `luyen config show COMMAND ...` prints the tree a command line resolves to, which
loads back as a YAML file."""
import pytest
import yaml
from typer.testing import CliRunner

from luyen.cli import app
from luyen.config import load_config


def show(*words: str) -> dict:
    res = CliRunner().invoke(app, ["config", "show", *words])
    assert res.exit_code == 0, res.output
    return yaml.safe_load(res.output)


def test_flags_and_words_land_in_the_config_tree(tmp_path):
    tree = show("eval", "configs/demo.yaml", "--model", "runs/x/train", "--data", "runs/x/data", "-o", "runs/x/e",
                "--limit", "3", "--rag", "runs/x/rag", "--baselines", "zero-shot,rag", "generate.max_new_tokens=9")
    assert tree["model"]["name"] == "runs/x/train" and tree["eval"]["data"] == "runs/x/data"
    assert tree["out"] == "runs/x/e" and tree["eval"]["limit"] == 3 and tree["rag"]["index"] == "runs/x/rag"
    assert tree["eval"]["baselines"] == ["zero-shot", "rag"] and tree["generate"]["max_new_tokens"] == 9
    assert tree["train"]["lr"] == 1e-3  # the rest comes from the YAML
    saved = tmp_path / "eval.yaml"
    saved.write_text(yaml.safe_dump(tree))
    assert load_config(saved).model_dump() == tree  # the command line, written down, is the same run


def test_a_commands_own_words_set_its_key():
    assert show("data", "prepare", "configs/demo.yaml", "extra.jsonl", "--out", "o")["data"]["files"] == [
        "examples/data/vi_ai_qa.jsonl", "extra.jsonl"]  # the YAML's files, then the words
    tree = show("export", "runs/x/train", "--format", "gguf", "--quant", "q8_0,q4_k_m")
    assert tree["model"]["name"] == "runs/x/train" and tree["export"] == {"format": "gguf", "quant": ["q8_0", "q4_k_m"]}
    assert show("chat", "runs/x/train", "--system", "Ngắn gọn.", "-n", "20")["generate"]["system"] == "Ngắn gọn."
    assert show("serve", "m", "--api-key", "0123", "--adapters", "a=runs/a")["serve"]["api_key"] == "0123"  # text, not 123
    assert show("rag", "index", "docs/", "--out", "i")["rag"]["documents"] == ["docs/"]
    assert show("train", "configs/lora.yaml", "--data", "d", "--resume")["train"]["resume"] is True


def test_a_model_named_twice_is_refused():
    res = CliRunner().invoke(app, ["config", "show", "export", "runs/a", "--model", "runs/b"])
    assert res.exit_code != 0 and "one model.name expected" in res.output


@pytest.mark.parametrize("command", [["run"], ["data", "check"], ["data", "prepare"], ["train"], ["eval"], ["export"],
                                     ["rag", "index"], ["generate"], ["chat"], ["serve"]])
def test_no_command_keeps_the_old_config_flag(command):
    res = CliRunner().invoke(app, [*command, "--help"])
    assert res.exit_code == 0 and "--config" not in res.output and "--set" not in res.output

"""Every YAML file in the repository loads as a luyen config, and every file in configs/ opens with
the command that uses it (torchtune checks its recipes' configs the same way)."""
import shlex
import subprocess
from pathlib import Path

import pytest

from luyen.cli import app
from luyen.config import load_config

ROOT = Path(__file__).resolve().parents[2]


def _yaml_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.yaml", "*.yml"],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return sorted(ROOT / p for p in listed if (ROOT / p).is_file())


def test_the_repository_has_a_config_per_method():
    names = {p.name for p in (ROOT / "configs").glob("*.yaml")}
    assert {"demo.yaml", "lora.yaml", "qlora.yaml", "full.yaml", "freeze.yaml", "prompt.yaml", "ptuning.yaml",
            "data.yaml", "eval.yaml", "export.yaml", "rag.yaml", "serve.yaml"} <= names
    assert len(_yaml_files()) >= len(names)


@pytest.mark.parametrize("path", _yaml_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_yaml_loads(path):
    load_config(path)  # unknown keys, wrong types and bad values all raise


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_config_opens_with_its_command(path):
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# luyen "), f"{path.name} must open with '# luyen COMMAND ...'"
    words = shlex.split(first[2:])
    assert f"configs/{path.name}" in words, f"{path.name}'s command must name the file itself"
    commands = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    assert words[1] in commands, f"{path.name} opens with an unknown command '{words[1]}'"

"""The house rules of the source tree: every module imports on its own, the module-level imports form
no cycle, the CLI is only imported by the CLI, and no file grows past 400 lines."""
import ast
import importlib
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
MODULES = sorted(".".join(p.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
                 for p in (SRC / "luyen").rglob("*.py"))


def _top_level_imports(module: str) -> set[str]:
    """luyen modules `module` imports when it is imported (not those imported inside functions)."""
    path = SRC / (module.replace(".", "/") + ".py")
    if not path.is_file():
        path = SRC / module.replace(".", "/") / "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in tree.body:  # module level only; `if TYPE_CHECKING:` blocks are not run
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in found if m in MODULES and m != module}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_module_level_imports_form_no_cycle():
    graph = {m: _top_level_imports(m) for m in MODULES}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_only_the_cli_imports_the_cli():
    for module in MODULES:
        if not module.startswith("luyen.cli") and module != "luyen.__main__":
            path = SRC / (module.replace(".", "/") + ".py")
            text = path.read_text(encoding="utf-8") if path.is_file() else ""
            assert "luyen.cli" not in text, f"{module} imports the CLI; move what it needs out of luyen.cli"


@pytest.mark.parametrize("module", [m for m in MODULES if m != "luyen.__main__"])
def test_every_module_imports_alone(module):
    saved = {name: mod for name, mod in sys.modules.items() if name == "luyen" or name.startswith("luyen.")}
    for name in saved:
        del sys.modules[name]
    try:
        importlib.import_module(module)
    finally:
        for name in [n for n in sys.modules if n == "luyen" or n.startswith("luyen.")]:
            del sys.modules[name]
        sys.modules.update(saved)


def test_no_file_is_over_400_lines():
    long = {str(p.relative_to(SRC)): n for p in (SRC / "luyen").rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400}
    assert not long, f"split these files: {long}"


def _readme_tree() -> dict[str, str]:
    readme = (SRC.parent / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Layout", 1)[1].split("```", 2)[1]
    return {line.split()[0]: line.split(None, 1)[1] for line in block.strip().splitlines() if line.startswith("src/")}


def test_the_readme_house_tree_matches_the_code():
    import re
    tree = _readme_tree()
    root = SRC / "luyen"
    packages = sorted(f"src/luyen/{p.name}/" for p in root.iterdir() if (p / "__init__.py").is_file())
    files = sorted(f"src/luyen/{p.name}" for p in root.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert sorted(tree) == sorted(packages + files), "the README's Layout lists other packages or files than src/luyen"
    for package in packages:
        listed = re.sub(r"\([^)]*\)", "", tree[package]).split(":")[0]
        names = sorted(n.strip() for n in listed.split(",") if n.strip())
        modules = sorted(p.stem for p in (SRC.parent / package).glob("*.py") if p.name != "__init__.py")
        assert names == modules, f"README Layout line of {package} names {names}, the code has {modules}"

"""The shape of `bot/`: dependencies flow one way (Discord layer → core → storage and the OpenRouter
client), no import cycles, the core never imports discord.py, and no function is long."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

BOT = Path(__file__).resolve().parents[1] / "bot"
MAX_FUNCTION_LINES = 50

# Lower layers never import higher ones. Anything not listed belongs to the core.
FOUNDATION = {"bot", "bot.states", "bot.money", "bot.settings", "bot.logs", "bot.retry"}
INFRASTRUCTURE = ("bot.store", "bot.openrouter")
DISCORD_LAYER = ("bot.discord",)
ENTRY_POINTS = {"bot.runner", "bot.__main__"}


def module_name(path: Path) -> str:
    parts = path.relative_to(BOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, ast.Module]:
    return {module_name(p): ast.parse(p.read_text(encoding="utf-8")) for p in sorted(BOT.rglob("*.py"))}


def type_checking_blocks(tree: ast.Module) -> set[int]:
    """Line numbers of imports under `if TYPE_CHECKING:` (not imported at run time)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            lines.update(n.lineno for stmt in node.body for n in ast.walk(stmt) if hasattr(n, "lineno"))
    return lines


def imports(tree: ast.Module, *, runtime_only: bool = False) -> Iterator[str]:
    skip = type_checking_blocks(tree) if runtime_only else set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def layer(module: str) -> int:
    if module in FOUNDATION:
        return 0
    if module.startswith(INFRASTRUCTURE):
        return 1
    if module.startswith(DISCORD_LAYER):
        return 3
    if module in ENTRY_POINTS:
        return 4
    return 2


def bot_imports(known: dict[str, ast.Module], tree: ast.Module, *, runtime_only: bool = False) -> set[str]:
    return {name for name in imports(tree, runtime_only=runtime_only) if name in known}


def package(module: str) -> str:
    """The unit cycles are checked between: a sub-package of bot/, or a top-level module."""
    parts = module.split(".")
    return ".".join(parts[:2])


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return [*visiting[visiting.index(node):], node]
        if node in done:
            return None
        visiting.append(node)
        for target in sorted(graph.get(node, ())):
            cycle = visit(target)
            if cycle:
                return cycle
        visiting.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start)
        if cycle:
            return cycle
    return None


def test_dependencies_flow_one_way() -> None:
    known = modules()
    wrong = [f"{m} (layer {layer(m)}) imports {t} (layer {layer(t)})"
             for m, tree in known.items() for t in bot_imports(known, tree) if layer(t) > layer(m)]
    assert not wrong, "\n".join(wrong)


def test_only_the_discord_layer_and_the_runner_import_discord_py() -> None:
    offenders = [m for m, tree in modules().items() if layer(m) < 3
                 and any(name == "discord" or name.startswith("discord.") for name in imports(tree))]
    assert not offenders


def test_the_discord_layer_uses_services_not_repositories() -> None:
    """Cogs reach the store and OpenRouter only through the core: record types are fine, a repository,
    the database, the catalogue or the client are not."""
    forbidden = ("Repo", "Database", "ModelCatalogue", "OpenRouterClient")
    offenders = [f"{m}: {name}" for m, tree in modules().items() if layer(m) == 3
                 for name in imports(tree) if name.startswith(INFRASTRUCTURE) and name.endswith(forbidden)]
    assert not offenders, offenders


def test_no_import_cycles_between_packages() -> None:
    known = modules()
    graph: dict[str, set[str]] = {}
    for m, tree in known.items():
        for target in bot_imports(known, tree):
            if package(target) != package(m):
                graph.setdefault(package(m), set()).add(package(target))
    assert find_cycle(graph) is None, find_cycle(graph)


def test_no_import_cycles_between_modules() -> None:
    known = modules()
    graph = {m: {t for t in bot_imports(known, tree, runtime_only=True) if t != m} for m, tree in known.items()}
    for m in list(graph):  # `bot.x.y` importing its own package `bot.x` is Python's doing, not a cycle
        graph[m] = {t for t in graph[m] if not m.startswith(t + ".")}
    assert find_cycle(graph) is None, find_cycle(graph)


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}}) is None


@pytest.mark.parametrize("path", sorted(BOT.rglob("*.py")), ids=lambda p: str(p.relative_to(BOT)))
def test_no_long_functions(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    long = [f"{node.name}: {node.end_lineno - node.lineno + 1} lines" for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno is not None and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long

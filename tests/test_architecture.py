"""The import rule of docs/architecture.md: every import in metarl points down its layers."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "metarl"

#: docs/architecture.md's layers, top to bottom: (layer, module prefixes). A module belongs to
#: the first layer with a prefix of its name; every other module of metarl is shared machinery.
LAYERS = [
    ("command line", ("metarl.run", "metarl.help_pages", "metarl.scripts")),
    ("experiments", ("metarl.experiment", "metarl.algorithms", "metarl.catalog",
                     "metarl.evaluate_run")),
    ("sampling and RL maths", ("metarl.rl.sampler", "metarl.rl.workers", "metarl.rl.ray_sampler",
                               "metarl.rl.shard_plan", "metarl.rl.trial_shards",
                               "metarl.rl.device_sampler", "metarl.rl.step_budget",
                               "metarl.rl.episodes", "metarl.rl.returns", "metarl.rl.baseline",
                               "metarl.rl.policy", "metarl.rl.trial_sampler",
                               "metarl.rl.recurrent_policy", "metarl.rl.ppo")),
    ("algorithms", ("metarl.rl", "metarl.supervised")),
    ("core", ("metarl.core",)),
    ("task families", ("metarl.envs",)),
]
ORDER = ["command line", "experiments", "algorithms", "sampling and RL maths",
         "shared machinery", "core", "task families"]


def module_names() -> dict[str, Path]:
    """Every module of metarl by its dotted name (a package by its own name)."""
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def layer(module: str) -> str:
    for name, prefixes in LAYERS:
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return name
    return "task families" if module == "metarl" else "shared machinery"


def imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The metarl modules ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in modules else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name in modules}


def test_every_import_points_down_the_layers():
    modules = module_names()
    upward = [f"{name} ({layer(name)}) imports {target} ({layer(target)})"
              for name, path in sorted(modules.items())
              for target in sorted(imports(path, modules))
              if ORDER.index(layer(target)) < ORDER.index(layer(name))]
    assert upward == []


def test_no_module_imports_itself_back_through_others():
    modules = module_names()
    graph = {name: imports(path, modules) - {name} for name, path in modules.items()}
    cycles = []

    def visit(name: str, stack: list[str], done: set[str]) -> None:
        stack.append(name)
        for target in graph[name]:
            if target in stack:
                cycles.append(" -> ".join(stack[stack.index(target):] + [target]))
            elif target not in done:
                visit(target, stack, done)
        stack.pop()
        done.add(name)

    done: set[str] = set()
    for name in sorted(graph):
        if name not in done:
            visit(name, [], done)
    assert cycles == []


def test_the_layers_name_modules_that_exist():
    modules = module_names()
    missing = [prefix for _, prefixes in LAYERS for prefix in prefixes if prefix not in modules]
    assert missing == []

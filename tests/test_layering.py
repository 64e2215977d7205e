"""The package's one dependency direction, checked on the source (AST scan of every import,
including imports inside functions), so a wrong arrow fails here instead of in a review.

Layers, lowest first (a package may import its own layer and any lower one, never a higher one):

    core ← io ← preprocess ← segment ← inputs ← features ← serving ← {training, pacs} ← {app, cli}
    synth imports only core and io;  models/ imports only pipeline.core

``pipeline/__init__.py`` holds only the version and the notices and imports nothing, so any
module may import it. Also: no import cycle between modules, and no module imports another
module's ``_private`` name.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYER = {"core": 0, "io": 1, "preprocess": 2, "segment": 3, "inputs": 4, "features": 5, "serving": 6,
         "training": 7, "pacs": 7, "app": 8, "cli": 8}
ALLOWED_EXTRA = {"synth": {"core", "io", "synth"}, "models": {"core"}}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    files = [*REPO.joinpath("pipeline").rglob("*.py"), *REPO.joinpath("models").rglob("*.py")]
    return {_module_name(p): p for p in files}


MODULES = _modules()


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every project import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = _module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            names = [a.name for a in node.names]
            # `from pipeline.x import module` imports the module itself
            sub = [f"{base}.{n}" for n in names if f"{base}.{n}" in MODULES]
            out += [(s, [], node.lineno) for s in sub]
            rest = [n for n in names if f"{base}.{n}" not in MODULES]
            if rest or not sub:
                out.append((base, rest, node.lineno))
    return [(m, n, line) for m, n, line in out if m.split(".")[0] in {"pipeline", "models"}]


def _area(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "models":
        return "models"
    return parts[1] if len(parts) > 1 else "root"


def _allowed(src: str, dst: str) -> bool:
    a, b = _area(src), _area(dst)
    if b == "root" or a == b:
        return True
    if a in ALLOWED_EXTRA:
        return b in ALLOWED_EXTRA[a]
    if b == "models":
        return a in LAYER and LAYER[a] >= LAYER["features"]
    if b == "synth":
        return a in {"training", "cli", "app"}
    return a in LAYER and b in LAYER and LAYER[b] < LAYER[a] or (a in {"app", "cli"} and b in LAYER and b not in {"app", "cli"})


def test_every_package_imports_only_lower_layers() -> None:
    wrong = [f"{src} (line {line}) imports {dst}"
             for src, path in sorted(MODULES.items()) for dst, _names, line in _imports(path)
             if not _allowed(src, dst)]
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def test_no_module_imports_another_modules_private_names() -> None:
    wrong = [f"{src} (line {line}) takes {n} from {dst}"
             for src, path in sorted(MODULES.items()) for dst, names, line in _imports(path)
             if dst != src for n in names if n.startswith("_") and not n.startswith("__")]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles() -> None:
    graph = {src: {d for d, _n, _l in _imports(p) if d in MODULES and d != src} for src, p in MODULES.items()}
    # a package's __init__ that only documents is not an edge; cycles are between real modules
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            pytest.fail("import cycle: " + " → ".join(cycle))


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("pipeline.")))
def test_modules_stay_small(module: str) -> None:
    n = len(MODULES[module].read_text(encoding="utf-8").splitlines())
    assert n <= 600, f"{module} has {n} lines; split it along its own jobs (limit 600)"

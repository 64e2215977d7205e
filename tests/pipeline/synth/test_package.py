"""The synth package: its modules stay small, import one way (no cycles), use only pipeline.core
and pipeline.io from the rest of pipeline, never another module's private name, and the package
re-exports its public interface."""

from __future__ import annotations

import ast
from pathlib import Path

import pipeline.synth as synth

PACKAGE = Path(synth.__file__).parent


def _imports() -> dict[str, set[str]]:
    """Module name -> the pipeline.synth modules it imports (and asserts the import rules)."""
    graph = {}
    for path in sorted(PACKAGE.glob("*.py")):
        name = path.stem
        assert len(path.read_text(encoding="utf-8").splitlines()) <= 600, f"{name} is over 600 lines"
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pipeline"):
                parts = node.module.split(".")
                assert parts[1] in ("core", "io", "synth"), f"{name} imports {node.module}"
                if parts[1] == "synth" and len(parts) > 2:
                    deps.add(parts[2])
                    private = [a.name for a in node.names if a.name.startswith("_")]
                    assert not private, f"{name} imports private names {private} from {node.module}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("pipeline.") or alias.name.split(".")[1] in ("core", "io", "synth")
        graph[name] = deps
    return graph


def test_modules_import_one_way_without_cycles():
    graph = _imports()
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' -> '.join(path + (name,))}"
        if name not in done:
            for dep in graph.get(name, ()):
                visit(dep, path + (name,))
            done.add(name)

    for name in graph:
        if name != "__init__":
            visit(name, ())
    assert "phantom" not in graph  # the old single module is gone


def test_the_package_exports_what_other_code_imports():
    for name in synth.__all__:
        assert hasattr(synth, name), name
    assert {"PhantomSpec", "TumourSpec", "make_phantom", "write_cohort", "sample_case", "SCANNER_PROFILES",
            "TISSUE_LABELS", "oracle_auc", "LABEL_MODEL"} <= set(synth.__all__)

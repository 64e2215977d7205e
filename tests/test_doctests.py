"""Every docstring example in ``pipeline`` and ``models`` runs and prints what it shows.

Modules are found without importing them (a module whose source holds no ``>>>`` is skipped),
then each is imported and checked with :func:`doctest.testmod`, so an example that drifts
from the code fails here with the module's name.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import pkgutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "models")


def _modules_with_examples() -> list[str]:
    names = []
    for package in PACKAGES:
        names.append(package)
        names += [m.name for m in pkgutil.walk_packages([str(REPO / package)], prefix=f"{package}.")]
    with_examples = []
    for name in sorted(names):
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            continue
        if ">>>" in Path(spec.origin).read_text(encoding="utf-8"):
            with_examples.append(name)
    return with_examples


MODULES = _modules_with_examples()


def test_the_core_modules_have_examples():
    assert {"pipeline.io.readers", "pipeline.inputs.validate", "pipeline.inputs.clinical", "pipeline.preprocess.crop"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)  # examples that write files leave nothing in the repository
    module = importlib.import_module(name)
    result = doctest.testmod(module, report=True, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (see output above)"
    assert result.attempted > 0, f"{name} holds '>>>' but doctest found no example to run"

"""A non-editable install holds every package and its data (a hand-written package list once
left out ``pipeline.preprocess``): build the wheel, install it into a scratch folder, and import
every sub-package from there, in a fresh interpreter that cannot see the checkout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _packages() -> list[str]:
    found = []
    for root in ("pipeline", "models"):
        for init in sorted((REPO / root).rglob("__init__.py")):
            found.append(".".join(init.parent.relative_to(REPO).parts))
    return found


def test_wheel_installs_every_package_and_its_data(tmp_path: Path) -> None:
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheels), str(REPO)], check=True, cwd=tmp_path)
    (wheel,) = wheels.glob("pleurarisk-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, cwd=tmp_path)
    code = (
        "import importlib, json, sys\n"
        f"sys.path.insert(0, {str(target)!r})\n"
        f"mods = {_packages()!r}\n"
        "files = {m: importlib.import_module(m).__file__ for m in mods}\n"
        "from pipeline.core.config import default_radiomics_yaml\n"
        "from pipeline.serving.signing import trusted_keys\n"
        "print(json.dumps({'files': files, 'yaml': len(default_radiomics_yaml()), 'keys': len(trusted_keys())}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    outside = {m: f for m, f in report["files"].items() if not f.startswith(str(target))}
    assert not outside, f"imported from the checkout, not the installed wheel: {outside}"
    assert report["yaml"] > 0
    assert report["keys"] >= 1  # the pinned release key that signs the shipped bundles
    assert len(report["files"]) >= 12

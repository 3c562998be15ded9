"""The installed (non-editable) wheel ships the napari manifest and both packages, and needs napari
and Qt only through its ``napari`` extra."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
# left out of the copy the wheel is built from: local state, not sources
LOCAL_ONLY = (".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "runs")
GUI = {"napari", "magicgui", "qtpy", "pyqt5", "pyqt6", "pyside2", "pyside6", "vispy", "superqt"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # setuptools never empties a build/ folder: a module deleted or renamed since the last build would
    # still be packed from there, so the wheel is built from a copy without one
    source = tmp_path_factory.mktemp("source") / "napari-scorenet"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*LOCAL_ONLY))
    build = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    (whl,) = out.glob("napari_scorenet-*.whl")
    return whl


def test_wheel_ships_manifest_identical_to_repository(wheel: Path):
    with zipfile.ZipFile(wheel) as zf:
        shipped = zf.read("napari_scorenet/napari.yaml")
        entry_points = zf.read(next(n for n in zf.namelist() if n.endswith("entry_points.txt"))).decode()
        names = set(zf.namelist())
    assert shipped == (ROOT / "napari.yaml").read_bytes()
    assert "napari-scorenet = napari_scorenet:napari.yaml" in entry_points
    assert "scorenet = scorenet.cli:main" in entry_points
    assert {"scorenet/__init__.py", "scorenet/_compat.py", "napari_scorenet/__init__.py"} <= names
    models = ROOT / "models"
    sources = {p.relative_to(models).as_posix() for p in (models / "scorenet").rglob("*.py")}
    sources |= {p.relative_to(ROOT).as_posix() for p in (ROOT / "napari_scorenet").rglob("*.py")}
    assert {n for n in names if n.endswith(".py")} == sources  # no stale or missing module


def test_core_requirements_leave_napari_and_qt_to_the_extra(wheel: Path):
    with zipfile.ZipFile(wheel) as zf:
        metadata = zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    requirements = [Requirement(line.split(":", 1)[1]) for line in metadata.splitlines()
                    if line.startswith("Requires-Dist:")]  # fmt: skip
    core = {r.name.lower() for r in requirements if not r.marker or r.marker.evaluate({"extra": ""})}
    napari = {r.name.lower() for r in requirements if r.marker and r.marker.evaluate({"extra": "napari"})}
    assert {"torch", "safetensors", "openslide-python", "psutil"} <= core
    assert not core & GUI, sorted(core & GUI)
    assert {"napari", "magicgui", "qtpy", "pyqt6"} <= napari

"""The installed (non-editable) wheel ships the napari manifest and both packages."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
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

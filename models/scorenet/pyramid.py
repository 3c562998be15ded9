"""A slide as a lazy multiscale pyramid of dask arrays, one chunk per ``read_region`` call.

Chunks are aligned on the slide's stored tiles (a whole number of tiles, about 1024 pixels a side), so a
chunk decodes each tile it needs once and no two chunks share a tile; at that size dask's fixed cost
per chunk is small next to decoding (see ``benchmarks/bench_slide_read.py``). Building the pyramid
reads no pixels; napari then reads only the chunks it shows.
"""

from __future__ import annotations

import dask.array as da
import numpy as np

from .slide import DEFAULT_CHUNK, Slide


class _LevelReader:
    """Array-like view of one level: ``[rows, cols]`` slices become one ``read_region``."""

    ndim = 3
    dtype = np.dtype(np.uint8)

    def __init__(self, slide: Slide, level: int) -> None:
        self.slide = slide
        self.level = level
        width, height = slide.level_dimensions[level]
        self.shape = (height, width, 3)
        self._downsample = slide.level_downsamples[level]

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        rows, cols = key[0], key[1]
        y0, y1, _ = rows.indices(self.shape[0])
        x0, x1, _ = cols.indices(self.shape[1])
        # read_region takes its location in level-0 pixels and its size in pixels of the level; the
        # tifffile backend maps round(x0 * ds) back to pixel x0 of the level exactly
        location = (round(x0 * self._downsample), round(y0 * self._downsample))
        tile = self.slide.read_region(location, self.level, (x1 - x0, y1 - y0))
        return tile[(slice(None), slice(None), *key[2:])] if len(key) > 2 else tile


def chunk_size(slide: Slide, level: int, target: int = DEFAULT_CHUNK) -> tuple[int, int]:
    """(rows, cols) of a chunk: the largest whole number of stored tiles not above ``target``."""
    tile_w, tile_h = slide.tile_size(level)
    if not tile_w or not tile_h:
        return target, target
    return tile_h * max(1, target // tile_h), tile_w * max(1, target // tile_w)


def slide_pyramid(slide: Slide, target_chunk: int = DEFAULT_CHUNK) -> list[da.Array]:
    """One (height, width, 3) uint8 dask array per level, finest first; reads nothing until computed."""
    levels = []
    for level in range(slide.level_count):
        reader = _LevelReader(slide, level)
        rows, cols = chunk_size(slide, level, target_chunk)
        levels.append(
            da.from_array(
                reader,
                chunks=(rows, cols, 3),
                name=f"slide-{id(slide):x}-level-{level}",
                lock=False,  # reads are thread-safe: OpenSlide handles; tiff_backend, plain_image by design
                asarray=False,
                fancy=False,
                meta=np.empty((0, 0, 0), dtype=np.uint8),
                inline_array=True,
            )
        )
    return levels

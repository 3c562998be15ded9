"""A small real labelled folder: carcinoma vs stroma crops from the shared H&E tiles.

Carcinoma crops come from ``tiles/hgsc_nest.jpg`` and ``tiles/target_image.png``, stroma crops from
``tiles/hgsc_stromal_he.jpg`` (see the data README). Each crop has a random position, a random zoom of
1 to 1.5x, a random flip and a random quarter turn, so no two images are alike.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from .atomic import atomic_path
from .errors import ScoreNetInputError
from .paths import data_dir

SOURCES = {
    "carcinoma": ("hgsc_nest.jpg", "target_image.png"),
    "stroma": ("hgsc_stromal_he.jpg",),
}
DEFAULT_SIZES = ((256, 384), (384, 256))  # (height, width)
# a small ScoreNet for demos and tests (P_h = 64, K = 4): about a second per epoch on the demo folder
DEMO_MODEL_OVERRIDES = {
    "downscale": 4,
    "top_k": 4,
    "embed_dim": 32,
    "depth": 2,
    "num_heads": 2,
    "num_cls_tokens": 1,
    "scorer_cls_in_head": 1,
    "global_depth": 1,
    "global_num_heads": 2,
    "num_samples": 50,
}


def _load_tiles(tiles_dir: Path) -> dict[str, list[np.ndarray]]:
    tiles = {}
    for name, files in SOURCES.items():
        tiles[name] = []
        for file in files:
            path = tiles_dir / file
            if not path.is_file():
                raise ScoreNetInputError("demo tile not found (set SCORENET_DATA)", path)
            with Image.open(path) as im:
                tiles[name].append(np.asarray(im.convert("RGB")))
    return tiles


def random_crop(tile: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A (h, w, 3) crop of ``tile`` at a random place, zoom (1-1.5x), flip and quarter turn."""
    h, w = size
    turn = int(rng.integers(4))
    src_h, src_w = (w, h) if turn % 2 else (h, w)  # a quarter turn swaps the sides back
    zoom = rng.uniform(1.0, 1.5)
    crop_h = min(tile.shape[0], round(src_h * zoom))
    crop_w = min(tile.shape[1], round(src_w * zoom))
    y = int(rng.integers(tile.shape[0] - crop_h + 1))
    x = int(rng.integers(tile.shape[1] - crop_w + 1))
    crop = Image.fromarray(tile[y : y + crop_h, x : x + crop_w])
    pixels = np.asarray(crop.resize((src_w, src_h), Image.Resampling.BILINEAR))
    if rng.random() < 0.5:
        pixels = pixels[:, ::-1]
    return np.ascontiguousarray(np.rot90(pixels, turn))


def make_tile_folder(
    out_dir: str | os.PathLike[str],
    n_per_class: int,
    seed: int = 0,
    sizes: Sequence[tuple[int, int]] = DEFAULT_SIZES,
    tiles_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Write ``out_dir/{carcinoma,stroma}/NNN.png`` (``n_per_class`` each, sizes cycling through
    ``sizes`` as (height, width)) and return ``out_dir``."""
    if n_per_class < 1:
        raise ScoreNetInputError(f"n_per_class must be >= 1, got {n_per_class}")
    out = Path(out_dir)
    tiles = _load_tiles(Path(tiles_dir) if tiles_dir is not None else data_dir() / "tiles")
    rng = np.random.default_rng(seed)
    for name, sources in tiles.items():
        (out / name).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            tile = sources[i % len(sources)]
            pixels = random_crop(tile, sizes[i % len(sizes)], rng)
            with atomic_path(out / name / f"{name}_{i:03d}.png") as tmp:
                Image.fromarray(pixels).save(tmp, format="PNG")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m scorenet.demo_data OUT [--per-class N] [--seed S] [--size HxW ...]``."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m scorenet.demo_data", description=make_tile_folder.__doc__
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--per-class", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--size", action="append", type=lambda t: tuple(int(v) for v in t.lower().split("x")), metavar="HxW"
    )
    args = parser.parse_args(argv)
    out = make_tile_folder(args.out, args.per_class, args.seed, args.size or DEFAULT_SIZES)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

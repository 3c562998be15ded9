"""Files of a whole-slide score: tiles as QuPath detections, CSV, arrays, summary and tissue mask.

- ``tiles.geojson``: one QuPath *detection* per RoI, classified as its predicted class, with
  ``probability <class>`` and ``tissue`` measurements (QuPath's measurement maps colour them);
- ``tiles.csv``: index, x, y, w, h (level 0), tissue share, predicted class, a probability per class,
  and the distribution's concentration (max_over_min, topk_mass, effective_regions);
- ``tiles.npz``: ``rois`` (N, 4), ``probabilities`` (N, C), ``distributions`` (N, gh, gw), ``boxes``
  (N, K, 4) level 0, ``scores`` (N, K); ``np.load`` needs no pickle;
- ``summary.json``: class fractions by tissue area, the most suspicious RoIs per class, counts;
- ``tissue_mask.png``: the tissue mask on the thumbnail (white = tissue).

Every file is written atomically.
"""

from __future__ import annotations

import csv
import io
import json
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from . import atomic
from .concentration import concentration
from .wsi import SlideScore

FILES = ("tiles.geojson", "tiles.csv", "tiles.npz", "summary.json", "tissue_mask.png")


def tiles_geojson(result: SlideScore) -> dict[str, Any]:
    """A FeatureCollection of QuPath detection objects, one per scored RoI."""
    features = []
    for tile in sorted(result.tiles, key=lambda t: t.index):
        x, y, w, h = tile.roi
        ring = [[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x, y]]
        measurements = {
            f"probability {c}": float(p) for c, p in zip(result.class_names, tile.probabilities, strict=True)
        }
        measurements["tissue"] = float(tile.tissue)
        features.append({
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {
                "objectType": "detection",
                "name": f"tile {tile.index}",
                "classification": {"name": tile.predicted},
                "measurements": measurements,
            },
        })  # fmt: skip
    return {"type": "FeatureCollection", "features": features}


CONCENTRATION = ("max_over_min", "topk_mass", "effective_regions")  # scorenet.concentration


def tiles_csv(result: SlideScore) -> str:
    """One row per scored RoI, in plan order, with its distribution's concentration."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    probabilities = [f"p_{c}" for c in result.class_names]
    writer.writerow(["index", "x", "y", "w", "h", "tissue", "predicted", *probabilities, *CONCENTRATION])
    for tile in sorted(result.tiles, key=lambda t: t.index):
        values = concentration(tile.distribution, len(tile.scores))
        writer.writerow([
            tile.index, *tile.roi, repr(float(tile.tissue)), tile.predicted,
            *(repr(float(p)) for p in tile.probabilities), *(repr(values[key]) for key in CONCENTRATION),
        ])  # fmt: skip
    return buffer.getvalue()


def tiles_npz(result: SlideScore) -> bytes:
    """The per-RoI arrays as an .npz (no object arrays, so ``np.load`` needs no pickle)."""
    tiles = sorted(result.tiles, key=lambda t: t.index)
    c = len(result.class_names)
    shapes = {t.distribution.shape for t in tiles}
    if len(shapes) > 1:  # cannot happen with one RoI size; kept as a guard for the stacking below
        raise ValueError(f"RoIs of several grid sizes: {sorted(shapes)}")
    arrays = {
        "index": np.array([t.index for t in tiles], dtype=np.int64),
        "rois": np.array([t.roi for t in tiles], dtype=np.int64).reshape(-1, 4),
        "tissue": np.array([t.tissue for t in tiles], dtype=np.float32),
        "probabilities": np.array([t.probabilities for t in tiles], dtype=np.float32).reshape(-1, c),
        "distributions": np.array([t.distribution for t in tiles], dtype=np.float32),
        "boxes": np.array([t.boxes_level0 for t in tiles], dtype=np.float32),
        "scores": np.array([t.scores for t in tiles], dtype=np.float32),
        "class_names": np.array(result.class_names, dtype=str),
    }
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def tissue_png(result: SlideScore) -> bytes:
    """The tissue mask as a PNG (white = tissue)."""
    import cv2

    ok, encoded = cv2.imencode(".png", result.tissue.mask.astype(np.uint8) * 255)
    if not ok:
        raise OSError("could not encode the tissue mask as PNG")
    return encoded.tobytes()


def write_slide_outputs(
    out_dir: str | PathLike[str], result: SlideScore, per_class: int = 5
) -> dict[str, Path]:
    """Write :data:`FILES` into ``out_dir`` atomically (``summary.json`` last: its presence means done)."""
    out = Path(out_dir)
    written = {
        "tiles.geojson": atomic.atomic_write(out / "tiles.geojson", json.dumps(tiles_geojson(result))),
        "tiles.csv": atomic.atomic_write(out / "tiles.csv", tiles_csv(result)),
        "tiles.npz": atomic.atomic_write(out / "tiles.npz", tiles_npz(result)),
        "tissue_mask.png": atomic.atomic_write(out / "tissue_mask.png", tissue_png(result)),
    }
    summary = json.dumps(result.summary(per_class), indent=2)
    written["summary.json"] = atomic.atomic_write(out / "summary.json", summary)
    return written

"""Write an :class:`~scorenet.inference.RoiScore` to files: GeoJSON for QuPath, CSV, JSON, a PNG overlay.

Every file is written atomically (``scorenet.atomic``); coordinates are level-0 slide pixels.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from . import atomic
from .concentration import concentration
from .inference import RoiScore

# one colour per class index (Tableau 10), RGB
CLASS_COLORS: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
)
BOX_COLOR = (0, 255, 255)  # cyan stands out on H&E pink and purple
HEAT_ALPHA = 0.4
# x_uniform = N * score: the region's probability relative to a uniform distribution over N regions
CSV_COLUMNS = ("rank", "score", "x_uniform", "x0", "y0", "x1", "y1")
OUTPUT_FILES = ("prediction.json", "distribution.npy", "regions.geojson", "regions.csv", "overlay.png")

PathLike = str | os.PathLike[str]


def class_color(score: RoiScore, name: str) -> list[int]:
    """The RGB colour of class ``name`` (by its index in ``score.class_names``)."""
    return list(CLASS_COLORS[score.class_names.index(name) % len(CLASS_COLORS)])


def _polygon(box: tuple[float, float, float, float]) -> dict[str, Any]:
    """A closed rectangular ring: counter-clockwise with y up, as RFC 7946 wants exterior rings."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


def _annotation(box: tuple[float, ...], name: str, score: RoiScore, measurements: dict) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": _polygon(box),
        "properties": {
            "objectType": "annotation",
            "name": name,
            "classification": {"name": score.predicted, "color": class_color(score, score.predicted)},
            "measurements": measurements,
        },
    }


def regions_geojson(score: RoiScore) -> dict[str, Any]:
    """A QuPath-compatible FeatureCollection: the RoI (class probabilities) and the K ranked regions."""
    x, y, w, h = score.roi
    roi_measurements = {
        f"probability {c}": float(p) for c, p in zip(score.class_names, score.probabilities, strict=True)
    }
    features = [_annotation((x, y, x + w, y + h), "RoI", score, roi_measurements)]
    for rank, value, box in zip(score.ranks, score.scores, score.boxes_level0, strict=True):
        measurements = {"rank": int(rank), "score": float(value)}
        features.append(_annotation(tuple(box), f"region {int(rank)}", score, measurements))
    return {"type": "FeatureCollection", "features": features}


def write_geojson(path: PathLike, score: RoiScore) -> Path:
    """``regions_geojson(score)`` as a .geojson file."""
    return atomic.atomic_write(path, json.dumps(regions_geojson(score)))


def write_regions_csv(path: PathLike, score: RoiScore) -> Path:
    """One row per region in rank order: rank, score, x0, y0, x1, y1 (level 0)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    n = score.distribution.size
    for rank, value, box in zip(score.ranks, score.scores, score.boxes_level0, strict=True):
        coordinates = (repr(float(v)) for v in box)
        writer.writerow([int(rank), repr(float(value)), repr(float(n * value)), *coordinates])
    return atomic.atomic_write(path, buffer.getvalue())


def prediction_dict(score: RoiScore) -> dict[str, Any]:
    """The prediction and where it was made, as plain JSON types."""
    return {
        "class_names": list(score.class_names),
        "probabilities": [float(p) for p in score.probabilities],
        "predicted": score.predicted,
        "roi": [int(v) for v in score.roi],
        "mpp": score.mpp,
        "scale": score.scale,
        "distribution_box_level0": [float(v) for v in score.distribution_box_level0],
        "grid": list(score.distribution.shape),
        "top_k": len(score.ranks),
        # how far the distribution is from uniform (docs/scoring.md, "Concentration")
        "concentration": concentration(score.distribution, len(score.ranks)),
        "padded_fraction": float(score.padded_fraction),
    }


def write_prediction_json(path: PathLike, score: RoiScore) -> Path:
    """``prediction_dict(score)`` as a .json file."""
    return atomic.atomic_write(path, json.dumps(prediction_dict(score), indent=2))


def heat_map(score: RoiScore) -> np.ndarray:
    """The distribution as an inferno-coloured (H, W, 3) uint8 RGB image over ``score.image``.

    Colours span the distribution's own range (min-max), so the contrast between regions shows even
    when the scorer spreads its mass almost evenly.
    """
    dist = score.distribution.astype(np.float64)
    spread = float(dist.max() - dist.min())
    unit = (dist - dist.min()) / spread if spread > 0 else np.zeros_like(dist)
    levels = np.round(unit * 255).astype(np.uint8)
    colored = cv2.cvtColor(cv2.applyColorMap(levels, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)
    h, w = score.image.shape[:2]
    # nearest: each grid cell stays a sharp block over exactly its region
    return cv2.resize(colored, (w, h), interpolation=cv2.INTER_NEAREST)


def render_overlay(score: RoiScore) -> np.ndarray:
    """The model input with the distribution as a semi-transparent heat map and the ranked K boxes."""
    image = score.image
    overlay = cv2.addWeighted(image, 1 - HEAT_ALPHA, heat_map(score), HEAT_ALPHA, 0)
    boxes = np.round(score.boxes_image).astype(int)
    # lines and labels sized to the regions, so ranks stay legible and inside their boxes
    side = int(np.min(boxes[:, 2:] - boxes[:, :2])) if len(boxes) else 128
    thickness = max(1, round(side / 64))
    font_scale = min(3.0, max(0.4, side / 128))
    for rank, box in zip(score.ranks, boxes, strict=True):
        x0, y0, x1, y1 = (int(v) for v in box)
        cv2.rectangle(overlay, (x0, y0), (x1 - 1, y1 - 1), BOX_COLOR, thickness)
        origin = (x0 + 2 * thickness, y0 + round(24 * font_scale) + thickness)
        label = str(int(rank))
        # dark outline under the light text keeps the rank readable on any background
        cv2.putText(overlay, label, origin, cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), thickness + 2)
        cv2.putText(overlay, label, origin, cv2.FONT_HERSHEY_SIMPLEX, font_scale, BOX_COLOR, thickness)
    return overlay


def write_overlay_png(path: PathLike, score: RoiScore) -> Path:
    """``render_overlay(score)`` as a PNG."""
    bgr = cv2.cvtColor(render_overlay(score), cv2.COLOR_RGB2BGR)
    # fastest zlib level: 4x quicker than PIL's default on a whole-slide RoI for ~10 % more bytes
    ok, encoded = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise RuntimeError("PNG encoding of the overlay failed")
    return atomic.atomic_write(path, encoded.tobytes())


def write_distribution_npy(path: PathLike, score: RoiScore) -> Path:
    """The (gh, gw) float32 distribution as a .npy file (loads with ``np.load``, no pickle)."""
    buffer = io.BytesIO()
    np.save(buffer, score.distribution.astype(np.float32), allow_pickle=False)
    return atomic.atomic_write(path, buffer.getvalue())


def write_score_outputs(out_dir: PathLike, score: RoiScore) -> dict[str, Path]:
    """All outputs of one RoI in ``out_dir``; returns {file name: path} in ``OUTPUT_FILES`` order."""
    out_dir = Path(out_dir)
    writers = {
        "prediction.json": write_prediction_json,
        "distribution.npy": write_distribution_npy,
        "regions.geojson": write_geojson,
        "regions.csv": write_regions_csv,
        "overlay.png": write_overlay_png,
    }
    return {name: writer(out_dir / name, score) for name, writer in writers.items()}

"""Exports of a real scoring run: GeoJSON for QuPath, CSV, prediction JSON, distribution, overlay PNG."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from scorenet import build_model, open_slide
from scorenet.export import (
    BOX_COLOR,
    CSV_COLUMNS,
    OUTPUT_FILES,
    heat_map,
    regions_geojson,
    render_overlay,
    write_geojson,
    write_overlay_png,
    write_prediction_json,
    write_regions_csv,
    write_score_outputs,
)
from scorenet.inference import score_rois
from small_model import SMALL, K

P = 128
CLASSES = ["stroma", "carcinoma"]


@pytest.fixture(scope="module")
def score(slides_dir):
    torch.manual_seed(0)
    model = build_model("scorenet_4_1", 2, **SMALL)
    with open_slide(slides_dir / "cmu_small_region.svs") as slide:
        (result,) = score_rois(model, slide, [(300, 500, 1000, 800)], mpp=2 * slide.mpp, class_names=CLASSES)
    return result


def test_geojson_round_trip_is_valid_for_qupath(score, tmp_path):
    path = write_geojson(tmp_path / "regions.geojson", score)
    with open(path) as fh:
        collection = json.load(fh)
    assert collection == json.loads(json.dumps(regions_geojson(score)))
    assert collection["type"] == "FeatureCollection"
    features = collection["features"]
    assert len(features) == K + 1
    for feature in features:
        assert feature["type"] == "Feature"
        assert set(feature) >= {"type", "geometry", "properties"}
        assert feature["geometry"]["type"] == "Polygon"
        (ring,) = feature["geometry"]["coordinates"]
        assert len(ring) == 5 and ring[0] == ring[-1]
        props = feature["properties"]
        assert props["objectType"] == "annotation"
        assert props["classification"]["name"] == score.predicted
        color = props["classification"]["color"]
        assert len(color) == 3 and all(isinstance(c, int) and 0 <= c <= 255 for c in color)
        assert all(isinstance(v, int | float) for v in props["measurements"].values())

    roi, regions = features[0], features[1:]
    x, y, w, h = score.roi
    (ring,) = roi["geometry"]["coordinates"]
    assert (min(p[0] for p in ring), min(p[1] for p in ring)) == (x, y)
    assert (max(p[0] for p in ring), max(p[1] for p in ring)) == (x + w, y + h)
    probabilities = [roi["properties"]["measurements"][f"probability {c}"] for c in CLASSES]
    np.testing.assert_allclose(probabilities, score.probabilities, rtol=1e-7)

    for rank, (feature, box, value) in enumerate(
        zip(regions, score.boxes_level0, score.scores, strict=True), 1
    ):
        (ring,) = feature["geometry"]["coordinates"]
        xs, ys = [p[0] for p in ring], [p[1] for p in ring]
        np.testing.assert_array_equal([min(xs), min(ys), max(xs), max(ys)], box)
        assert feature["properties"]["name"] == f"region {rank}"
        assert feature["properties"]["measurements"] == {"rank": rank, "score": pytest.approx(float(value))}


def test_regions_csv_round_trip(score, tmp_path):
    path = write_regions_csv(tmp_path / "regions.csv", score)
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == CSV_COLUMNS
        rows = list(reader)
    assert [int(r["rank"]) for r in rows] == list(range(1, K + 1))
    np.testing.assert_array_equal([float(r["score"]) for r in rows], score.scores.astype(float))
    boxes = [[float(r[c]) for c in ("x0", "y0", "x1", "y1")] for r in rows]
    np.testing.assert_array_equal(boxes, score.boxes_level0)


def test_prediction_json_round_trip(score, tmp_path):
    with open(write_prediction_json(tmp_path / "prediction.json", score)) as fh:
        prediction = json.load(fh)
    assert prediction["class_names"] == CLASSES
    np.testing.assert_allclose(prediction["probabilities"], score.probabilities, rtol=1e-7)
    assert prediction["predicted"] == CLASSES[int(np.argmax(prediction["probabilities"]))]
    assert prediction["roi"] == [300, 500, 1000, 800]
    assert prediction["mpp"] == pytest.approx(score.mpp) and prediction["scale"] == pytest.approx(0.5)
    assert prediction["distribution_box_level0"] == list(score.distribution_box_level0)
    assert prediction["grid"] == list(score.distribution.shape)


def test_heat_map_colours_each_region_by_its_share(score):
    heat = heat_map(score)
    assert heat.shape == score.image.shape
    inferno = cv2.applyColorMap(np.array([[0, 255]], np.uint8), cv2.COLORMAP_INFERNO)[0, :, ::-1]
    for cell, colour in (
        (score.distribution.argmin(), inferno[0]),
        (score.distribution.argmax(), inferno[1]),
    ):
        row, col = np.unravel_index(cell, score.distribution.shape)
        block = heat[row * P : (row + 1) * P, col * P : (col + 1) * P]
        assert np.all(block == colour)


def test_overlay_draws_the_boxes_over_the_blended_image(score, tmp_path):
    overlay = render_overlay(score)
    assert overlay.shape == score.image.shape and overlay.dtype == np.uint8
    assert not np.array_equal(overlay, score.image)
    for x0, y0, x1, y1 in np.round(score.boxes_image).astype(int):
        assert tuple(overlay[(y0 + y1) // 2, x0]) == BOX_COLOR  # middle of the left edge
        assert tuple(overlay[y1 - 1, (x0 + x1) // 2]) == BOX_COLOR  # middle of the bottom edge
    path = write_overlay_png(tmp_path / "overlay.png", score)
    np.testing.assert_array_equal(np.asarray(Image.open(path).convert("RGB")), overlay)


def test_write_score_outputs_writes_every_file_and_no_temporaries(score, tmp_path):
    out = tmp_path / "roi-1"
    paths = write_score_outputs(out, score)
    assert tuple(paths) == OUTPUT_FILES
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)
    assert all(paths[name] == out / name for name in OUTPUT_FILES)
    distribution = np.load(paths["distribution.npy"], allow_pickle=False)
    np.testing.assert_allclose(distribution, score.distribution, rtol=1e-6)
    assert distribution.sum() == pytest.approx(1.0, abs=1e-5)
    with open(paths["regions.geojson"]) as fh:
        assert len(json.load(fh)["features"]) == K + 1

"""Whole-slide scoring on the real TCGA slide: the tile plan, batched scoring, cancel, summary and files."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scorenet.concentration import concentration
from scorenet.demo_data import DEMO_MODEL_OVERRIDES
from scorenet.errors import ScoreNetInputError
from scorenet.inference import score_rois
from scorenet.jobs import Cancelled
from scorenet.model import build_model
from scorenet.resolution import LEVEL0, Resolution
from scorenet.slide import open_slide
from scorenet.slide_export import FILES, tiles_csv, tiles_geojson, write_slide_outputs
from scorenet.tissue import slide_tissue_mask
from scorenet.wsi import SlideScoringConfig, iter_score_slide, plan_tiles, score_slide

TCGA = "tcga-cr-7395-01a-01-ts1.svs"  # 4443 x 3567, tissue in the middle, white margins
NAMES = ["carcinoma", "stroma"]
SMALL = SlideScoringConfig(roi_size=(512, 512), batch_size=3, read_ahead=2)


@pytest.fixture(scope="module")
def slide(slides_dir: Path):
    with open_slide(slides_dir / TCGA) as opened:
        yield opened


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("scorenet_4_1", 2, **DEMO_MODEL_OVERRIDES).eval()


@pytest.fixture(scope="module")
def tissue(slide):
    return slide_tissue_mask(slide, SMALL.tissue)


@pytest.fixture(scope="module")
def scored(model, slide):
    return score_slide(model, slide, resolution=LEVEL0, class_names=NAMES, config=SMALL, device="cpu")


def test_plan_covers_the_tissue_inside_the_slide(slide, tissue) -> None:
    width, height = slide.dimensions
    plan = plan_tiles(slide, tissue, LEVEL0, SMALL)
    rois = np.array([roi for roi, _ in plan])
    assert (rois[:, 0] >= 0).all() and (rois[:, 1] >= 0).all()
    assert (rois[:, 0] + rois[:, 2] <= width).all() and (rois[:, 1] + rois[:, 3] <= height).all()
    assert {(w, h) for *_, w, h in rois} == {(512, 512)}
    # every planned RoI holds enough tissue; the grid's others do not
    assert all(share >= SMALL.min_tissue for _, share in plan)
    everything = plan_tiles(slide, tissue, LEVEL0, SlideScoringConfig(roi_size=(512, 512), min_tissue=0.0))
    skipped = [share for roi, share in everything if roi not in {r for r, _ in plan}]
    assert skipped and max(skipped) < SMALL.min_tissue
    # the last column is moved back inside: it ends at the slide's edge, overlapping its neighbour
    full = plan_tiles(
        slide, tissue, LEVEL0, SlideScoringConfig(roi_size=(512, 512), min_tissue=0.0, tissue=SMALL.tissue)
    )
    xs = sorted({x for (x, _, _, _), _ in full})
    assert xs[-1] == width - 512 and xs[:2] == [0, 512]


def test_overlap_and_scale_set_the_step_and_the_level0_size(slide, tissue) -> None:
    half = SlideScoringConfig(roi_size=(512, 512), overlap=0.5, min_tissue=0.0)
    xs = sorted({roi[0] for roi, _ in plan_tiles(slide, tissue, LEVEL0, half)})
    assert xs[:3] == [0, 256, 512]
    coarse = Resolution(0.25, None)  # 512 input pixels = 2048 level-0 pixels
    rois = [roi for roi, _ in plan_tiles(slide, tissue, coarse, SlideScoringConfig(roi_size=(512, 512)))]
    assert {(w, h) for *_, w, h in rois} == {(2048, 2048)}
    tiny = SlideScoringConfig(roi_size=(8192, 8192), min_tissue=0.0)
    assert [roi for roi, _ in plan_tiles(slide, tissue, LEVEL0, tiny)] == [(0, 0, *slide.dimensions)]


def test_every_tile_equals_scoring_its_roi_alone(scored, model, slide) -> None:
    assert scored.complete and len(scored.tiles) == len(scored.plan) > 10
    assert [t.index for t in scored.tiles] == list(range(len(scored.plan)))
    for tile in scored.tiles[::5]:  # batched with read-ahead, the same as one RoI at a time
        (alone,) = score_rois(model, slide, [tile.roi], class_names=NAMES, device="cpu")
        np.testing.assert_allclose(tile.probabilities, alone.probabilities, atol=1e-5)
        np.testing.assert_array_equal(tile.boxes_level0, alone.boxes_level0)
        assert tile.distribution.shape == alone.distribution.shape and tile.predicted == alone.predicted
        assert not hasattr(tile, "image")  # pixels are not kept: memory stays bounded


def test_summary_weighs_classes_by_tissue_area(scored) -> None:
    fractions = scored.class_fractions()
    assert sum(fractions.values()) == pytest.approx(1.0)
    area = {
        name: sum(t.tissue * t.roi[2] * t.roi[3] for t in scored.tiles if t.predicted == name)
        for name in NAMES
    }
    total = sum(area.values())
    assert fractions == pytest.approx({name: area[name] / total for name in NAMES})
    top = scored.top_rois(3)
    for c, name in enumerate(NAMES):
        probabilities = [entry["probability"] for entry in top[name]]
        assert probabilities == sorted(probabilities, reverse=True)
        assert probabilities[0] == pytest.approx(max(float(t.probabilities[c]) for t in scored.tiles))


def test_progress_streams_tiles_and_cancel_keeps_what_is_done(model, slide) -> None:
    job = iter_score_slide(model, slide, resolution=LEVEL0, class_names=NAMES, config=SMALL, device="cpu",
                           should_stop=lambda: len(seen) >= 2)  # fmt: skip
    seen = []
    with pytest.raises(Cancelled) as cancelled:
        for event in job:
            seen.append(event)
    planned, first = seen
    assert (
        planned.info["stage"] == "planned"
        and planned.done == 0
        and planned.total == len(planned.info["plan"])
    )
    assert first.info["stage"] == "scored" and [t.index for t in first.info["tiles"]] == [0, 1, 2]
    partial = cancelled.value.partial
    assert [t.index for t in partial.tiles] == [0, 1, 2] and not partial.complete


def test_files_of_a_slide(scored, tmp_path: Path) -> None:
    written = write_slide_outputs(tmp_path / "slide", scored, per_class=2)
    assert sorted(written) == sorted(FILES)
    # summary.json is written last: its presence means the other files are complete
    assert max(p.stat().st_mtime_ns for p in written.values()) == written["summary.json"].stat().st_mtime_ns
    features = json.loads(written["tiles.geojson"].read_text())["features"]
    assert len(features) == len(scored.tiles) == tiles_geojson(scored)["features"].__len__()
    first = features[0]["properties"]
    assert first["objectType"] == "detection" and set(first["measurements"]) == {
        "probability carcinoma", "probability stroma", "tissue",
    }  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(tiles_csv(scored))))
    assert [int(r["index"]) for r in rows] == [t.index for t in scored.tiles]
    assert float(rows[0]["p_stroma"]) == pytest.approx(float(scored.tiles[0].probabilities[1]))
    c = concentration(scored.tiles[0].distribution, 4)
    assert float(rows[0]["effective_regions"]) == pytest.approx(c["effective_regions"])
    assert float(rows[0]["max_over_min"]) == pytest.approx(c["max_over_min"])
    arrays = np.load(written["tiles.npz"], allow_pickle=False)
    assert arrays["boxes"].shape == (len(scored.tiles), 4, 4) and arrays["distributions"].ndim == 3
    np.testing.assert_array_equal(arrays["rois"], [t.roi for t in scored.tiles])
    summary = json.loads(written["summary.json"].read_text())
    assert summary["rois_scored"] == len(scored.tiles) and summary["complete"]
    assert len(summary["top_rois"]["carcinoma"]) == 2


def test_bad_options_are_one_line_errors(model, slide) -> None:
    for bad in (
        SlideScoringConfig(overlap=0.95),
        SlideScoringConfig(min_tissue=2.0),
        SlideScoringConfig(batch_size=0),
    ):
        with pytest.raises(ScoreNetInputError):
            score_slide(model, slide, resolution=LEVEL0, class_names=NAMES, config=bad)
    with pytest.raises(ScoreNetInputError, match="3 class names"):
        score_slide(model, slide, resolution=LEVEL0, class_names=["a", "b", "c"], config=SMALL)

"""Padding is never silent: RoIs moved inside the slide, padded share reported, padding not recommended."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scorenet.checkpoint import save_checkpoint
from scorenet.cli import main
from scorenet.demo_data import DEMO_MODEL_OVERRIDES
from scorenet.inference import MAX_REGION_PADDING, score_rois
from scorenet.model import build_model
from scorenet.slide import open_slide

TCGA = "tcga-cr-7395-01a-01-ts1.svs"  # 4443 x 3567


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    model = build_model("scorenet_4_1", 2, **DEMO_MODEL_OVERRIDES).eval()  # P_h = 64, K = 4
    real_score = model.score

    def drawn_to_white(fitted):
        """The worst case: a scorer that puts its mass on the brightest regions, the white padding."""
        cls, _ = real_score(fitted)
        p = model.config.region_size
        brightness = torch.nn.functional.avg_pool2d(fitted.float(), p).mean(1).flatten(1) / 255
        return cls, (40 * brightness).softmax(-1)

    model.score = drawn_to_white
    return model


def _inside_share(score, box) -> float:
    """Share of a region inside the slide: boxes are clipped to it, regions are whole grid cells."""
    x0, y0, x1, y1 = score.distribution_box_level0
    gh, gw = score.distribution.shape
    return (box[2] - box[0]) * (box[3] - box[1]) / ((x1 - x0) / gw * (y1 - y0) / gh)


def test_forward_avoids_marked_regions_while_others_remain(model) -> None:
    images = torch.randint(0, 256, (1, 3, 256, 256), dtype=torch.uint8)  # a 4 x 4 grid
    with torch.inference_mode():
        plain = model(images)
        avoid = torch.zeros(1, 4, 4, dtype=torch.bool)
        avoid.view(-1)[plain.indices[0]] = True  # avoid exactly the regions it chose
        steered = model(images, avoid=avoid)
    assert not set(plain.indices[0].tolist()) & set(steered.indices[0].tolist())
    torch.testing.assert_close(plain.distribution, steered.distribution)  # the evidence is unchanged


def test_an_roi_over_the_edge_is_moved_inside_the_slide(model, slides_dir: Path) -> None:
    with open_slide(slides_dir / TCGA) as slide:
        (score,) = score_rois(model, slide, [(-100, 1700, 512, 512)], device="cpu")
    assert score.distribution_box_level0[0] == 0.0 and score.padded_fraction == 0.0
    assert score.image.min() < 200  # tissue, not the white padding it used to get


def test_an_roi_wider_than_the_slide_reports_padding_and_recommends_none_of_it(model, slides_dir) -> None:
    with open_slide(slides_dir / TCGA) as slide:
        width, height = slide.dimensions
        (score,) = score_rois(model, slide, [(0, 1500, width + 1000, 256)], device="cpu")
    x0, _, x1, _ = score.distribution_box_level0
    assert score.padded_fraction == pytest.approx(1 - width / (x1 - x0), abs=0.01)
    # the row holds more than K regions inside the slide: none recommended is mostly padding
    for box in score.boxes_level0:
        assert box[0] >= 0 and box[2] <= width
        assert _inside_share(score, box) > 1 - MAX_REGION_PADDING


def test_an_image_smaller_than_a_region(model, tiles_dir: Path, tmp_path: Path, caplog) -> None:
    tile = next(p for p in sorted(tiles_dir.iterdir()) if p.suffix.lower() in (".png", ".jpg", ".tif"))
    small = tmp_path / "small.png"
    Image.open(tile).convert("RGB").crop((0, 0, 60, 50)).save(small)
    with open_slide(small) as slide:
        (score,) = score_rois(model, slide, [(0, 0, 60, 50)], device="cpu")
    # a grid of at least K = 4 regions of 64 x 64 around a 60 x 50 image: mostly padding, all reported
    x0, y0, x1, y1 = score.distribution_box_level0
    assert score.padded_fraction == pytest.approx(1 - 60 * 50 / ((x1 - x0) * (y1 - y0)), abs=1e-6)
    assert score.padded_fraction > 0.8
    assert (score.boxes_level0[:, [0, 1]] >= 0).all()
    assert (score.boxes_level0[:, 2] <= 60).all() and (score.boxes_level0[:, 3] <= 50).all()
    ckpt = tmp_path / "tiny.safetensors"
    save_checkpoint(model, ckpt, ["carcinoma", "stroma"])
    with caplog.at_level(logging.WARNING):
        assert main(["score", str(small), "--checkpoint", str(ckpt), "--out", str(tmp_path / "out"),
                     "--device", "cpu"]) == 0  # fmt: skip
    percent = f"{100 * score.padded_fraction:.0f} % white padding"
    assert any(percent in r.getMessage() and "small.png" in r.getMessage() for r in caplog.records)
    prediction = json.loads((tmp_path / "out" / "prediction.json").read_text())
    assert prediction["padded_fraction"] == pytest.approx(score.padded_fraction)
    assert set(prediction["concentration"]) == {"max_over_min", "topk_mass", "effective_regions"}


def test_regions_mostly_padding_come_last(model, slides_dir: Path) -> None:
    with open_slide(slides_dir / TCGA) as slide:
        width, height = slide.dimensions
        # one row of regions, wider than the slide: it holds padding regions on both ends
        (score,) = score_rois(model, slide, [(0, 1500, width + 2000, 64)], device="cpu")
    mostly_padding = [_inside_share(score, b) < 1 - MAX_REGION_PADDING for b in score.boxes_level0]
    assert mostly_padding == sorted(mostly_padding)  # any padding region is ranked after the others
    kept = score.scores[~np.array(mostly_padding)]
    assert kept.size and np.all(np.diff(kept) <= 0)

"""Scoring RoIs of the real slides: probabilities, region boxes mapped back to level 0, errors, cancel."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scorenet import build_model, inference, open_slide, read_roi
from scorenet.errors import ScoreNetInputError
from scorenet.inference import check_roi, iter_score_rois, resolve_device, score_rois
from scorenet.jobs import Cancelled, Progress
from small_model import SMALL, K

P = 128


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("scorenet_4_1", 2, **SMALL).eval()


@pytest.fixture(scope="module")
def tcga(slides_dir):
    with open_slide(slides_dir / "tcga-cr-7395-01a-01-ts1.svs") as slide:
        yield slide


@pytest.fixture(scope="module")
def cmu(slides_dir):
    with open_slide(slides_dir / "cmu_small_region.svs") as slide:
        yield slide


def gathered_regions(model, run):
    """Run ``run()`` and return the regions the local ViT received, as uint8 (B*K, P, P, 3)."""
    seen = []

    def keep(_, args, kwargs):
        scale, shift = kwargs.get("pixel_affine") or (torch.ones(3), torch.zeros(3))
        seen.append(args[0] * scale.view(1, 3, 1, 1) + shift.view(1, 3, 1, 1))  # what the ViT normalised

    hook = model.local_vit.register_forward_pre_hook(keep, with_kwargs=True)
    try:
        result = run()
    finally:
        hook.remove()
    regions = seen[0] * model.std + model.mean  # undo the model's normalisation
    return result, (regions * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def crops_at(score, slide, mpp):
    """Each box read afresh from the slide at its level-0 rectangle, and cut from the model input."""
    fresh, cut = [], []
    for box, box_image in zip(score.boxes_level0, score.boxes_image, strict=True):
        x0, y0, x1, y1 = np.round(box).astype(int)
        width, height = slide.dimensions
        if x0 >= width or y0 >= height or x1 <= 0 or y1 <= 0:  # read_roi refuses it; it is padding
            fresh.append(np.full_like(score.image[: y1 - y0, : x1 - x0], 255))
        else:
            fresh.append(read_roi(slide, x0, y0, x1 - x0, y1 - y0, mpp=mpp).image)
        a0, b0, a1, b1 = np.round(box_image).astype(int)
        cut.append(score.image[b0:b1, a0:a1])
    return fresh, cut


def row_major(score):
    """Rank order -> the model's (row-major grid) order of the regions."""
    return np.lexsort((score.boxes_level0[:, 0], score.boxes_level0[:, 1]))


def test_roi_on_tcga_gives_probabilities_and_k_boxes_where_the_model_looked(model, tcga):
    roi = (1500, 1200, 4 * P, 3 * P)
    (score,), regions = gathered_regions(
        model, lambda: score_rois(model, tcga, [roi], class_names=["a", "b"])
    )
    assert score.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert score.predicted == ["a", "b"][int(score.probabilities.argmax())]
    assert score.distribution.shape == (3, 4)
    assert score.distribution.sum() == pytest.approx(1.0, abs=1e-5)
    assert score.distribution_box_level0 == (1500, 1200, 1500 + 4 * P, 1200 + 3 * P)
    assert score.image.shape == (3 * P, 4 * P, 3) and score.scale == 1.0
    assert list(score.ranks) == list(range(1, K + 1))
    assert np.all(np.diff(score.scores) <= 0)
    np.testing.assert_allclose(score.scores, np.sort(score.distribution.ravel())[::-1][:K], rtol=1e-6)
    boxes = score.boxes_level0
    assert boxes.shape == (K, 4)
    assert np.all(boxes[:, :2] >= (1500, 1200)) and np.all(boxes[:, 2:] <= (1500 + 4 * P, 1200 + 3 * P))
    np.testing.assert_array_equal(boxes[:, 2:] - boxes[:, :2], P)
    fresh, cut = crops_at(score, tcga, None)
    for a, b in zip(fresh, cut, strict=True):
        np.testing.assert_array_equal(a, b)
    # the pixels the local ViT classified are the slide's pixels inside the boxes
    assert regions.shape == (K, P, P, 3)
    for region, rank in zip(regions, row_major(score), strict=True):
        assert np.abs(region.astype(int) - fresh[rank]).max() <= 1


def test_coarser_mpp_maps_back_at_half_scale(model, cmu):
    mpp = 2 * cmu.mpp
    roi = (300, 500, 4 * 2 * P, 3 * 2 * P)
    (score,) = score_rois(model, cmu, [roi], mpp=mpp)
    assert score.scale == pytest.approx(0.5)
    assert score.mpp == pytest.approx(mpp)
    assert score.image.shape == (3 * P, 4 * P, 3)
    assert score.distribution_box_level0 == (300, 500, 300 + 8 * P, 500 + 6 * P)
    np.testing.assert_array_equal(score.boxes_level0[:, 2:] - score.boxes_level0[:, :2], 2 * P)
    fresh, cut = crops_at(score, cmu, mpp)
    for a, b in zip(fresh, cut, strict=True):
        np.testing.assert_array_equal(a, b)


def test_roi_off_the_grid_is_snapped_about_its_centre(model, tcga):
    roi = (1000, 1000, 500, 400)  # 3.9 x 3.1 regions -> 4 x 3
    (score,) = score_rois(model, tcga, [roi])
    x0, y0, x1, y1 = score.distribution_box_level0
    assert (x1 - x0, y1 - y0) == (4 * P, 3 * P)
    assert (x0 + x1) / 2 == pytest.approx(1000 + 250, abs=0.5)
    assert (y0 + y1) / 2 == pytest.approx(1000 + 200, abs=0.5)
    np.testing.assert_array_equal(score.image, read_roi(tcga, 994, 1008, 4 * P, 3 * P).image)
    assert np.all(score.boxes_level0[:, :2] >= (x0, y0)) and np.all(score.boxes_level0[:, 2:] <= (x1, y1))


def test_finer_mpp_than_the_slide_upsamples_and_maps_back(model, cmu):
    mpp = cmu.mpp / 1.5
    roi = (700, 900, 301, 333)  # 451 x 500 at 1.5x -> 4 x 4 regions
    (score,) = score_rois(model, cmu, [roi], mpp=mpp)
    assert score.scale == pytest.approx(1.5) and score.image.shape == (4 * P, 4 * P, 3)
    x0, y0, x1, y1 = score.distribution_box_level0
    assert (x1 - x0) * 1.5 == pytest.approx(4 * P, abs=1) and (y1 - y0) * 1.5 == pytest.approx(4 * P, abs=1)
    assert (x0 + x1) / 2 == pytest.approx(700 + 301 / 2, abs=1)
    np.testing.assert_allclose(score.boxes_level0[:, 2:] - score.boxes_level0[:, :2], P / 1.5, atol=0.5)
    np.testing.assert_allclose(score.boxes_image % P, 0, atol=1e-3)


def test_roi_smaller_than_k_regions_reads_k_whole_regions(model, tcga):
    (score,) = score_rois(model, tcga, [(2000, 2000, 100, 100)])
    gh, gw = score.distribution.shape
    assert gh * gw >= K
    x0, y0, x1, y1 = score.distribution_box_level0
    assert (x1 - x0, y1 - y0) == (gw * P, gh * P)
    fresh, cut = crops_at(score, tcga, None)
    for a, b in zip(fresh, cut, strict=True):
        np.testing.assert_array_equal(a, b)


def test_roi_partly_outside_the_slide_is_moved_inside(model, tcga):
    width, height = tcga.dimensions
    roi = (width - 2 * P, -P, 4 * P, 3 * P)
    (score,) = score_rois(model, tcga, [roi])
    # the grid-fitted RoI fits in the slide: it is moved in, and scored on slide pixels, not padding
    assert score.distribution_box_level0 == (width - 4 * P, 0, width, 3 * P) and score.padded_fraction == 0
    inside = tcga.read_region((width - 4 * P, 0), 0, (4 * P, 3 * P))
    np.testing.assert_array_equal(score.image, inside)
    fresh, cut = crops_at(score, tcga, None)
    for a, b in zip(fresh, cut, strict=True):
        np.testing.assert_array_equal(a, b)


def test_equal_sizes_share_a_batch_and_results_keep_the_input_order(model, tcga):
    rois = [(500, 500, 2 * P, 2 * P), (1000, 1000, 3 * P, 2 * P), (2500, 1500, 2 * P, 2 * P)]
    calls = []
    record = lambda e: calls.append((e.info["stage"], e.done, e.total))  # noqa: E731
    scores = score_rois(model, tcga, rois, progress=record)
    assert [s.roi for s in scores] == rois
    # the two 256 x 256 RoIs in one forward pass; each RoI counts once read and once scored
    assert calls == [("read", 2, 6), ("scored", 4, 6), ("read", 5, 6), ("scored", 6, 6)]
    (alone,) = score_rois(model, tcga, [rois[2]])
    np.testing.assert_allclose(scores[2].probabilities, alone.probabilities, atol=1e-5)
    np.testing.assert_array_equal(scores[2].boxes_level0, alone.boxes_level0)


def test_a_group_larger_than_the_batch_limit_is_split(model, tcga, monkeypatch):
    monkeypatch.setattr(inference, "BATCH_PIXELS", 2 * (2 * P) ** 2)
    rois = [(500 + 300 * i, 500, 2 * P, 2 * P) for i in range(5)]
    calls = []
    scores = score_rois(model, tcga, rois, progress=lambda event: calls.append(event.done))
    assert calls == [2, 4, 6, 8, 9, 10]
    assert [s.roi for s in scores] == rois


def test_should_stop_cancels_between_batches_and_restores_the_mode(model, tcga):
    rois = [(500, 500, 2 * P, 2 * P), (1000, 1000, 3 * P, 2 * P)]
    calls = []
    model.train()
    try:
        with pytest.raises(Cancelled) as cancelled:
            score_rois(
                model,
                tcga,
                rois,
                progress=lambda event: calls.append(event.done),
                should_stop=lambda: len(calls) >= 2,
            )
        assert model.training
    finally:
        model.eval()
    assert calls == [1, 2]  # the first RoI read and scored, then the stop before the second read
    assert [score.roi for score in cancelled.value.partial] == [rois[0]]


def test_the_generator_yields_one_event_type_and_returns_the_scores(model, tcga):
    job = iter_score_rois(model, tcga, [(500, 500, 2 * P, 2 * P)])
    events = []
    while True:
        try:
            events.append(next(job))
        except StopIteration as stop:
            (score,) = stop.value
            break
    assert all(isinstance(e, Progress) and e.job == "score" for e in events)
    assert [e.fraction for e in events] == [0.5, 1.0] and score.roi == (500, 500, 2 * P, 2 * P)


def test_check_roi_refuses_bad_rois_naming_the_slide(tcga, cmu):
    width, height = tcga.dimensions
    with pytest.raises(ScoreNetInputError, match=r"tcga-cr-7395.*size must be positive"):
        check_roi(tcga, (0, 0, 0, 100), None)
    with pytest.raises(ScoreNetInputError, match=r"tcga-cr-7395.*entirely outside"):
        check_roi(tcga, (width, 0, 100, 100), None)
    with pytest.raises(ScoreNetInputError, match=r"entirely outside"):
        check_roi(tcga, (-100, -100, 100, 100), None)
    with pytest.raises(
        ScoreNetInputError, match=r"cmu_small_region.*2000 x 2000.*4,000,000.*1,000,000.*coarser"
    ):
        check_roi(cmu, (0, 0, 2000, 2000), None, max_pixels=1_000_000)
    check_roi(cmu, (0, 0, 2000, 2000), 2 * cmu.mpp, max_pixels=1_000_000)  # 1000 x 1000 fits
    check_roi(tcga, (-100, -100, 101, 101), None)  # one pixel inside is enough
    with pytest.raises(ScoreNetInputError, match=r"tcga-cr-7395.*no pixel size"):
        check_roi(tcga, (0, 0, 100, 100), 1.0)


def test_tiny_roi_at_a_very_coarse_mpp_is_refused_before_a_huge_read(model, cmu):
    # 20 x 20 output pixels grow to 2 x 2 regions: 25,600 level-0 pixels a side on a slide without pyramid
    check_roi(cmu, (0, 0, 2000, 2000), 100 * cmu.mpp)
    with pytest.raises(ScoreNetInputError, match=r"cmu_small_region.*pixels read from level 0"):
        score_rois(model, cmu, [(0, 0, 2000, 2000)], mpp=100 * cmu.mpp)


def test_score_rois_checks_every_roi_before_reading(model, tcga):
    with pytest.raises(ScoreNetInputError, match="entirely outside"):
        score_rois(model, tcga, [(0, 0, 256, 256), (10**6, 0, 256, 256)], progress=pytest.fail)
    with pytest.raises(ScoreNetInputError, match="3 class names"):
        score_rois(model, tcga, [(0, 0, 256, 256)], class_names=["a", "b", "c"])


def test_resolve_device():
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ScoreNetInputError, match="unknown device"):
        resolve_device("tpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ScoreNetInputError, match="CUDA is not available"):
            resolve_device("cuda")
    if not torch.backends.mps.is_available():
        with pytest.raises(ScoreNetInputError, match="MPS is not available"):
            resolve_device("mps")

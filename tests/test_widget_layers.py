"""The layers of a scored RoI are updated in place when the same RoI is scored again, and then show
exactly the new result (boxes, labels, features, distribution, scale)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scorenet.demo_data import DEMO_MODEL_OVERRIDES
from scorenet.inference import score_rois
from scorenet.model import build_model
from scorenet.slide import open_slide

from napari_scorenet._widgets._layers import show_score, times_uniform_log2

ROI = (300, 500, 640, 512)  # x, y, w, h level 0, tissue of the CMU slide


def _model(seed: int, **overrides):
    torch.manual_seed(seed)
    return build_model("scorenet_4_1", 2, **{**DEMO_MODEL_OVERRIDES, **overrides}).eval()


def _boxes(layer) -> np.ndarray:
    """(x0, y0, x1, y1) of each rectangle of a Shapes layer."""
    return np.array([[s[:, 1].min(), s[:, 0].min(), s[:, 1].max(), s[:, 0].max()] for s in layer.data])


def _assert_shows(dist_layer, regions, score) -> None:
    np.testing.assert_array_equal(dist_layer.data, times_uniform_log2(score.distribution))
    x0, y0, x1, y1 = score.distribution_box_level0
    np.testing.assert_allclose(dist_layer.data_to_world((-0.5, -0.5)), (y0, x0), atol=1e-6)
    assert set(regions.shape_type) == {"rectangle"} and regions.nshapes == len(score.scores)
    np.testing.assert_allclose(_boxes(regions), score.boxes_level0, atol=1e-6)
    np.testing.assert_allclose(regions.features["score"], score.scores)
    assert list(regions.features["rank"]) == list(score.ranks)
    side = min(np.diff(np.asarray(score.distribution_box_level0).reshape(2, 2), axis=0)[0]
               / np.array(score.distribution.shape[::-1]))  # fmt: skip
    assert regions.text.size == pytest.approx(0.3 * side)
    assert list(regions.text.values) == [str(r) for r in score.ranks]


@pytest.mark.parametrize(
    ("second", "mpp_factor"),
    [({}, 1.0), ({"top_k": 12}, 1.0), ({}, 2.0)],
    ids=["other weights", "other K", "coarser resolution"],
)
def test_scoring_the_same_roi_again_updates_its_layers_in_place(
    make_napari_viewer, slides_dir, second, mpp_factor
):
    viewer = make_napari_viewer()
    with open_slide(slides_dir / "cmu_small_region.svs") as slide:
        (first,) = score_rois(_model(0), slide, [ROI])
        (again,) = score_rois(_model(1, **second), slide, [ROI], mpp=slide.mpp * mpp_factor)
    dist_layer, regions = show_score(viewer, first)
    _assert_shows(dist_layer, regions, first)
    n_layers = len(viewer.layers)
    before = _boxes(regions)
    assert before.shape != again.boxes_level0.shape or not np.allclose(before, again.boxes_level0)
    dist_layer2, regions2 = show_score(viewer, again)
    assert dist_layer2 is dist_layer and regions2 is regions and len(viewer.layers) == n_layers
    _assert_shows(dist_layer, regions, again)


@pytest.mark.parametrize("proxied", [False, True], ids=["viewer", "menu-opened widget's proxy"])
def test_scored_rois_share_one_colour_bar_passed_on_when_its_holder_goes(
    make_napari_viewer, slides_dir, proxied
):
    """Every RoI's distribution is on the same fixed scale: one bar, on the first visible such layer,
    whatever the user does to the layers (hide, remove, add back, move); a widget opened from the
    Plugins menu gets napari's PublicOnlyProxy of the viewer, whose layer list is a new proxy each time."""
    from napari.utils._proxies import PublicOnlyProxy

    real = make_napari_viewer()
    viewer = PublicOnlyProxy(real) if proxied else real
    model = _model(0)
    handlers = len(real.layers.events.removed.callbacks)
    rois = [ROI, (ROI[0] + 700, ROI[1], 640, 512), (ROI[0], ROI[1] + 600, 640, 512)]
    with open_slide(slides_dir / "cmu_small_region.svs") as slide:
        scores = score_rois(model, slide, rois)
    dists = [show_score(viewer, score)[0] for score in scores]
    dists = [real.layers[d.name] for d in dists]  # the layers themselves, not proxies
    assert len({d.name for d in dists}) == 3
    assert len(real.layers.events.removed.callbacks) == handlers + 1  # connected once, not per RoI

    def bars():
        return [d.colorbar.visible for d in real.layers if d in dists]

    assert bars() == [True, False, False]
    dists[0].visible = False
    assert bars() == [False, True, False]
    real.layers.remove(dists[1])
    assert bars() == [False, True] and dists[2].colorbar.visible  # passed on to the last visible one
    dists[0].visible = True
    assert bars() == [True, False]
    real.layers.insert(0, dists[1])  # added back first (a script, say): it takes the one bar
    assert bars() == [True, False, False] and dists[1].colorbar.visible
    real.layers.move(0, len(real.layers))  # moved to the top of the list: the bar follows the order
    assert bars() == [True, False, False] and dists[0].colorbar.visible and not dists[1].colorbar.visible
    # re-scoring an RoI updates its layer in place: still one bar
    show_score(viewer, scores[2])
    assert sum(bars()) == 1

"""ScoreMix preview widget on two RoIs of the real TCGA slide and on two image layers."""

from __future__ import annotations

import numpy as np
import pytest
from scorenet.checkpoint import save_checkpoint
from scorenet.demo_data import DEMO_MODEL_OVERRIDES
from scorenet.model import build_model
from scorenet.slide import read_roi

from napari_scorenet._reader import slide_layer_data
from napari_scorenet._widgets import scoremix_preview
from napari_scorenet._widgets.scoremix_preview import (
    BOXES_NAME,
    LABELS_NAME,
    LAYER_NAME,
    PANEL_NAMES,
    ScoreMixPreviewWidget,
)

SLIDE = "tcga-cr-7395-01a-01-ts1.svs"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    model = build_model("scorenet_4_1", 2, **DEMO_MODEL_OVERRIDES).eval()
    # trained at 0.5 um/px: the TCGA slide records no pixel size, so RoIs are read at level 0 (as Score RoI)
    save_checkpoint(model, path, ["a", "b"], metadata={"mpp": 0.5})
    return path


@pytest.mark.parametrize("method", ["ScoreMix", "CutMix", "SaliencyMix"])
def test_mix_two_rois(make_napari_viewer, qtbot, slides_dir, checkpoint, method, monkeypatch):
    errors: list[str] = []
    monkeypatch.setattr(scoremix_preview, "show_error", errors.append)
    viewer = make_napari_viewer()
    data, kwargs, _ = slide_layer_data(slides_dir / SLIDE)
    viewer.add_image(data, **kwargs)
    rois = [(2000, 1500, 512, 384), (3000, 1500, 512, 384)]
    viewer.add_shapes([np.array([[y, x], [y + h, x + w]]) for x, y, w, h in rois], shape_type="rectangle")
    widget = ScoreMixPreviewWidget(viewer)
    widget.checkpoint.setText(str(checkpoint))
    widget.method.setCurrentText(method)
    widget.lam.setValue(0.75)
    widget.mix_button.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=30_000)
    assert not errors
    mixed = viewer.layers[LAYER_NAME].data
    target = read_roi(slides_dir / SLIDE, *rois[1]).image
    source = read_roi(slides_dir / SLIDE, *rois[0]).image
    assert mixed.shape == target.shape
    x0, y0, x1, y1 = widget.result.paste_boxes[0].tolist()
    c0, r0, c1, r1 = widget.result.cut_boxes[0].tolist()
    # outside the paste box the target is untouched; inside it holds the cut from the source
    outside = np.ones(mixed.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(mixed[outside], target[outside])
    np.testing.assert_array_equal(mixed[y0:y1, x0:x1], source[r0:r1, c0:c1])
    kept = 1 - (x1 - x0) * (y1 - y0) / (mixed.shape[0] * mixed.shape[1])
    assert float(widget.result.lam[0]) == pytest.approx(kept, abs=1e-6)
    assert float(widget.result.labels[0].sum()) == pytest.approx(1.0, abs=1e-5)
    assert "mixed label" in widget.label.text() and "λ used" in widget.label.text()
    # source, target and mixed side by side, right of the slide, none overlapping another
    panels = [viewer.layers[name] for name in PANEL_NAMES]
    np.testing.assert_array_equal(panels[0].data, source)
    np.testing.assert_array_equal(panels[1].data, target)
    extents = [ly.extent.world for ly in panels]  # [[y0, x0], [y1, x1]]
    slide_right = viewer.layers[0].extent.world[1][-1]
    assert extents[0][0][1] >= slide_right
    assert extents[0][1][1] < extents[1][0][1] and extents[1][1][1] < extents[2][0][1]
    # the cut box on the source panel, the paste box on the mixed panel, in their own pixels
    cut_rect, paste_rect = (np.asarray(r) for r in viewer.layers[BOXES_NAME].data)
    sy, sx = panels[0].translate
    my, mx = panels[2].translate
    np.testing.assert_allclose(cut_rect.min(0), [r0 + sy, c0 + sx])
    np.testing.assert_allclose(cut_rect.max(0), [r1 + sy, c1 + sx])
    np.testing.assert_allclose(paste_rect.min(0), [y0 + my, x0 + mx])
    np.testing.assert_allclose(paste_rect.max(0), [y1 + my, x1 + mx])
    # titles sit above the panels, outside their pixels
    titles = viewer.layers[LABELS_NAME]
    assert (titles.data[:, 0] < 0).all()
    assert list(titles.features["title"]) == ["source: cut box", "target", "mixed: paste box"]


def test_missing_sources_notify(make_napari_viewer, monkeypatch):
    errors: list[str] = []
    monkeypatch.setattr(scoremix_preview, "show_error", errors.append)
    widget = ScoreMixPreviewWidget(make_napari_viewer())
    widget.mix_button.click()
    assert "two image layers" in errors[-1] and widget.worker is None

"""Score RoI widget: the full click path on the real TCGA slide, exports, cancel and error notifications."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scorenet.checkpoint import save_checkpoint
from scorenet.demo_data import DEMO_MODEL_OVERRIDES
from scorenet.model import build_model

from napari_scorenet._reader import slide_layer_data
from napari_scorenet._widgets import score_roi
from napari_scorenet._widgets._layers import camera
from napari_scorenet._widgets.score_roi import ScoreRoIWidget

ROI = (2000, 1500, 700, 500)  # x, y, w, h level 0, inside tissue of the TCGA slide


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    model = build_model("scorenet_4_1", 3, **DEMO_MODEL_OVERRIDES).eval()
    save_checkpoint(model, path, ["benign", "in situ", "invasive"])
    return path


@pytest.fixture
def errors(monkeypatch):
    seen: list[str] = []
    monkeypatch.setattr(score_roi, "show_error", seen.append)
    return seen


def _widget(viewer, slides_dir, checkpoint, rois=(ROI,)):
    data, kwargs, _ = slide_layer_data(slides_dir / "tcga-cr-7395-01a-01-ts1.svs")
    viewer.add_image(data, **kwargs)
    rects = [np.array([[y, x], [y + h, x + w]]) for x, y, w, h in rois]
    viewer.add_shapes(rects, shape_type="rectangle", name="RoIs")
    widget = ScoreRoIWidget(viewer)
    widget.checkpoint.setText(str(checkpoint))
    widget.device.setCurrentText("cpu")
    return widget


def _score(qtbot, widget):
    widget.score_button.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)


def test_click_path_layers_and_rerun(make_napari_viewer, qtbot, slides_dir, checkpoint, errors, tmp_path):
    viewer = make_napari_viewer()
    widget = _widget(viewer, slides_dir, checkpoint)
    _score(qtbot, widget)
    assert not errors
    (score,) = widget.results
    dist_layer = next(ly for ly in viewer.layers if ly.name.endswith("distribution"))
    regions = next(ly for ly in viewer.layers if " regions (" in ly.name)
    assert dist_layer.data.shape == score.distribution.shape
    # the distribution layer covers exactly the grid box in level-0 coordinates
    x0, y0, x1, y1 = score.distribution_box_level0
    corner = np.asarray(dist_layer.data_to_world((-0.5, -0.5)))
    far = np.asarray(dist_layer.data_to_world(np.array(dist_layer.data.shape) - 0.5))
    np.testing.assert_allclose(corner, (y0, x0), atol=1e-6)
    np.testing.assert_allclose(far, (y1, x1), atol=1e-6)
    k = DEMO_MODEL_OVERRIDES["top_k"]
    assert len(regions.data) == k and list(regions.features["rank"]) == list(range(1, k + 1))
    boxes = np.array([[s[:, 1].min(), s[:, 0].min(), s[:, 1].max(), s[:, 0].max()] for s in regions.data])
    x, y, w, h = score.roi
    assert (boxes[:, 0] >= x0 - 1e-6).all() and (boxes[:, 2] <= x1 + 1e-6).all()
    assert (boxes[:, 1] >= y0 - 1e-6).all() and (boxes[:, 3] <= y1 + 1e-6).all()
    assert abs(x0 - x) < w and abs(y0 - y) < h
    assert score.predicted in regions.name
    assert score.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert widget.classes.count() == 3
    n_layers = len(viewer.layers)
    _score(qtbot, widget)
    assert len(viewer.layers) == n_layers

    # clicking a region zooms the camera onto it
    widget.region_list.setCurrentRow(1)
    bx0, by0, bx1, by1 = score.boxes_level0[1]
    np.testing.assert_allclose(camera(viewer).center[-2:], ((by0 + by1) / 2, (bx0 + bx1) / 2))

    # so does selecting a region in its Shapes layer
    regions.selected_data = {2}
    bx0, by0, bx1, by1 = boxes[2]
    np.testing.assert_allclose(camera(viewer).center[-2:], ((by0 + by1) / 2, (bx0 + bx1) / 2))

    out = widget.export("geojson", tmp_path / "regions.geojson")
    features = json.loads(out.read_text())["features"]
    got = np.array([np.array(f["geometry"]["coordinates"][0]) for f in features])
    got_boxes = np.stack([got[..., 0].min(1), got[..., 1].min(1), got[..., 0].max(1), got[..., 1].max(1)], 1)
    # the collection also holds the RoI itself; every region box must come back
    for box in boxes:
        assert np.abs(got_boxes - box).max(axis=1).min() <= 0.5
    assert widget.export("csv", tmp_path / "regions.csv").read_text().count("\n") >= k + 1


def test_cancel_shows_no_result(make_napari_viewer, qtbot, slides_dir, checkpoint, errors, monkeypatch):
    viewer = make_napari_viewer()
    widget = _widget(viewer, slides_dir, checkpoint, rois=(ROI, (3000, 1500, 700, 500)))
    real = score_roi.iter_score_rois

    def pressed_cancel_at_start(*args, **kwargs):
        widget.cancel()  # as if Cancel were clicked while the worker starts
        return real(*args, **kwargs)

    monkeypatch.setattr(score_roi, "iter_score_rois", pressed_cancel_at_start)
    n_layers = len(viewer.layers)
    _score(qtbot, widget)
    assert not errors and not widget.results
    assert widget.status.text() == "cancelled" and widget.score_button.isEnabled()
    assert len(viewer.layers) == n_layers


def test_bad_inputs_notify(make_napari_viewer, slides_dir, checkpoint, errors, tmp_path):
    viewer = make_napari_viewer()
    empty = ScoreRoIWidget(viewer)
    empty.score_button.click()
    assert "no slide layer" in errors[-1]
    widget = _widget(viewer, slides_dir, checkpoint, rois=((10**6, 10**6, 500, 500),))
    widget.score_button.click()
    assert "tcga-cr-7395" in errors[-1]
    widget.checkpoint.setText(str(tmp_path / "missing.safetensors"))
    widget.score_button.click()
    assert "missing.safetensors" in errors[-1]
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a checkpoint")
    widget.checkpoint.setText(str(broken))
    widget.score_button.click()
    assert "broken.safetensors" in errors[-1]
    assert widget.worker is None and not widget.results


def test_bundled_checkpoint_absent_and_magnification_without_mpp(
    make_napari_viewer, slides_dir, checkpoint, errors
):
    from napari_scorenet._widgets._workers import default_checkpoint_path

    viewer = make_napari_viewer()
    widget = _widget(viewer, slides_dir, checkpoint)
    if not default_checkpoint_path().is_file():
        widget.checkpoint.setText(str(default_checkpoint_path()))
        widget.score_button.click()
        assert "bundled demo checkpoint is not installed" in errors[-1]
        widget.checkpoint.setText(str(checkpoint))
    # the TCGA slide stores no pixel size, so a magnification cannot be turned into µm/px
    widget.unit.setCurrentIndex(1)
    widget.mpp.setValue(10)
    widget.score_button.click()
    assert "tcga-cr-7395" in errors[-1] and "objective power" in errors[-1] and widget.worker is None


def test_widget_refuses_what_the_cli_refuses(make_napari_viewer, slides_dir, checkpoint, errors):
    """µm/px on a slide that records no pixel size: refused with the CLI's message, nothing read."""
    from scorenet.resolution import resolve_resolution
    from scorenet.slide import open_slide

    viewer = make_napari_viewer()
    widget = _widget(viewer, slides_dir, checkpoint)
    widget.unit.setCurrentIndex(0)
    widget.mpp.setValue(0.25)
    widget.score_button.click()
    with open_slide(slides_dir / "tcga-cr-7395-01a-01-ts1.svs") as slide:
        with pytest.raises(Exception) as refused:
            resolve_resolution(slide, mpp=0.25)
    assert errors[-1] == str(refused.value) and widget.worker is None and not widget.results


def test_whole_slide_thumbnail_reads_the_coarsest_level_without_pixel_size(
    make_napari_viewer, qtbot, slides_dir, checkpoint, errors
):
    viewer = make_napari_viewer()
    widget = _widget(viewer, slides_dir, checkpoint)
    widget.source_box.setCurrentIndex(2)  # Whole slide (thumbnail)
    _score(qtbot, widget)
    assert not errors
    (score,) = widget.results
    # TCGA records no pixel size: the thumbnail still comes from level 1 (downsample 2.0005), not level 0
    assert score.scale == pytest.approx(1 / 2.0005, rel=1e-3)
    assert score.roi == (0, 0, 4443, 3567)


def test_progress_counts_rois_read_and_scored(make_napari_viewer, qtbot, slides_dir, checkpoint, errors):
    viewer = make_napari_viewer()
    widget = _widget(viewer, slides_dir, checkpoint, rois=(ROI, (1200, 1000, 512, 512)))
    seen, show = [], widget._on_progress
    widget._on_progress = lambda event: (seen.append((event.done, event.total)), show(event))
    _score(qtbot, widget)
    assert not errors and len(widget.results) == 2
    # two RoIs of different sizes: two batches, each read then scored, as the bar shows them
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert widget._bar.n == widget._bar.total == 4
    assert widget.status.text().startswith("2 RoI(s): ")


def test_the_heat_map_cannot_mislead(make_napari_viewer, qtbot, slides_dir, checkpoint, errors):
    """x uniform on one fixed log2 scale (a flat distribution is flat), a colour bar, boxes by rank."""
    from napari_scorenet._widgets._layers import LOG2_LIMITS

    viewer = make_napari_viewer()
    widget = _widget(viewer, slides_dir, checkpoint)
    _score(qtbot, widget)
    (score,) = widget.results
    dist_layer = next(ly for ly in viewer.layers if ly.name.endswith("distribution"))
    regions = next(ly for ly in viewer.layers if " regions (" in ly.name)
    assert tuple(dist_layer.contrast_limits) == LOG2_LIMITS == (-2.0, 2.0)  # 1/4 x to 4 x, every RoI
    expected = np.clip(np.log2(score.distribution * score.distribution.size), -2, 2)
    np.testing.assert_allclose(dist_layer.data, expected, atol=1e-5)
    assert dist_layer.colorbar.visible
    # an untrained scorer is nearly flat: its cells sit near the white middle of the scale
    assert np.abs(dist_layer.data).max() < 0.5
    # labels are ranks only and scale with their boxes; scores stay in the features and the list
    assert list(regions.text.values) == [str(r) for r in score.ranks] and regions.text.scaling
    np.testing.assert_allclose(regions.features["score"], score.scores)
    np.testing.assert_allclose(regions.features["x_uniform"], score.scores * score.distribution.size)


def test_concentration_selection_uncertainty_and_padding(
    make_napari_viewer, qtbot, slides_dir, checkpoint, errors, monkeypatch
):
    from scorenet.concentration import concentration

    warnings: list[str] = []
    monkeypatch.setattr(score_roi, "show_warning", warnings.append)
    viewer = make_napari_viewer()
    # an RoI wider than the slide: it cannot be moved inside, so it is scored with padding
    widget = _widget(viewer, slides_dir, checkpoint, rois=((-300, 1500, 5000, 300),))
    _score(qtbot, widget)
    assert not errors
    (score,) = widget.results
    c = concentration(score.distribution, len(score.ranks))
    text = widget.concentration.text()
    assert f"max/min cell {c['max_over_min']:.2f}x" in text and f"{c['effective_regions']:.0f} of" in text
    assert score.padded_fraction > 0 and f"{100 * score.padded_fraction:.0f} % padding" in text
    assert any("white padding" in w and "tcga-cr-7395" in w for w in warnings)
    # selection uncertainty: a layer over the RoI's grid, each map summing to K, on a fixed 0..1 scale
    widget.sigma.setValue(0.5)
    widget.top_k.setValue(3)
    widget.selection_button.click()
    qtbot.waitUntil(lambda: any("P(selected)" in ly.name for ly in viewer.layers), timeout=60_000)
    layer = next(ly for ly in viewer.layers if "P(selected)" in ly.name)
    assert "sigma 0.5 K 3" in layer.name and tuple(layer.contrast_limits) == (0.0, 1.0)
    assert layer.data.shape == score.distribution.shape and layer.data.sum() == pytest.approx(3.0, abs=1e-4)
    assert layer.colorbar.visible

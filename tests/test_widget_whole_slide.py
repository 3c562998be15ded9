"""Score RoI's "Whole slide (tissue tiles)" source on the real TCGA slide: heat map, tissue layer,
progress, click to inspect, Cancel that keeps what is done, and the slide exports."""

from __future__ import annotations

import csv
import io
import itertools
import json
from dataclasses import dataclass, field

import numpy as np
import pytest
from napari.utils.interactions import mouse_move_callbacks, mouse_press_callbacks, mouse_release_callbacks
from scorenet.checkpoint import save_checkpoint
from scorenet.choices import RoiSource
from scorenet.demo_data import DEMO_MODEL_OVERRIDES
from scorenet.inference import snap_roi
from scorenet.model import build_model

from napari_scorenet._reader import slide_layer_data
from napari_scorenet._widgets import score_roi
from napari_scorenet._widgets._layers import camera, roi_label, times_uniform_log2
from napari_scorenet._widgets._slide_layers import ALPHA_RANGE, PALETTE, tile_alpha
from napari_scorenet._widgets._workers import cached_model
from napari_scorenet._widgets.score_roi import ScoreRoIWidget

SLIDE = "tcga-cr-7395-01a-01-ts1"
TILE = (480, 544)  # (h, w) px at level 0 (no pixel size recorded); snapped to 8 x 8 regions of 64 px
CLASSES = ["benign", "in situ", "invasive"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    model = build_model("scorenet_4_1", 3, **DEMO_MODEL_OVERRIDES).eval()
    save_checkpoint(model, path, CLASSES)
    return path


@pytest.fixture
def notes(monkeypatch):
    seen: dict[str, list[str]] = {"error": [], "warning": []}
    monkeypatch.setattr(score_roi, "show_error", seen["error"].append)
    monkeypatch.setattr(score_roi, "show_warning", seen["warning"].append)
    return seen


def _widget(viewer, slides_dir, checkpoint):
    data, kwargs, _ = slide_layer_data(slides_dir / f"{SLIDE}.svs")
    viewer.add_image(data, **kwargs)
    widget = ScoreRoIWidget(viewer)
    widget.checkpoint.setText(str(checkpoint))
    widget.device.setCurrentText("cpu")
    widget.source_box.setCurrentText(RoiSource.WHOLE_SLIDE_TILES.value)
    widget.tile_h.setValue(TILE[0])
    widget.tile_w.setValue(TILE[1])
    return widget


def _score(qtbot, widget):
    widget.score_button.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)


def _box(vertices) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of (y, x) vertices."""
    v = np.asarray(vertices)[:, -2:]
    return v[:, 1].min(), v[:, 0].min(), v[:, 1].max(), v[:, 0].max()


@dataclass
class _Mouse:
    """A mouse event as napari hands it to layer callbacks (world ``position``, canvas ``pos``)."""

    type: str
    position: tuple[float, float]
    pos: tuple[float, float] = (100.0, 100.0)
    button: int = 1
    is_dragging: bool = False
    modifiers: list = field(default_factory=list)


class _Wrapped:
    """napari's event proxy: the same object through a drag, its ``__wrapped__`` replaced per event."""

    def __init__(self, event: _Mouse) -> None:
        self.__wrapped__ = event

    def __getattr__(self, name: str):
        return getattr(self.__wrapped__, name)


def _click(layer, yx, move=None) -> None:
    """Press, optionally drag by ``move`` canvas pixels, release: through napari's callback machinery."""
    mouse_press_callbacks(layer, _Wrapped(_Mouse("mouse_press", yx)))
    pos = (100.0, 100.0)
    if move is not None:
        pos = (100.0 + move, 100.0 + move)
        mouse_move_callbacks(layer, _Wrapped(_Mouse("mouse_move", yx, pos, is_dragging=True)))
    mouse_release_callbacks(layer, _Wrapped(_Mouse("mouse_release", yx, pos)))


def _varied(model, monkeypatch) -> None:
    """The random tiny model favours each class in turn (RoI after RoI), so every class shows."""
    forward, turn = model.forward, itertools.count()

    def favour_in_turn(images, *args, **kwargs):
        out = forward(images, *args, **kwargs)
        for j in range(out.logits.shape[0]):
            out.logits[j, next(turn) % len(CLASSES)] += 2.0 + j  # a spread of probabilities too
        return out

    monkeypatch.setattr(model, "forward", favour_in_turn)


def test_heat_map_fills_in_over_the_rois(
    make_napari_viewer, qtbot, slides_dir, checkpoint, notes, monkeypatch
):
    viewer = make_napari_viewer()
    widget = _widget(viewer, slides_dir, checkpoint)
    _varied(cached_model(checkpoint, "cpu")[0], monkeypatch)  # the widget's model (cached per file)
    assert widget.tile_h.isEnabled()
    seen, show = [], widget._on_slide_progress

    def drawn() -> int:
        name = f"{SLIDE} heat map"
        return len(viewer.layers[name].data) if name in viewer.layers else 0

    widget._on_slide_progress = lambda e: (seen.append((e.done, e.total, drawn())), show(e))
    _score(qtbot, widget)
    assert not notes["error"]
    result = widget.slide_result
    n = len(result.plan)
    assert n > 10 and result.complete and len(result.tiles) == n
    # progress: the plan first (0 of N), then batch after batch up to N of N; the bar counts RoIs
    dones = [d for d, _, _ in seen]
    assert seen[0][:2] == (0, n) and {t for _, t, _ in seen} == {n}
    assert dones[-1] == n and dones == sorted(set(dones)) and len(dones) == 1 + -(-n // 2)
    assert widget._bar.n == widget._bar.total == n
    # the map fills in while the slide is scored (the first batch at once, then at most 4 times a second)
    assert seen[2][2] >= 2 and any(0 < cells < n for _, _, cells in seen)
    assert widget.status.text().startswith(f"{n} of {n} RoIs")

    layer = viewer.layers[f"{SLIDE} heat map"]
    assert layer.visible and len(layer.data) == n
    tiles = {t.index: t for t in result.tiles}
    assert {t.predicted for t in result.tiles} == set(CLASSES)
    assert sorted(layer.features["index"]) == sorted(tiles)
    width, height = 4443, 3567
    moved_back = 0
    for shape, index, face in zip(layer.data, layer.features["index"], layer.face_color, strict=True):
        tile = tiles[int(index)]
        x, y, w, h = tile.roi
        # each cell covers its RoI exactly, in world = slide level-0 coordinates
        world = np.array([layer.data_to_world(v) for v in shape])
        np.testing.assert_allclose(_box(world), (x, y, x + w, y + h), atol=1e-6)
        # colour: the predicted class's palette colour; opacity: its probability, 1/3 .. 1
        c = CLASSES.index(tile.predicted)
        rgb = [int(PALETTE[c][i : i + 2], 16) / 255 for i in (1, 3, 5)]
        np.testing.assert_allclose(face[:3], rgb, atol=1e-6)
        p = float(tile.probabilities[c])
        assert face[3] == pytest.approx(tile_alpha(p, 3), abs=1e-6)
        assert ALPHA_RANGE[0] - 1e-6 <= face[3] <= ALPHA_RANGE[1] + 1e-6
        moved_back += (x + w == width) or (y + h == height)
    assert moved_back  # the last row and column, moved back inside the slide, sit where they were read
    assert tile_alpha(1 / 3, 3) == ALPHA_RANGE[0] and tile_alpha(1.0, 3) == ALPHA_RANGE[1]
    legend = widget.legend.text()
    assert not widget.legend.isHidden() and all(name in legend for name in CLASSES) and "1/3" in legend
    assert all(PALETTE[c] in legend for c in range(3))

    # the tissue mask: hidden, in level-0 coordinates edge to edge, toggled by the checkbox or the layer
    tissue = viewer.layers[f"{SLIDE} tissue"]
    assert not tissue.visible and not widget.show_tissue.isChecked()
    np.testing.assert_array_equal(tissue.data, result.tissue.mask.astype(np.uint8))
    np.testing.assert_allclose(tissue.data_to_world((-0.5, -0.5)), (0, 0), atol=1e-6)
    far = tissue.data_to_world(np.array(tissue.data.shape) - 0.5)
    np.testing.assert_allclose(far, (height, width), atol=1e-6)
    assert list(viewer.layers).index(tissue) < list(viewer.layers).index(layer)  # the map on top
    widget.show_tissue.setChecked(True)
    assert tissue.visible
    tissue.visible = False
    assert not widget.show_tissue.isChecked()

    # scoring again replaces the map: one heat map and one tissue layer per slide
    n_layers = len(viewer.layers)
    _score(qtbot, widget)
    assert len(viewer.layers) == n_layers and len(viewer.layers[f"{SLIDE} heat map"].data) == n


def test_inspect_and_click_a_tile(make_napari_viewer, qtbot, slides_dir, checkpoint, notes):
    viewer = make_napari_viewer()
    widget = _widget(viewer, slides_dir, checkpoint)
    _score(qtbot, widget)
    heat = viewer.layers[f"{SLIDE} heat map"]
    result = widget.slide_result
    k = DEMO_MODEL_OVERRIDES["top_k"]
    model, _ = cached_model(checkpoint, "cpu")

    def check_shown(tile):
        label = roi_label(tile)
        dist = viewer.layers[f"{label} distribution"]
        regions = viewer.layers[f"{label} regions ({tile.predicted})"]
        np.testing.assert_allclose(dist.data, times_uniform_log2(tile.distribution), atol=1e-6)
        # the distribution covers the RoI snapped to the model's region grid inside the slide (scale 1)
        corners = [dist.data_to_world((-0.5, -0.5)), dist.data_to_world(np.array(dist.data.shape) - 0.5)]
        x0, y0, x1, y1 = _box(corners)
        sx, sy, sw, sh = snap_roi(model, tile.roi, 1.0, (4443, 3567))
        np.testing.assert_allclose((x0, y0, x1, y1), (sx, sy, sx + sw, sy + sh), atol=1e-6)
        x, y, w, h = tile.roi
        boxes = np.array([_box(s) for s in regions.data])
        np.testing.assert_allclose(boxes, tile.boxes_level0, atol=1e-4)
        assert list(regions.features["rank"]) == list(range(1, k + 1))
        # zoomed onto the tile; its classes and regions in the widget; the heat map stays active
        np.testing.assert_allclose(camera(viewer).center[-2:], (y + h / 2, x + w / 2))
        assert widget.classes.count() == 3 and widget.region_list.count() == k
        assert viewer.layers.selection.active is heat
        return dist, regions

    first, second = result.tiles[3], result.tiles[-1]
    widget.inspect_tile(first.index)
    assert f"RoI {first.index}" in widget.status.text()
    old = check_shown(first)
    # selecting a region row zooms onto that region, as for a single RoI
    widget.region_list.setCurrentRow(1)
    bx0, by0, bx1, by1 = first.boxes_level0[1]
    np.testing.assert_allclose(camera(viewer).center[-2:], ((by0 + by1) / 2, (bx0 + bx1) / 2))

    # a click on another cell (through napari's mouse callbacks) inspects it and replaces the first one
    x, y, w, h = second.roi
    n_layers = len(viewer.layers)
    _click(heat, (y + h / 2, x + w / 2))
    check_shown(second)
    assert len(viewer.layers) == n_layers and all(layer not in viewer.layers for layer in old)
    # a drag pans (nothing inspected); a click outside every cell does nothing
    x, y, w, h = first.roi
    _click(heat, (y + h / 2, x + w / 2), move=40)
    check_shown(second)
    _click(heat, (-50.0, -50.0))
    check_shown(second)
    assert not notes["error"]


def test_cancel_keeps_the_finished_rois(make_napari_viewer, qtbot, slides_dir, checkpoint, notes, monkeypatch,
                                        tmp_path):  # fmt: skip
    viewer = make_napari_viewer()
    widget = _widget(viewer, slides_dir, checkpoint)
    real = score_roi.iter_score_slide

    def cancel_after_first_batch(*args, **kwargs):
        job = real(*args, **kwargs)

        def relay():
            yield next(job)  # the plan
            event = next(job)  # the first batch
            widget.cancel()  # as if Cancel were clicked while it was scored
            yield event
            return (yield from job)

        return relay()

    monkeypatch.setattr(score_roi, "iter_score_slide", cancel_after_first_batch)
    _score(qtbot, widget)
    assert not notes["error"] and any("cancelled" in w for w in notes["warning"])
    result = widget.slide_result
    assert result is not None and not result.complete
    assert len(result.tiles) == 2 and len(result.plan) > 10
    heat = viewer.layers[f"{SLIDE} heat map"]
    assert sorted(heat.features["index"]) == sorted(t.index for t in result.tiles)
    assert widget.status.text() == f"cancelled: 2 of {len(result.plan)} RoIs kept"
    assert widget.score_button.isEnabled() and not widget.cancel_button.isEnabled()
    rows = list(csv.reader(io.StringIO(widget.export("csv", tmp_path / "tiles.csv").read_text())))
    assert [int(r[0]) for r in rows[1:]] == sorted(t.index for t in result.tiles)
    widget.inspect_tile(result.tiles[0].index)
    assert roi_label(result.tiles[0]) + " distribution" in viewer.layers
    unscored = max(set(range(len(result.plan))) - {t.index for t in result.tiles})
    widget.inspect_tile(unscored)  # planned, never scored: a note, no layers
    assert "has not been scored" in notes["warning"][-1]


def test_exports_tiles_as_qupath_detections_and_csv(make_napari_viewer, qtbot, slides_dir, checkpoint, notes,
                                                    tmp_path):  # fmt: skip
    viewer = make_napari_viewer()
    widget = _widget(viewer, slides_dir, checkpoint)
    _score(qtbot, widget)
    result = widget.slide_result
    tiles = {t.index: t for t in result.tiles}

    features = json.loads(widget.export("geojson", tmp_path / "tiles.geojson").read_text())["features"]
    assert len(features) == len(tiles)
    for feature in features:
        props = feature["properties"]
        tile = tiles[int(props["name"].split()[-1])]
        x, y, w, h = tile.roi
        assert props["objectType"] == "detection" and props["classification"]["name"] == tile.predicted
        ring = np.array(feature["geometry"]["coordinates"][0])
        assert _box(ring[:, ::-1]) == (x, y, x + w, y + h)
        m = props["measurements"]
        assert [m[f"probability {c}"] for c in CLASSES] == pytest.approx(tile.probabilities.tolist())
        assert m["tissue"] == pytest.approx(tile.tissue)

    rows = list(csv.DictReader(io.StringIO(widget.export("csv", tmp_path / "tiles.csv").read_text())))
    assert [int(r["index"]) for r in rows] == sorted(tiles)
    for row in rows:
        tile = tiles[int(row["index"])]
        assert tuple(int(row[k]) for k in "xywh") == tile.roi and row["predicted"] == tile.predicted
        assert [float(row[f"p_{c}"]) for c in CLASSES] == pytest.approx(tile.probabilities.tolist())

    # PNG shows one RoI: refused in slide mode, with a note; nothing written
    assert widget.export("png", tmp_path / "tiles.png") is None and not (tmp_path / "tiles.png").exists()
    assert "GeoJSON or CSV" in notes["warning"][-1]
    # an unwritable path is a notification, not a traceback
    (tmp_path / "a file").write_text("")
    assert widget.export("csv", tmp_path / "a file" / "tiles.csv") is None
    assert "tiles.csv" in notes["error"][-1]

    # Export writes what was scored last: after a single RoI, its regions again
    viewer.add_shapes([np.array([[1500, 2000], [2000, 2700]])], shape_type="rectangle", name="RoIs")
    widget.source_box.setCurrentText(RoiSource.SHAPES.value)
    widget.shapes_box.setCurrentText("RoIs")
    assert not widget.tile_h.isEnabled()
    _score(qtbot, widget)
    assert len(widget.results) == 1
    regions = json.loads(widget.export("geojson", tmp_path / "regions.geojson").read_text())["features"]
    assert len(regions) == 1 + DEMO_MODEL_OVERRIDES["top_k"]  # the RoI and its regions, no tiles
    assert not any(f["properties"].get("name", "").startswith("tile ") for f in regions)
    assert widget.export("png", tmp_path / "roi.png") is not None


def test_resolution_rule_and_errors_are_notifications(make_napari_viewer, slides_dir, checkpoint, notes):
    viewer = make_napari_viewer()
    widget = _widget(viewer, slides_dir, checkpoint)
    widget.unit.setCurrentIndex(0)
    widget.mpp.setValue(0.25)  # the TCGA slide records no pixel size: refused, as `scorenet score` does
    widget.score_button.click()
    assert SLIDE in notes["error"][-1] and widget.worker is None and widget.slide_result is None
    # nothing scored yet: Export says so and writes nothing
    assert widget.export("geojson", "unused.geojson") is None and "nothing to export" in notes["warning"][-1]

"""The napari plugin: manifest, discovery, reader on the real slides, viewer screenshot, demo."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_scorenet._reader import napari_get_reader, read_slide

TCGA = "tcga-cr-7395-01a-01-ts1.svs"


def test_manifest_validates_and_napari_discovers_the_plugin():
    from npe2 import PluginManager

    result = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", "napari-scorenet"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    manager = PluginManager.instance()
    manager.discover()
    manifest = manager.get_manifest("napari-scorenet")
    assert {r.command for r in manifest.contributions.readers} == {"napari-scorenet.get_reader"}
    assert [s.key for s in manifest.contributions.sample_data] == ["cmu_small_region"]


def test_get_reader_accepts_slides_and_images_only(slides_dir: Path, tmp_path: Path):
    assert napari_get_reader(str(slides_dir / TCGA)) is read_slide
    assert napari_get_reader([str(slides_dir / "boxes.tiff")]) is read_slide
    assert napari_get_reader(str(tmp_path / "table.csv")) is None
    assert napari_get_reader([str(slides_dir / TCGA), str(slides_dir / "small.svs")]) is None
    assert napari_get_reader(str(tmp_path)) is None


def test_reader_gives_one_multiscale_layer_with_metadata(slides_dir: Path):
    ((data, kwargs, layer_type),) = read_slide(str(slides_dir / TCGA))
    assert layer_type == "image" and kwargs["rgb"] and kwargs["multiscale"]
    assert [level.shape for level in data] == [(3567, 4443, 3), (1783, 2221, 3)]
    meta = kwargs["metadata"]
    assert meta["path"] == str(slides_dir / TCGA) and meta["vendor"] == "aperio"
    assert meta["level_downsamples"] == pytest.approx([1.0, 2.0005], abs=1e-4)
    assert meta["associated_images"] == ["thumbnail"]


def test_unreadable_file_notifies_with_its_name(tmp_path: Path, monkeypatch):
    import napari.utils.notifications as notifications

    shown: list[str] = []
    monkeypatch.setattr(notifications, "show_error", shown.append)
    bad = tmp_path / "scan.svs"
    bad.write_text("not a slide")
    assert read_slide(str(bad)) == [(None,)]  # napari's "no layers in this file"
    assert len(shown) == 1 and str(bad) in shown[0]


def _grab(viewer) -> np.ndarray:
    viewer.window._qt_window.grab()  # a never-painted window screenshots black
    return viewer.screenshot(canvas_only=True, flash=False)


@pytest.mark.gui
def test_viewer_opens_the_slide_lazily_and_draws_it(make_napari_viewer, slides_dir: Path, monkeypatch):
    from scorenet import slide as slide_module

    calls: list[tuple] = []
    original = slide_module.Slide.read_region

    def counting(self, location, level, size):
        calls.append((location, level, size))
        return original(self, location, level, size)

    monkeypatch.setattr(slide_module.Slide, "read_region", counting)
    viewer = make_napari_viewer(show=False)
    (layer,) = viewer.open(str(slides_dir / TCGA), plugin="napari-scorenet")
    assert layer.multiscale and layer.rgb and layer.metadata["vendor"] == "aperio"
    shot = _grab(viewer)
    assert shot.shape[-1] == 4 and shot[..., :3].std() > 10  # tissue, not a black or blank canvas
    # the first view shows the whole slide from the coarse level: level 0 is never read in full
    level0 = [size for _, level, size in calls if level == 0]
    assert sum(w * h for w, h in level0) < 4443 * 3567 / 4
    assert calls, "the view must have been drawn from the slide"


@pytest.mark.gui
def test_demo_writes_a_window_screenshot(tmp_path: Path, make_napari_viewer, slides_dir: Path):
    from napari_scorenet import demo

    out = tmp_path / "demo.png"
    viewer = demo.build_viewer(slides_dir / TCGA, show=False)
    try:
        names = [layer.name for layer in viewer.layers]
        # the main job shown: the example RoI scored, its distribution and regions on the slide
        assert names[:2] == ["tcga-cr-7395-01a-01-ts1", "RoI"] and len(names) == 4
        assert names[2].endswith("distribution") and " regions (" in names[3]
        from qtpy.QtWidgets import QTabBar

        # the docks are tabbed together: the current tab is the one in front
        bars = [b for b in viewer.window._qt_window.findChildren(QTabBar) if b.count() >= 5]
        assert [b.tabText(b.currentIndex()) for b in bars] == ["Score RoI (napari-scorenet)"]
        demo.save_screenshot(viewer, out)
    finally:
        viewer.close()
    from PIL import Image

    image = np.asarray(Image.open(out))
    assert image.shape[0] > 400 and image.shape[1] > 600 and image[..., :3].std() > 10


def test_sample_data_contribution_is_the_real_slide():
    from napari_scorenet._sample_data import cmu_small_region

    ((data, kwargs, layer_type),) = cmu_small_region()
    assert layer_type == "image" and kwargs["name"] == "cmu_small_region"
    assert data.shape == (2967, 2220, 3) and kwargs["metadata"]["mpp"] == pytest.approx(0.499)

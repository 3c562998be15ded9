"""Screenshots of the four widgets for docs/plugin.md, each after a real run on the shared data.

``xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/make_plugin_screenshots.py``

A small model is finetuned on a folder of real tiles (Finetune), evaluated (Evaluate), then used to
score an RoI of the TCGA slide (Score RoI) and to mix two RoIs (ScoreMix preview); those two use the
bundled demonstration model instead when it is installed.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import napari
import numpy as np
from qtpy.QtWidgets import QApplication
from scorenet.demo_data import DEMO_MODEL_OVERRIDES, make_tile_folder
from scorenet.paths import data_dir

from napari_scorenet._widgets._workers import default_checkpoint_path
from napari_scorenet._widgets.evaluate import EvaluateWidget
from napari_scorenet._widgets.finetune import FinetuneWidget
from napari_scorenet._widgets.score_roi import ScoreRoIWidget
from napari_scorenet._widgets.scoremix_preview import ScoreMixPreviewWidget
from napari_scorenet.demo import save_screenshot

OUT = Path(__file__).parent / "images"
SLIDE = data_dir() / "slides" / "tcga-cr-7395-01a-01-ts1.svs"


def wait(widget) -> None:
    while widget.worker is not None:
        QApplication.processEvents()
        time.sleep(0.01)
    for _ in range(5):
        QApplication.processEvents()


def new_viewer(widget_class, name: str):
    viewer = napari.Viewer(show=False)
    viewer.window.resize(1500, 950)
    widget = widget_class(viewer)
    viewer.window.add_dock_widget(widget, name=name, area="right")
    return viewer, widget


def slide_with_rois(viewer, rois) -> None:
    viewer.open(str(SLIDE), plugin="napari-scorenet")
    shapes = [np.array([[y, x], [y + h, x + w]]) for x, y, w, h in rois]
    viewer.add_shapes(
        shapes,
        shape_type="rectangle",
        name="RoIs",
        edge_color="yellow",
        face_color="transparent",
        edge_width=8,
    )


def main() -> None:
    work = Path(tempfile.mkdtemp())
    tiles = make_tile_folder(work / "tiles", 12, seed=0, tiles_dir=data_dir() / "tiles")

    viewer, widget = new_viewer(FinetuneWidget, "Finetune")
    widget.data.setText(str(tiles))
    widget.out.setText(str(work / "run"))
    widget.epochs.setValue(4)
    widget.batch_size.setValue(4)
    widget.device.setCurrentText("cpu")
    widget.overrides = dict(DEMO_MODEL_OVERRIDES)
    widget.run()
    wait(widget)
    checkpoint = widget.result.best_checkpoint
    save_screenshot(viewer, OUT / "widget-finetune.png")
    viewer.close()

    viewer, widget = new_viewer(EvaluateWidget, "Evaluate")
    widget.data.setText(str(tiles))
    widget.checkpoint.setText(str(checkpoint))
    widget.device.setCurrentText("cpu")
    widget.run()
    wait(widget)
    save_screenshot(viewer, OUT / "widget-evaluate.png")
    viewer.close()

    # scoring and mixing show the bundled demonstration model when it is installed
    bundled = default_checkpoint_path()
    if bundled.is_file():
        checkpoint = bundled

    viewer, widget = new_viewer(ScoreRoIWidget, "Score RoI")
    slide_with_rois(viewer, [(1200, 1000, 2048, 1536)])
    widget.checkpoint.setText(str(checkpoint))
    widget.device.setCurrentText("cpu")
    widget.run()
    wait(widget)
    viewer.layers["RoIs"].visible = False
    viewer.scene.camera.center = (1000 + 768, 1200 + 1024)
    viewer.scene.camera.zoom = 0.45
    save_screenshot(viewer, OUT / "widget-score-roi.png")
    viewer.close()

    # a whole slide: the tissue tiles' heat map
    viewer, widget = new_viewer(ScoreRoIWidget, "Score RoI")
    slide_with_rois(viewer, [])
    widget.checkpoint.setText(str(checkpoint))
    widget.device.setCurrentText("cpu")
    widget.source_box.setCurrentText("Whole slide (tissue tiles)")
    widget.run()
    wait(widget)
    save_screenshot(viewer, OUT / "widget-score-whole-slide.png")
    viewer.close()

    viewer, widget = new_viewer(ScoreMixPreviewWidget, "ScoreMix preview")
    slide_with_rois(viewer, [(1200, 1000, 768, 512), (2400, 1600, 768, 512)])
    widget.checkpoint.setText(str(checkpoint))
    widget.refresh()
    widget.lam.setValue(0.7)
    widget.seed.setValue(1)
    widget.run()
    wait(widget)
    # the widget zooms onto its three panels (source, target, mixed), right of the slide
    save_screenshot(viewer, OUT / "widget-scoremix-preview.png")
    viewer.close()


if __name__ == "__main__":
    main()

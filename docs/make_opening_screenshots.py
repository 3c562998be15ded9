"""Screenshots for docs/opening-slides.md: the TCGA slide whole, then zoomed to full resolution.

``xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/make_opening_screenshots.py``
"""

from __future__ import annotations

from pathlib import Path

import napari
from scorenet.paths import data_dir

from napari_scorenet.demo import save_screenshot

OUT = Path(__file__).parent / "images"


def main() -> None:
    viewer = napari.Viewer(show=False)
    viewer.window.resize(1400, 850)
    slide = data_dir() / "slides" / "tcga-cr-7395-01a-01-ts1.svs"
    (layer,) = viewer.open(str(slide), plugin="napari-scorenet")
    viewer.reset_view()
    save_screenshot(viewer, OUT / "opening-whole-slide.png")
    viewer.scene.camera.center = (1900, 1200)  # (row, col) in level-0 pixels
    viewer.scene.camera.zoom = 1.5
    save_screenshot(viewer, OUT / "opening-full-resolution.png")
    print(layer.metadata)
    viewer.close()


if __name__ == "__main__":
    main()

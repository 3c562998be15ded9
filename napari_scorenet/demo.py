"""The main job: napari with the sample slide, an example RoI scored by the bundled model, and every
ScoreNet widget docked with Score RoI in front.

``python -m napari_scorenet.demo [--screenshot PATH] [--quit]``. ``make demo`` runs it, under Xvfb
where there is no display, and writes ``demo-output/demo.png``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PLUGIN = "napari-scorenet"
SCORE_ROI = "Score RoI"


def example_roi(width: int, height: int, size: tuple[int, int] = (1536, 2048)) -> list[list[float]]:
    """A (rows, cols) rectangle of ``size`` (h, w) centred on the slide, clipped to it."""
    h, w = min(size[0], height), min(size[1], width)
    top, left = (height - h) // 2, (width - w) // 2
    return [[top, left], [top, left + w], [top + h, left + w], [top + h, left]]


def dock_widgets(viewer) -> dict[str, tuple]:
    """Dock every widget of the manifest: name -> (dock, widget); a widget that fails is reported."""
    from npe2 import PluginManager

    docked = {}
    manifest = PluginManager.instance().get_manifest(PLUGIN)
    for contribution in manifest.contributions.widgets or []:
        try:
            docked[contribution.display_name] = viewer.window.add_plugin_dock_widget(
                PLUGIN, contribution.display_name, tabify=True
            )
        except Exception as err:  # noqa: BLE001 - one broken widget must not stop the demo
            print(f"warning: widget {contribution.display_name!r} not docked: {err}", file=sys.stderr)
    return docked


def score_example(viewer, widget, timeout: float = 120.0) -> bool:
    """Score the example RoI with the widget as a click would, waiting for its worker; True if done."""
    import time

    from qtpy.QtWidgets import QApplication

    widget.source_box.setCurrentIndex(0)  # Shapes rectangles
    widget.shapes_box.setCurrentText("RoI")
    widget.run()
    end = time.monotonic() + timeout
    while widget.worker is not None and time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.01)
    return bool(widget.results)


def build_viewer(slide_path: Path | None = None, *, show: bool = True, score: bool = True):
    """A viewer with the slide, an example RoI on it, the plugin's widgets, Score RoI in front and
    (``score``) the RoI scored by the bundled model, its overlays shown."""
    import napari
    from scorenet.sample_data import sample_slide_path

    path = Path(slide_path) if slide_path else sample_slide_path()
    viewer = napari.Viewer(title="ScoreNet demo", show=show)
    viewer.window.resize(1500, 950)
    (layer,) = viewer.open(str(path), plugin=PLUGIN)
    width, height = layer.metadata["level_dimensions"][0]
    viewer.add_shapes(
        [example_roi(width, height)],
        shape_type="rectangle",
        name="RoI",
        edge_color="yellow",
        face_color="transparent",
        edge_width=max(4, width // 400),
    )
    docked = dock_widgets(viewer)
    viewer.layers.selection.active = layer
    viewer.reset_view()
    if SCORE_ROI in docked:
        dock, widget = docked[SCORE_ROI]
        dock.raise_()  # the main job in front, not the last widget docked
        if score and not score_example(viewer, widget):
            print("warning: the example RoI was not scored (see the notifications)", file=sys.stderr)
        dock.raise_()  # again: showing the window and the results can bring another tab forward
    return viewer


def save_screenshot(viewer, path: Path) -> Path:
    """PNG of the whole window (canvas and docked widgets)."""
    from PIL import Image
    from qtpy.QtWidgets import QApplication
    from scorenet.atomic import atomic_path

    # a window that has never been painted screenshots black: let Qt draw it first
    viewer.window._qt_window.grab()
    for _ in range(5):
        QApplication.processEvents()
    image = viewer.screenshot(canvas_only=False, flash=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m napari_scorenet.demo", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--slide", type=Path, help="a slide to open instead of the sample slide")
    parser.add_argument("--screenshot", type=Path, help="write a PNG of the window here")
    parser.add_argument("--quit", action="store_true", help="close after the screenshot (for headless runs)")
    args = parser.parse_args(argv)

    import napari
    from scorenet.errors import ScoreNetInputError

    try:
        viewer = build_viewer(args.slide)
    except ScoreNetInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.screenshot:
        print(f"screenshot: {save_screenshot(viewer, args.screenshot)}")
    if args.quit:
        viewer.close()
        return 0
    napari.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

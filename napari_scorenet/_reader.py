"""npe2 reader: whole-slide images and plain images as one lazy multiscale RGB layer.

World coordinates are level-0 pixels (napari scales the coarser levels itself), so shapes drawn on
the slide and the overlays added by the widgets share one coordinate system.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from scorenet.errors import ScoreNetInputError
from scorenet.pyramid import slide_pyramid
from scorenet.slide import SUPPORTED_SUFFIXES, open_slide

LayerData = tuple[Any, ...]
# napari's sentinel for "this file holds no layers": no second reader is tried, nothing raises
_NOTHING: list[LayerData] = [(None,)]


def napari_get_reader(path: str | list[str]) -> Callable[[str | list[str]], list[LayerData]] | None:
    """Return the slide reader for one file with a supported extension, else None."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    if Path(path).suffix.lower() not in SUPPORTED_SUFFIXES or Path(path).is_dir():
        return None
    return read_slide


def slide_layer_data(path: str | Path) -> LayerData:
    """The layer data tuple of a slide; raises ScoreNetInputError naming the file when it is unreadable."""
    slide = open_slide(path)
    pyramid = slide_pyramid(slide)
    kwargs = {
        "name": Path(path).stem,
        "rgb": True,
        "multiscale": len(pyramid) > 1,
        "metadata": slide.metadata(),
    }
    return (pyramid if len(pyramid) > 1 else pyramid[0], kwargs, "image")


def read_slide(path: str | list[str]) -> list[LayerData]:
    """Read a slide for napari; an unreadable file gives a notification naming it, not a traceback.

    The slide's notes (a greyscale image shown as RGB) become warning notifications.
    """
    from napari.utils.notifications import show_error, show_warning

    if isinstance(path, list):
        path = path[0]
    try:
        layer = slide_layer_data(path)
    except ScoreNetInputError as err:
        show_error(str(err))
        return _NOTHING
    for note in layer[1]["metadata"]["notes"]:
        show_warning(note)
    return [layer]

"""RoIs (x, y, w, h) in slide level-0 pixels from a Shapes layer, the current view or the whole slide."""

from __future__ import annotations

import numpy as np


def rois_from_shapes(layer) -> list[tuple[int, int, int, int]]:
    """Axis-aligned bounding boxes of the rectangles of a Shapes layer (data in world = level-0 px)."""
    rois = []
    for shape, kind in zip(layer.data, layer.shape_type, strict=True):
        if kind != "rectangle":
            continue
        # rectangles drawn on the slide live in world = level-0 pixels up to the layer's own scale/translate
        yx = np.asarray(shape)[:, -2:] * np.asarray(layer.scale)[-2:] + np.asarray(layer.translate)[-2:]
        (y0, x0), (y1, x1) = yx.min(axis=0), yx.max(axis=0)
        rois.append((int(round(x0)), int(round(y0)), int(round(x1 - x0)), int(round(y1 - y0))))
    return rois


def roi_from_view(viewer, dimensions: tuple[int, int]) -> tuple[int, int, int, int]:
    """The part of the slide shown on the canvas, clipped to the slide."""
    from ._layers import camera, canvas_size

    cam = camera(viewer)
    cy, cx = cam.center[-2:]
    h, w = np.asarray(canvas_size(viewer)) / cam.zoom
    x0, y0 = max(0, int(cx - w / 2)), max(0, int(cy - h / 2))
    x1, y1 = min(dimensions[0], int(cx + w / 2)), min(dimensions[1], int(cy + h / 2))
    return (x0, y0, max(1, x1 - x0), max(1, y1 - y0))


def roi_whole_slide(dimensions: tuple[int, int]) -> tuple[int, int, int, int]:
    """The whole slide."""
    return (0, 0, int(dimensions[0]), int(dimensions[1]))

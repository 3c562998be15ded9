"""RoI sources of the Score RoI widget: rectangles, the current view and the whole slide."""

from __future__ import annotations

import numpy as np
import pytest

from napari_scorenet._widgets._layers import zoom_to_box
from napari_scorenet._widgets._roi import roi_from_view, roi_whole_slide, rois_from_shapes


def test_rectangles_in_world_coordinates(make_napari_viewer):
    viewer = make_napari_viewer()
    layer = viewer.add_shapes(
        [np.array([[10, 20], [110, 220]]), np.array([[0, 0], [5, 5], [0, 9]])],
        shape_type=["rectangle", "polygon"],
        scale=(2, 2),
        translate=(100, 50),
    )
    # polygons are ignored; the rectangle is mapped through the layer's scale and translate
    assert rois_from_shapes(layer) == [(50 + 40, 100 + 20, 400, 200)]


def test_view_round_trip_and_clipping(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((3000, 4000), np.uint8))
    box = (1000, 500, 1800, 1100)  # x0, y0, x1, y1
    zoom_to_box(viewer, box)
    x, y, w, h = roi_from_view(viewer, (4000, 3000))
    # the view holds the whole box (the canvas' aspect ratio adds a margin on one axis)
    assert x <= box[0] + 1 and y <= box[1] + 1 and x + w >= box[2] - 1 and y + h >= box[3] - 1
    assert min(w / (box[2] - box[0]), h / (box[3] - box[1])) == pytest.approx(1 / 0.95, rel=0.02)
    zoom_to_box(viewer, (-5000, -5000, 9000, 8000))
    assert roi_from_view(viewer, (4000, 3000)) == roi_whole_slide((4000, 3000)) == (0, 0, 4000, 3000)

"""Build or update (in place, by name) the napari layers that show a RoiScore."""

from __future__ import annotations

import numpy as np
from scorenet.inference import RoiScore


def roi_label(score: RoiScore) -> str:
    """Stable name of an RoI, used as the prefix of its layers so re-runs update them."""
    x, y, w, h = score.roi
    return f"RoI {x},{y} {w}x{h}"


def _upsert(viewer, name: str, prefix: str, add, update):
    for layer in list(viewer.layers):
        if layer.name == name or layer.name.startswith(prefix):
            update(layer)
            layer.name = name
            return layer
    return add()


def show_score(viewer, score: RoiScore) -> tuple:
    """Distribution image and top-K rectangles over the RoI, in slide level-0 coordinates."""
    label = roi_label(score)
    dist = np.asarray(score.distribution, dtype=np.float32)
    x0, y0, x1, y1 = score.distribution_box_level0
    gh, gw = dist.shape
    scale = ((y1 - y0) / gh, (x1 - x0) / gw)
    # pixel centres sit at half a cell, so shift by half a cell to cover the grid edge to edge
    translate = (y0 + scale[0] / 2, x0 + scale[1] / 2)
    limits = (float(dist.min()), float(max(dist.max(), dist.min() + 1e-12)))

    def update_dist(layer):
        layer.data = dist
        layer.scale, layer.translate, layer.contrast_limits = scale, translate, limits

    dist_layer = _upsert(
        viewer, f"{label} distribution", f"{label} distribution",
        lambda: viewer.add_image(dist, name=f"{label} distribution", colormap="inferno", opacity=0.5,
                                 scale=scale, translate=translate, contrast_limits=limits),
        update_dist,
    )
    rects = [np.array([[b[1], b[0]], [b[3], b[2]]]) for b in np.asarray(score.boxes_level0)]
    features = {"rank": np.asarray(score.ranks, int), "score": np.asarray(score.scores, float)}
    text = {"string": "{rank}: {score:.3f}", "color": "cyan", "size": 10, "anchor": "upper_left"}
    name = f"{label} regions ({score.predicted})"

    def update_regions(layer):
        layer.data = []
        layer.add_rectangles(rects, edge_color="cyan", face_color="transparent")
        layer.features = features
        layer.text = text

    regions = _upsert(
        viewer, name, f"{label} regions",
        lambda: viewer.add_shapes(rects, shape_type="rectangle", name=name, edge_color="cyan",
                                  face_color="transparent", edge_width=4, features=features, text=text),
        update_regions,
    )
    return dist_layer, regions


def camera(viewer):
    """The viewer's camera (napari >= 0.9 keeps it on the scene)."""
    return viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera


def canvas_size(viewer) -> tuple[int, int]:
    """(height, width) of the canvas in screen pixels."""
    return tuple(viewer.canvas.size) if hasattr(viewer, "canvas") else tuple(viewer._canvas_size)


def zoom_to_box(viewer, box) -> None:
    """Centre the camera on (x0, y0, x1, y1) and zoom so it fills the canvas."""
    x0, y0, x1, y1 = box
    cam = camera(viewer)
    cam.center = ((y0 + y1) / 2, (x0 + x1) / 2)
    ch, cw = canvas_size(viewer)
    cam.zoom = 0.95 * min(ch / max(y1 - y0, 1), cw / max(x1 - x0, 1))

"""Build or update (in place, by name) the napari layers that show a RoiScore."""

from __future__ import annotations

import numpy as np
from napari.utils.colormaps import Colormap
from scorenet.inference import RoiScore

from ._colour_bar import share_colour_bar


def roi_label(score: RoiScore) -> str:
    """Stable name of an RoI, used as the prefix of its layers so re-runs update them."""
    x, y, w, h = score.roi
    return f"RoI {x},{y} {w}x{h}"


def _set_changed(layer, **values) -> None:
    """Set the layer attributes whose value differs from ``values`` (tuples or arrays)."""
    for attr, value in values.items():
        if not np.array_equal(np.asarray(getattr(layer, attr), dtype=float), np.asarray(value, dtype=float)):
            setattr(layer, attr, value)


def _upsert(viewer, name: str, prefix: str, add, update):
    for layer in list(viewer.layers):
        if layer.name == name or layer.name.startswith(prefix):
            update(layer)
            layer.name = name
            return layer
    return add()


# The distribution is shown as N * P, "times uniform", on one fixed log2 scale for every RoI: a flat
# distribution is flat white, and two RoIs (or two models) compare by colour. Values beyond the scale
# saturate; one colour bar, on the first visible distribution layer, shows the scale.
LOG2_LIMITS = (-2.0, 2.0)  # 1/4 x to 4 x uniform
X_UNIFORM_COLORMAP = Colormap(
    colors=[[0.13, 0.4, 0.85, 1.0], [1.0, 1.0, 1.0, 1.0], [0.85, 0.13, 0.13, 1.0]],
    controls=[0.0, 0.5, 1.0],
    name="log2 x uniform (1/4x blue, 1x white, 4x red)",
)


DISTRIBUTION_BAR = "distribution x uniform"


def times_uniform_log2(distribution: np.ndarray) -> np.ndarray:
    """log2(N * P) of a distribution over N cells, clipped to :data:`LOG2_LIMITS`."""
    dist = np.asarray(distribution, dtype=np.float64)
    ratio = np.maximum(dist * dist.size, 1e-12)
    return np.clip(np.log2(ratio), *LOG2_LIMITS).astype(np.float32)


def show_score(viewer, score: RoiScore) -> tuple:
    """Distribution image (log2 x uniform, fixed scale) and top-K rectangles labelled by rank, in slide
    level-0 coordinates."""
    label = roi_label(score)
    dist = times_uniform_log2(score.distribution)
    x0, y0, x1, y1 = score.distribution_box_level0
    gh, gw = dist.shape
    scale = ((y1 - y0) / gh, (x1 - x0) / gw)
    # pixel centres sit at half a cell, so shift by half a cell to cover the grid edge to edge
    translate = (y0 + scale[0] / 2, x0 + scale[1] / 2)

    def update_dist(layer):
        layer.data = dist
        # each setter refreshes the layer and the viewer's extent: only what changed is set
        _set_changed(layer, scale=scale, translate=translate, contrast_limits=LOG2_LIMITS)

    def add_dist():
        layer = viewer.add_image(
            dist,
            name=f"{label} distribution",
            colormap=X_UNIFORM_COLORMAP,
            opacity=0.5,
            scale=scale,
            translate=translate,
            contrast_limits=LOG2_LIMITS,
        )
        share_colour_bar(viewer, layer, DISTRIBUTION_BAR)
        return layer

    dist_layer = _upsert(viewer, f"{label} distribution", f"{label} distribution", add_dist, update_dist)
    rects = [np.array([[b[1], b[0]], [b[3], b[2]]]) for b in np.asarray(score.boxes_level0)]
    n = score.distribution.size
    features = {"rank": np.asarray(score.ranks, int), "score": np.asarray(score.scores, float),
                "x_uniform": n * np.asarray(score.scores, float)}  # fmt: skip
    # rank only, in data units: the label scales with its box, so labels never overlap at any zoom
    side = float(min(scale))
    text = {"string": "{rank}", "color": "cyan", "size": 0.3 * side, "scaling": True, "anchor": "upper_left",
            "translation": [0.05 * side, 0.05 * side]}  # fmt: skip
    name = f"{label} regions ({score.predicted})"

    def update_regions(layer):
        if layer.nshapes == len(rects) and set(layer.shape_type) == {"rectangle"}:
            layer.data = rects  # as many rectangles as before: their types and colours are kept
        else:
            layer.data = []
            layer.add_rectangles(rects, edge_color="cyan", face_color="transparent")
        layer.features = features  # the labels follow the features
        if layer.metadata.get("text") != text:  # rebuilding the labels costs a redraw of them all
            layer.text = text
            layer.metadata["text"] = text

    regions = _upsert(
        viewer,
        name,
        f"{label} regions",
        lambda: viewer.add_shapes(
            rects,
            shape_type="rectangle",
            name=name,
            edge_color="cyan",
            face_color="transparent",
            edge_width=4,
            features=features,
            text=text,
            metadata={"text": text},
        ),
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

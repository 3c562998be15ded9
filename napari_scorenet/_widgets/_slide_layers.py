"""Layers of a whole-slide score: the RoI heat map, the tissue mask, and a clicked RoI's details.

The heat map is a Shapes layer with one filled rectangle per scored RoI, exactly over the RoI in slide
level-0 coordinates (the slide layer's world coordinates). Rectangles rather than an image of the
grid: the tile plan's last row and column are moved back inside the slide, so they overlap their
neighbours and fit no regular grid; rectangles place every RoI where it was read. Overlapping cells
are drawn in plan order, the later one on top (the moved-back last row and column, and every cell
when the scoring overlaps RoIs), and a click picks the cell drawn on top. Each batch of finished RoIs
is added as it arrives (batches arriving faster than napari redraws are added together), so the map
fills in while the slide is scored.

Colour: the predicted class, from a fixed categorical palette (matplotlib's tab10, cycled past ten
classes). Opacity: that class's probability, which lies in [1/C, 1] for C classes (the predicted
class is the most probable one), mapped linearly from ``ALPHA_RANGE[0]`` (chance) to
``ALPHA_RANGE[1]`` (certain), so the slide stays visible under the most confident cells.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from napari.utils.colormaps import DirectLabelColormap
from qtpy.QtCore import QTimer
from scorenet.wsi import TileScore

# matplotlib's tab10, in its order: distinct hues that read on pink H&E
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
           "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")  # fmt: skip
ALPHA_RANGE = (0.1, 0.8)  # face opacity at probability 1/C and at 1
TISSUE_COLOUR = "yellow"
FLUSH_EVERY_S = 0.25  # least time between two drawings of the heat map (see HeatMap.flush)
CLICK_TOLERANCE_PX = 5  # a press and release further apart on the canvas are a drag (panning), not a click


def class_colour(c: int) -> str:
    """The palette colour of class ``c`` (hex)."""
    return PALETTE[c % len(PALETTE)]


def _rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)], dtype=np.float32)


def tile_alpha(probability: float, n_classes: int) -> float:
    """Opacity of a cell whose predicted class has ``probability`` (1/C maps to the faintest)."""
    chance = 1.0 / max(n_classes, 1)
    t = (float(probability) - chance) / (1.0 - chance) if n_classes > 1 else 1.0
    low, high = ALPHA_RANGE
    return low + (high - low) * min(1.0, max(0.0, t))


def tile_colour(tile: TileScore, class_names: Sequence[str]) -> np.ndarray:
    """RGBA face colour of a tile: its predicted class's colour, its probability as opacity."""
    c = list(class_names).index(tile.predicted)
    return np.append(_rgb(class_colour(c)), tile_alpha(tile.probabilities[c], len(class_names)))


def legend_html(class_names: Sequence[str]) -> str:
    """The heat map's legend (rich text for a QLabel): a swatch per class and what opacity means."""
    swatches = "&nbsp; ".join(
        f'<span style="color:{class_colour(c)}">&#9632;</span>&nbsp;{html.escape(str(name))}'
        for c, name in enumerate(class_names)
    )
    n = len(class_names)
    return (f"{swatches}<br><small>colour: predicted class; opacity: its probability, "
            f"faint at 1/{n} (chance) to strong at 1</small>")  # fmt: skip


@dataclass(frozen=True)
class TileView:
    """A scored RoI of a slide with what ``_layers.show_score`` draws (an ``RoiScore`` without pixels)."""

    roi: tuple[int, int, int, int]
    class_names: list[str]
    probabilities: np.ndarray
    predicted: str
    distribution: np.ndarray
    boxes_level0: np.ndarray
    scores: np.ndarray
    ranks: np.ndarray
    distribution_box_level0: tuple[float, float, float, float]
    padded_fraction: float = 0.0  # tiles are planned inside the slide


class HeatMap:
    """The heat map layer of one slide and the tiles it shows, filled in batch by batch."""

    def __init__(self, viewer, name: str, class_names: Sequence[str]) -> None:
        self.viewer = viewer
        self.name = name
        self.class_names = [str(c) for c in class_names]
        self.tiles: list[TileScore] = []  # in the order drawn (the last one is on top)
        self._by_index: dict[int, TileScore] = {}
        self.boxes: dict[int, tuple[float, float, float, float]] = {}  # tile index -> distribution box
        self.layer = None
        self._callbacks: list[Callable] = []
        self._pending: list[TileScore] = []  # received, not yet drawn
        self._next_flush = 0.0  # time.monotonic() from which a batch is drawn as it arrives
        self._timer = QTimer(singleShot=True)
        self._timer.timeout.connect(self.flush)

    def on_click(self, callback: Callable) -> None:
        """Add a mouse drag callback to the layer, now and whenever it is made again."""
        self._callbacks.append(callback)
        if self.layer is not None:
            self.layer.mouse_drag_callbacks.append(callback)

    def _rects(self, tiles: Iterable[TileScore]) -> list[np.ndarray]:
        return [np.array([[y, x], [y + h, x + w]], dtype=float) for x, y, w, h in (t.roi for t in tiles)]

    def _colours(self, tiles: Iterable[TileScore]) -> np.ndarray:
        return np.array([tile_colour(t, self.class_names) for t in tiles], dtype=np.float32).reshape(-1, 4)

    def _features(self) -> dict[str, np.ndarray]:
        names = self.class_names
        return {
            "index": np.array([t.index for t in self.tiles], dtype=int),
            "predicted": np.array([t.predicted for t in self.tiles], dtype=object),
            "probability": np.array([float(t.probabilities[names.index(t.predicted)]) for t in self.tiles]),
        }

    def ensure_layer(self):
        """The heat map layer, made (with every tile drawn so far) when there is none in the viewer."""
        if self.layer is not None and self.layer in self.viewer.layers:
            return self.layer
        for layer in list(self.viewer.layers):
            if layer.name == self.name:  # an earlier run's map of the same slide: replaced
                self.viewer.layers.remove(layer)
        self.layer = self.viewer.add_shapes(
            self._rects(self.tiles) or None, shape_type="rectangle", name=self.name, edge_width=0,
            edge_color="transparent", face_color=self._colours(self.tiles) if self.tiles else "transparent",
            features=self._features() if self.tiles else None, metadata={"class_names": self.class_names},
        )  # fmt: skip
        self.layer.mouse_drag_callbacks.extend(self._callbacks)
        return self.layer

    def add(self, tiles: Sequence[TileScore], boxes: Sequence[tuple[float, float, float, float]]) -> None:
        """A batch of finished tiles (``boxes``: each one's distribution box, level 0), drawn now or,
        when the last drawing was too recent, by :meth:`flush` a little later."""
        self._pending.extend(tiles)
        self._by_index.update({t.index: t for t in tiles})
        self.boxes.update({t.index: tuple(b) for t, b in zip(tiles, boxes, strict=True)})
        wait = self._next_flush - time.monotonic()
        if wait <= 0:
            self.flush()
        elif not self._timer.isActive():
            self._timer.start(int(1000 * wait) + 1)

    def flush(self) -> None:
        """Draw the tiles received and not yet drawn.

        napari redraws a whole Shapes layer on every addition, so batches that arrive faster than
        that (a GPU scores a batch in tens of milliseconds) are drawn together: the next drawing
        waits ``FLUSH_EVERY_S`` or four times what the last one took, whichever is longer.
        """
        self._timer.stop()
        if not self._pending:
            return
        started = time.monotonic()
        tiles, self._pending = self._pending, []
        self.tiles.extend(tiles)
        if self.layer is None:
            self.ensure_layer()  # drawn with every tile so far
        elif self.layer in self.viewer.layers:
            self.layer.add_rectangles(self._rects(tiles), edge_width=0, edge_color="transparent",
                                      face_color=self._colours(tiles))  # fmt: skip
            self.layer.features = self._features()
        # else the layer was deleted (or the viewer closed): the tiles are kept, not drawn again
        spent = time.monotonic() - started
        self._next_flush = time.monotonic() + max(FLUSH_EVERY_S, 4 * spent)

    def tile(self, index: int) -> TileScore:
        """The tile of plan index ``index`` (drawn or about to be); KeyError when it was not scored."""
        return self._by_index[index]

    def view(self, index: int) -> TileView:
        """What the single-RoI layers show of tile ``index``."""
        t = self.tile(index)
        ranks = np.arange(1, len(t.scores) + 1)
        return TileView(tuple(t.roi), self.class_names, t.probabilities, t.predicted, t.distribution,
                        t.boxes_level0, t.scores, ranks, self.boxes[index])  # fmt: skip

    def tile_at(self, position: Sequence[float]) -> TileScore | None:
        """The tile drawn on top at world ``position`` (..., y, x) level 0, None outside every tile."""
        if not self.tiles:
            return None
        y, x = (float(v) for v in np.asarray(position)[-2:])
        rois = np.array([t.roi for t in self.tiles], dtype=float)
        x0, y0, x1, y1 = rois[:, 0], rois[:, 1], rois[:, 0] + rois[:, 2], rois[:, 1] + rois[:, 3]
        hits = np.flatnonzero((x0 <= x) & (x < x1) & (y0 <= y) & (y < y1))
        return self.tiles[hits[-1]] if hits.size else None


def click_to_inspect(heat_map: HeatMap, inspect: Callable[[int], None]) -> Callable:
    """A mouse drag callback: a click (press and release in place) on a cell calls ``inspect(index)``.

    A press that moves more than ``CLICK_TOLERANCE_PX`` on the canvas before its release pans the
    view and inspects nothing.
    """

    def on_mouse(layer, event):
        if event.type != "mouse_press" or getattr(event, "button", 1) != 1:
            return
        position = np.asarray(event.position, dtype=float)
        start = np.asarray(getattr(event, "pos", (0, 0)), dtype=float)

        def moved() -> bool:
            now = np.asarray(getattr(event, "pos", start), dtype=float)
            return bool(np.abs(now - start).max() > CLICK_TOLERANCE_PX)

        dragged = False
        yield
        while event.type == "mouse_move":
            dragged = dragged or moved()
            yield
        if dragged or moved():  # released away from the press: a pan
            return
        tile = heat_map.tile_at(position)
        if tile is not None:
            inspect(tile.index)

    return on_mouse


def show_tissue(viewer, name: str, tissue) -> object:
    """The tissue mask as a hidden Labels layer over the slide (level 0), replacing one of that name.

    Mask pixel ``(row, col)`` covers level-0 ``[col * dx, (col + 1) * dx) x [row * dy, (row + 1) * dy)``
    (``scorenet.tissue.TissueMask``), so the layer's scale is ``(dy, dx)`` and its pixel centres sit
    half a pixel in.
    """
    dx, dy = tissue.downsample
    kwargs = {"scale": (dy, dx), "translate": (dy / 2, dx / 2)}
    mask = np.asarray(tissue.mask, dtype=np.uint8)
    for layer in list(viewer.layers):
        if layer.name == name:
            viewer.layers.remove(layer)
    colours = DirectLabelColormap(color_dict={1: TISSUE_COLOUR, None: "transparent"})
    return viewer.add_labels(mask, name=name, opacity=0.35, visible=False, colormap=colours, **kwargs)

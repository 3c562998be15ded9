"""ScoreMix preview widget: mix two images (RoIs of a slide or image layers) and show boxes and label."""

from __future__ import annotations

from pathlib import Path

import napari
import numpy as np
import torch
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_warning
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from scorenet.choices import Mix
from scorenet.errors import ScoreNetInputError
from scorenet.mixing import MIX_METHODS
from scorenet.resolution import Resolution, resolve_resolution
from scorenet.slide import open_slide, read_roi

from ._layers import zoom_to_box
from ._roi import rois_from_shapes
from ._workers import cached_model, default_checkpoint_path, missing_checkpoint_message

# by label, in Mix's order; "none" has nothing to preview
METHODS = {mix.label: MIX_METHODS[mix.value] for mix in Mix if mix is not Mix.NONE}
LAYER_NAME = "ScoreMix preview"  # the mixed image
PANEL_NAMES = ("ScoreMix source", "ScoreMix target", LAYER_NAME)
BOXES_NAME = f"{LAYER_NAME} boxes"
LABELS_NAME = f"{LAYER_NAME} titles"


def image_sources(viewer) -> dict[str, object]:
    """Choices: every plain RGB image layer, and every rectangle of each Shapes layer read from the slide."""
    choices: dict[str, object] = {}
    slides = [ly for ly in viewer.layers if isinstance(ly, napari.layers.Image) and "path" in ly.metadata]
    for layer in viewer.layers:
        plain = isinstance(layer, napari.layers.Image) and layer.rgb and not layer.multiscale
        if plain and layer.name not in PANEL_NAMES:
            choices[f"layer: {layer.name}"] = layer
        if isinstance(layer, napari.layers.Shapes) and slides:
            for i, roi in enumerate(rois_from_shapes(layer)):
                choices[f"RoI {i + 1} of {layer.name} ({slides[0].name})"] = (slides[0].metadata["path"], roi)
    return choices


def choice_resolution(choice, checkpoint_mpp: float | None) -> Resolution | None:
    """How an RoI choice is read (the rule Score RoI follows); None for an image layer."""
    if not isinstance(choice, tuple):
        return None
    with open_slide(choice[0]) as slide:
        return resolve_resolution(slide, checkpoint_mpp=checkpoint_mpp)


def load_image(choice, resolution: Resolution | None = None) -> np.ndarray:
    """(H, W, 3) uint8 of a layer or of an RoI read from its slide at ``resolution`` (None: level 0)."""
    if isinstance(choice, tuple):
        path, (x, y, w, h) = choice
        with open_slide(path) as slide:
            return read_roi(slide, x, y, w, h, resolution=resolution).image
    return np.asarray(choice.data)[..., :3].astype(np.uint8)


def mix_images(model, method: str, source: np.ndarray, target: np.ndarray, lam: float, seed: int):
    """Mix ``source`` into ``target`` with the model's distributions and predictions as soft labels."""
    pair = [torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1)[None] for im in (source, target)]
    with torch.inference_mode():
        dists = [model.semantic_distribution(im) for im in pair]
        labels = [model(im).logits.softmax(-1) for im in pair]
    generator = torch.Generator().manual_seed(seed)
    return METHODS[method](
        pair[0].float(),
        pair[1].float(),
        dists[0],
        dists[1],
        labels[0],
        labels[1],
        lam=lam,
        generator=generator,
    )


class ScoreMixPreviewWidget(QWidget):
    """Pick source, target, lambda, seed and method; show the mixed image, its boxes and mixed label."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = viewer
        self.result = None
        self.worker = None
        self.source, self.target = QComboBox(), QComboBox()
        self.method = QComboBox()
        self.method.addItems(list(METHODS))
        self.method.setCurrentText(Mix.SCOREMIX.label)  # the method the preview is named after
        self.lam = QDoubleSpinBox(minimum=0.0, maximum=1.0, singleStep=0.05, value=0.7)
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1, value=0)
        self.checkpoint = QLineEdit(str(default_checkpoint_path()))
        self.mix_button = QPushButton("Mix", clicked=self.run)
        self.label = QLabel("")
        form = QFormLayout()
        for name, w in (
            ("Source", self.source),
            ("Target", self.target),
            ("Method", self.method),
            ("λ (target kept)", self.lam),
            ("Seed", self.seed),
            ("Checkpoint", self.checkpoint),
        ):
            form.addRow(name, w)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.mix_button)
        layout.addWidget(self.label)
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed):
            event.connect(self.refresh)
        self.refresh()

    def refresh(self, *_: object) -> None:
        """Re-list the sources (after layers or rectangles change)."""
        self._choices = image_sources(self.viewer)
        for box in (self.source, self.target):
            current = box.currentText()
            box.clear()
            box.addItems(list(self._choices))
            if current in self._choices:
                box.setCurrentText(current)
        if self.target.currentIndex() == 0 and self.target.count() > 1:
            self.target.setCurrentIndex(1)

    def run(self) -> None:
        self.refresh()
        try:
            picked = (self.source.currentText(), self.target.currentText())
            if not all(name in self._choices for name in picked):
                raise ScoreNetInputError("add two image layers or two RoI rectangles on a slide first")
            if not Path(self.checkpoint.text()).is_file():
                raise ScoreNetInputError(missing_checkpoint_message(self.checkpoint.text()))
            model, info = cached_model(self.checkpoint.text(), "cpu")
            src, tgt = self._choices[self.source.currentText()], self._choices[self.target.currentText()]
            resolutions = [choice_resolution(c, info.metadata.get("mpp")) for c in (src, tgt)]
        except Exception as err:  # bad input is a notification, not a traceback dialog
            show_error(str(err))
            return
        for note in dict.fromkeys(r.note for r in resolutions if r is not None and r.note):
            show_warning(note)
        self.mix_button.setEnabled(False)
        self.worker = self._mix(
            model,
            info,
            (src, tgt),
            resolutions,
            self.method.currentText(),
            self.lam.value(),
            self.seed.value(),
            _ignore_errors=True,
        )
        self.worker.returned.connect(self._show)
        self.worker.errored.connect(lambda err: show_error(str(err)))
        self.worker.finished.connect(self._done)
        self.worker.start()

    @thread_worker
    def _mix(self, model, info, choices, resolutions, method, lam, seed):
        source, target = (load_image(c, r) for c, r in zip(choices, resolutions, strict=True))
        return mix_images(model, method, source, target, lam, seed), info, source, target

    def _done(self) -> None:
        self.mix_button.setEnabled(True)
        self.worker = None

    def _show(self, out) -> None:
        result, info, source, target = out
        self.result = result
        mixed = result.images[0].permute(1, 2, 0).clamp(0, 255).to(torch.uint8).numpy()
        lam = float(result.lam[0])
        label = result.labels[0]
        parts = [f"{n}: {float(p):.2f}" for n, p in zip(info.class_names, label, strict=True)]
        mixed_label = ", ".join(parts)
        offsets = self._place((source, target, mixed))
        titles = ("source: cut box", "target", "mixed: paste box")  # λ and the label: in the widget
        for name, image, offset in zip(PANEL_NAMES, (source, target, mixed), offsets, strict=True):
            if name in self.viewer.layers:
                self.viewer.layers[name].data = image
                self.viewer.layers[name].translate = offset
            else:
                self.viewer.add_image(image, name=name, rgb=True, translate=offset)
        # the cut box in source pixels on the source, the paste box in target pixels on the mixed image
        cut, paste = result.cut_boxes[0].tolist(), result.paste_boxes[0].tolist()
        rects = [_rect(cut, offsets[0]), _rect(paste, offsets[2])]
        for name in (BOXES_NAME, LABELS_NAME):
            if name in self.viewer.layers:
                self.viewer.layers.remove(name)
        width = max(im.shape[1] for im in (source, target, mixed))
        # widths and text sizes in pixels of the images: they keep their proportions at any zoom
        self.viewer.add_shapes(
            rects,
            shape_type="rectangle",
            name=BOXES_NAME,
            edge_width=0.012 * width,
            edge_color=["magenta", "lime"],
            face_color="transparent",
            features={"box": ["cut", "paste"]},
        )
        # titles above the panels, outside their pixels
        height = max(im.shape[0] for im in (source, target, mixed))
        above = [(off[0] - 0.12 * height, off[1]) for off in offsets]
        text = {"string": "{title}", "color": "white", "size": 0.05 * width, "scaling": True,
                "anchor": "lower_left"}  # fmt: skip
        self.viewer.add_points(above, name=LABELS_NAME, size=0, features={"title": list(titles)}, text=text)
        margin = 0.05 * width
        right = offsets[2][1] + mixed.shape[1] + margin
        zoom_to_box(self.viewer, (offsets[0][1] - margin, above[0][0] - 0.1 * height, right, height + margin))
        # boxes are whole patches, so the area kept can differ from the λ asked for
        self.label.setText(f"λ used (area of the target kept) {lam:.2f}; mixed label {mixed_label}")

    def _place(self, images) -> list[tuple[float, float]]:
        """(y, x) offsets: the three panels side by side, right of everything else in the viewer."""
        others = [ly for ly in self.viewer.layers if ly.name not in (*PANEL_NAMES, BOXES_NAME, LABELS_NAME)]
        start = max((float(ly.extent.world[1][-1]) for ly in others), default=0.0)
        gap = 0.1 * max(im.shape[1] for im in images)
        x = start + gap if others else 0.0
        offsets = []
        for image in images:
            offsets.append((0.0, x))
            x += image.shape[1] + gap
        return offsets


def _rect(box: list[float], offset: tuple[float, float]) -> np.ndarray:
    """Corners (y, x) of an (x0, y0, x1, y1) box moved by ``offset``."""
    x0, y0, x1, y1 = box
    dy, dx = offset
    return np.array([[y0 + dy, x0 + dx], [y1 + dy, x1 + dx]], float)

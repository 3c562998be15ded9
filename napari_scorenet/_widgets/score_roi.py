"""Score RoI dock widget: score rectangles of a slide with a ScoreNet checkpoint and show the results."""

from __future__ import annotations

from pathlib import Path

import napari
import numpy as np
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from scorenet import export
from scorenet.choices import RoiSource, values
from scorenet.errors import ScoreNetInputError
from scorenet.inference import DEFAULT_MAX_PIXELS, check_roi, iter_score_rois
from scorenet.jobs import Cancelled, Progress
from scorenet.resolution import resolve_resolution
from scorenet.slide import open_slide

from ._form import DEVICES
from ._layers import roi_label, show_score, zoom_to_box
from ._roi import roi_from_view, roi_whole_slide, rois_from_shapes
from ._workers import cached_model, default_checkpoint_path, missing_checkpoint_message

ROI_SOURCES = values(RoiSource)


class ScoreRoIWidget(QWidget):
    """Pick a slide layer and RoIs, score them in a worker thread, show distribution, regions and classes."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = viewer
        self.results: list = []
        self.worker = None
        self.threads: int | None = None  # CPU threads of the model; None: the cores found free
        self._open: tuple[tuple, object] | None = None  # (file identity, Slide) kept between clicks
        self._noted: set[str] = set()  # resolution notes already shown: a toast per click would nag
        self._stop = False
        self._watched: list = []  # region layers whose selection zooms the viewer

        self.slide_box, self.source_box, self.shapes_box = QComboBox(), QComboBox(), QComboBox()
        self.source_box.addItems(ROI_SOURCES)
        self.mpp = QDoubleSpinBox(minimum=0.0, maximum=100.0, decimals=3, singleStep=0.25)
        self.mpp.setSpecialValueText("from checkpoint")
        self.unit = QComboBox()
        self.unit.addItems(["µm/px", "magnification (×)"])
        self.checkpoint = QLineEdit(str(default_checkpoint_path()))
        browse = QPushButton("…", clicked=self._browse)
        self.device = QComboBox()
        self.device.addItems(DEVICES)
        self.score_button = QPushButton("Score", clicked=self.run)
        self.cancel_button = QPushButton("Cancel", clicked=self.cancel, enabled=False)
        self.status = QLabel("")
        self.classes = QVBoxLayout()
        self.region_list = QListWidget()
        self.region_list.currentRowChanged.connect(self._zoom_to_row)

        form = QFormLayout()
        form.addRow("Slide layer", self.slide_box)
        form.addRow("RoI source", self.source_box)
        form.addRow("Shapes layer", self.shapes_box)
        resolution = QHBoxLayout()
        resolution.addWidget(self.mpp)
        resolution.addWidget(self.unit)
        form.addRow("Resolution", resolution)
        row = QHBoxLayout()
        row.addWidget(self.checkpoint)
        row.addWidget(browse)
        form.addRow("Checkpoint", row)
        form.addRow("Device", self.device)
        buttons = QHBoxLayout()
        buttons.addWidget(self.score_button)
        buttons.addWidget(self.cancel_button)
        exports = QHBoxLayout()
        for text, kind in (("GeoJSON", "geojson"), ("CSV", "csv"), ("PNG", "png")):
            button = QPushButton(f"Export {text}", clicked=lambda _=False, k=kind: self._export_dialog(k))
            exports.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addLayout(self.classes)
        layout.addWidget(QLabel("Top regions (click to zoom)"))
        layout.addWidget(self.region_list)
        layout.addLayout(exports)

        viewer.layers.events.inserted.connect(self._refresh_layers)
        viewer.layers.events.removed.connect(self._refresh_layers)
        self._refresh_layers()

    def _refresh_layers(self, *_: object) -> None:
        for box, wanted in ((self.slide_box, self._slide_layers), (self.shapes_box, self._shapes_layers)):
            current = box.currentText()
            box.clear()
            box.addItems([layer.name for layer in wanted()])
            if current:
                box.setCurrentText(current)

    def _slide_layers(self) -> list:
        images = [ly for ly in self.viewer.layers if isinstance(ly, napari.layers.Image)]
        return [ly for ly in images if "path" in ly.metadata]

    def _shapes_layers(self) -> list:
        return [ly for ly in self.viewer.layers if isinstance(ly, napari.layers.Shapes)]

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Checkpoint", "", "safetensors (*.safetensors)")
        if path:
            self.checkpoint.setText(path)

    def _rois(self, slide_layer, dimensions) -> list[tuple[int, int, int, int]]:
        source = self.source_box.currentText()
        if source == RoiSource.VIEW:
            return [roi_from_view(self.viewer, dimensions)]
        if source == RoiSource.WHOLE_SLIDE:
            return [roi_whole_slide(dimensions)]
        name = self.shapes_box.currentText()
        if name not in self.viewer.layers:
            raise ScoreNetInputError("choose a Shapes layer with rectangles, or another RoI source")
        rois = rois_from_shapes(self.viewer.layers[name])
        if not rois:
            raise ScoreNetInputError(f"Shapes layer {name!r} holds no rectangles")
        return rois

    def _requested(self) -> dict[str, float]:
        """The resolution asked for in the form: µm/px or magnification; empty: the checkpoint's."""
        value = self.mpp.value()
        if not value:
            return {}
        return {"mpp": value} if self.unit.currentIndex() == 0 else {"magnification": value}

    def _slide(self, path: str):
        """The slide at ``path``, kept open between clicks (opened again when the file changes)."""
        stat = Path(path).stat()
        key = (str(path), stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if self._open is None or self._open[0] != key:
            if self._open is not None:
                self._open[1].close()
            self._open = None
            self._open = (key, open_slide(path))
        return self._open[1]

    def run(self) -> None:
        """Check the inputs here (cheap), then score in a worker thread."""
        try:
            layers = {ly.name: ly for ly in self._slide_layers()}
            if self.slide_box.currentText() not in layers:
                raise ScoreNetInputError("no slide layer: open a slide with the ScoreNet reader first")
            path = layers[self.slide_box.currentText()].metadata["path"]
            ckpt = Path(self.checkpoint.text())
            if not ckpt.is_file():
                raise ScoreNetInputError(missing_checkpoint_message(ckpt))
            slide = self._slide(path)
            rois = self._rois(layers[self.slide_box.currentText()], slide.dimensions)
            model, info = cached_model(ckpt, self.device.currentText())
            # the rule `scorenet score` follows: a request the slide cannot honour is refused here too
            resolution = resolve_resolution(
                slide,
                **self._requested(),
                checkpoint_mpp=info.metadata.get("mpp"),
                thumbnail=self.source_box.currentText() == RoiSource.WHOLE_SLIDE,
            )
            for roi in rois:
                check_roi(slide, roi, resolution, DEFAULT_MAX_PIXELS)
        except Exception as err:  # any bad input ends as a notification, never a traceback dialog
            show_error(str(err))
            return
        if resolution.note and resolution.note not in self._noted:
            self._noted.add(resolution.note)
            show_warning(resolution.note)
        self._stop = False
        self.score_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText(f"scoring {len(rois)} RoI(s)…")
        self.worker = self._score(model, slide, rois, resolution, info.class_names,
                                  self.device.currentText(), _ignore_errors=True)
        self.worker.yielded.connect(self._on_progress)
        self.worker.returned.connect(self._show)
        self.worker.errored.connect(lambda err: show_error(str(err)))
        self.worker.finished.connect(self._done)
        # the bar lives in the main thread; napari shows it in the activity dock while the worker runs
        self._bar = napari.utils.progress(total=2 * len(rois), desc="Scoring RoIs")
        self.worker.start()

    @thread_worker
    def _score(self, model, slide, rois, resolution, class_names, device):
        try:
            return (yield from iter_score_rois(model, slide, rois, resolution=resolution, device=device,
                                               class_names=class_names, should_stop=lambda: self._stop,
                                               threads=self.threads))
        except Cancelled:
            return None

    def _on_progress(self, event: Progress) -> None:
        """Each RoI counts twice in the bar: once read, once scored."""
        self._bar.update(event.done - self._bar.n)
        self.status.setText(f"scored {event.info['scored']} of {event.info['rois']} RoI(s)…")

    def cancel(self) -> None:
        """Ask the worker to stop after the current RoI or batch."""
        self._stop = True

    def _done(self) -> None:
        self._bar.close()
        self.score_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.worker = None

    def _show(self, results) -> None:
        if results is None:
            self.status.setText("cancelled")
            show_warning("scoring cancelled")
            return
        self.results = results
        for score in results:
            _, regions = show_score(self.viewer, score)
            if regions not in self._watched:
                self._watched.append(regions)
                regions.selected_data.events.items_changed.connect(lambda *_, ly=regions: self._zoom_to(ly))
        self._show_classes(results[-1])
        self.region_list.clear()
        for score in results:
            for rank, value in zip(score.ranks, score.scores, strict=True):
                self.region_list.addItem(f"{roi_label(score)} #{rank}: {value:.4f}")
        self.status.setText(f"{len(results)} RoI(s): " + ", ".join(s.predicted for s in results))

    def _show_classes(self, score) -> None:
        while self.classes.count():
            self.classes.takeAt(0).widget().deleteLater()
        for name, p in zip(score.class_names, score.probabilities, strict=True):
            bar = QProgressBar(maximum=1000, value=int(round(1000 * float(p))))
            bar.setFormat(f"{name}: {100 * float(p):.1f} %")
            self.classes.addWidget(bar)

    def _zoom_to_row(self, row: int) -> None:
        k = len(self.results[0].ranks) if self.results else 0
        if row < 0 or not k:
            return
        score = self.results[row // k]
        zoom_to_box(self.viewer, score.boxes_level0[row % k])

    def _zoom_to(self, layer) -> None:
        """Selecting one region in its Shapes layer zooms onto it (level-0 px, as the layer's data)."""
        if len(layer.selected_data) != 1:
            return
        corners = np.asarray(layer.data[next(iter(layer.selected_data))])[:, -2:]
        (y0, x0), (y1, x1) = corners.min(axis=0), corners.max(axis=0)
        zoom_to_box(self.viewer, (x0, y0, x1, y1))

    def _export_dialog(self, kind: str) -> None:
        if not self.results:
            show_warning("nothing to export: score an RoI first")
            return
        path, _ = QFileDialog.getSaveFileName(self, f"Export {kind}", f"regions.{kind}")
        if path:
            self.export(kind, path)

    def export(self, kind: str, path: str | Path) -> Path | None:
        """Write the last (or only) result as GeoJSON, regions CSV or overlay PNG (atomically)."""
        writers = {"geojson": export.write_geojson, "csv": export.write_regions_csv,
                   "png": export.write_overlay_png}
        try:
            out = writers[kind](path, self.results[-1])
        except (OSError, ScoreNetInputError) as err:
            show_error(f"{path}: {err}")
            return None
        show_info(f"wrote {out}")
        return Path(out)

"""Score RoI dock widget: score rectangles of a slide with a ScoreNet checkpoint and show the results."""

from __future__ import annotations

import json
import time
from pathlib import Path

import napari
import numpy as np
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import (
    QCheckBox,
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
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from scorenet import export
from scorenet.atomic import atomic_write
from scorenet.choices import RoiSource, values
from scorenet.errors import ScoreNetInputError
from scorenet.inference import DEFAULT_MAX_PIXELS, check_roi, iter_score_rois, padding_note
from scorenet.jobs import Cancelled, Progress
from scorenet.resolution import resolve_resolution
from scorenet.slide import open_slide
from scorenet.slide_export import tiles_csv, tiles_geojson
from scorenet.wsi import DEFAULT_ROI_SIZE, SlideScoringConfig, iter_score_slide

from ._form import DEVICES
from ._layers import roi_label, show_score, zoom_to_box
from ._roi import roi_from_view, roi_whole_slide, rois_from_shapes
from ._slide_layers import HeatMap, click_to_inspect, legend_html, show_tissue
from ._uncertainty import concentration_text, selection_map, show_selection
from ._workers import cached_model, default_checkpoint_path, missing_checkpoint_message

ROI_SOURCES = values(RoiSource)


class ScoreRoIWidget(QWidget):
    """Pick a slide layer and RoIs, score them in a worker thread, show distribution, regions and classes.

    The "Whole slide (tissue tiles)" source scores RoIs tiled over the slide's tissue
    (``scorenet.wsi.iter_score_slide``) and fills a heat map layer in as they finish; clicking a cell
    (:meth:`inspect_tile`) shows that RoI as a single RoI is shown.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = viewer
        self.results: list = []
        self.slide_result = None  # the last whole-slide SlideScore (partial when cancelled)
        self.heat_map: HeatMap | None = None
        self.tissue_layer = None
        self._last: str | None = None  # "rois" or "slide": what the Export buttons write
        self._listed: list = []  # the scores whose regions the region list shows
        self._inspected: list = []  # the layers of the heat map cell inspected last
        self._started = 0.0  # when RoIs began to be scored (time left)
        self._queue: list = []  # worker signals waiting for the one being handled (see _in_order)
        self._draining = False
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
        # tile size of the whole-slide source, pixels at the read resolution: the model's input size
        self.tile_h, self.tile_w = (QSpinBox(minimum=64, maximum=16384, singleStep=64) for _ in range(2))
        self.tile_h.setValue(DEFAULT_ROI_SIZE[0])
        self.tile_w.setValue(DEFAULT_ROI_SIZE[1])
        self.show_tissue = QCheckBox("Show tissue mask")
        self.show_tissue.toggled.connect(self._toggle_tissue)
        self.legend = QLabel("")
        self.legend.setWordWrap(True)
        self.legend.hide()
        self.score_button = QPushButton("Score", clicked=self.run)
        self.cancel_button = QPushButton("Cancel", clicked=self.cancel, enabled=False)
        self.status = QLabel("")
        self.concentration = QLabel("")  # how far the last distribution is from uniform
        self.concentration.setWordWrap(True)
        # selection uncertainty: P(region among the top K) under the perturbed top-K's noise
        self.sigma = QDoubleSpinBox(minimum=0.001, maximum=10.0, decimals=3, singleStep=0.05, value=0.05)
        self.top_k = QSpinBox(minimum=1, maximum=4096, value=20)
        self.selection_button = QPushButton("Show selection uncertainty", clicked=self.show_selection)
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
        tile = QHBoxLayout()
        tile.addWidget(self.tile_h)
        tile.addWidget(QLabel("×"))
        tile.addWidget(self.tile_w)
        form.addRow("Tile size (h × w px)", tile)
        form.addRow("", self.show_tissue)
        uncertainty = QHBoxLayout()
        uncertainty.addWidget(QLabel("σ"))
        uncertainty.addWidget(self.sigma)
        uncertainty.addWidget(QLabel("K"))
        uncertainty.addWidget(self.top_k)
        uncertainty.addWidget(self.selection_button)
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
        layout.addWidget(self.concentration)
        layout.addLayout(uncertainty)
        layout.addWidget(self.legend)
        layout.addLayout(self.classes)
        layout.addWidget(QLabel("Top regions (click to zoom)"))
        layout.addWidget(self.region_list)
        layout.addLayout(exports)

        viewer.layers.events.inserted.connect(self._refresh_layers)
        viewer.layers.events.removed.connect(self._refresh_layers)
        self.source_box.currentTextChanged.connect(self._source_changed)
        self._refresh_layers()
        self._source_changed(self.source_box.currentText())

    def _source_changed(self, source: str) -> None:
        tiles = source == RoiSource.WHOLE_SLIDE_TILES
        for box in (self.tile_h, self.tile_w):
            box.setEnabled(tiles)

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
            tiled = self.source_box.currentText() == RoiSource.WHOLE_SLIDE_TILES
            rois = [] if tiled else self._rois(layers[self.slide_box.currentText()], slide.dimensions)
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
            config = SlideScoringConfig(roi_size=(self.tile_h.value(), self.tile_w.value()))
            config.check()
        except Exception as err:  # any bad input ends as a notification, never a traceback dialog
            show_error(str(err))
            return
        if resolution.note and resolution.note not in self._noted:
            self._noted.add(resolution.note)
            show_warning(resolution.note)
        if tiled:
            self._start_slide(model, slide, resolution, info.class_names, config)
            return
        self._stop = False
        self.score_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText(f"scoring {len(rois)} RoI(s)…")
        self.worker = self._score(
            model, slide, rois, resolution, info.class_names, self.device.currentText(), _ignore_errors=True
        )
        # in order: napari's bar processes events when it moves, which could run the result first
        self.worker.yielded.connect(self._in_order(self._on_progress))
        self.worker.returned.connect(self._in_order(self._show))
        self.worker.errored.connect(self._in_order(lambda err: show_error(str(err))))
        self.worker.finished.connect(self._in_order(self._done))
        # the bar lives in the main thread; napari shows it in the activity dock while the worker runs
        self._bar = napari.utils.progress(total=2 * len(rois), desc="Scoring RoIs")
        self.worker.start()

    @thread_worker
    def _score(self, model, slide, rois, resolution, class_names, device):
        try:
            return (
                yield from iter_score_rois(
                    model,
                    slide,
                    rois,
                    resolution=resolution,
                    device=device,
                    class_names=class_names,
                    should_stop=lambda: self._stop,
                    threads=self.threads,
                )
            )
        except Cancelled:
            return None

    def _on_progress(self, event: Progress) -> None:
        """Each RoI counts twice in the bar: once read, once scored."""
        self._bar.update(event.done - self._bar.n)
        self.status.setText(f"scored {event.info['scored']} of {event.info['rois']} RoI(s)…")

    def _start_slide(self, model, slide, resolution, class_names, config: SlideScoringConfig) -> None:
        """Score the slide's tissue RoIs in a worker; the heat map fills in batch by batch."""
        name = self.slide_box.currentText()
        self._stop = False
        self.score_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText("finding tissue…")
        self.heat_map = HeatMap(self.viewer, f"{name} heat map", class_names)
        self.heat_map.on_click(click_to_inspect(self.heat_map, self.inspect_tile))
        self._tissue_name = f"{name} tissue"
        self.legend.setText(legend_html(class_names))
        self.legend.show()
        self.worker = self._score_slide(model, slide, resolution, class_names, config,
                                        self.device.currentText(), _ignore_errors=True)  # fmt: skip
        self.worker.yielded.connect(self._in_order(self._on_slide_progress))
        self.worker.returned.connect(self._in_order(self._show_slide))
        self.worker.errored.connect(self._in_order(lambda err: show_error(str(err))))
        self.worker.finished.connect(self._in_order(self._done))
        # no total until the tissue is found: napari shows a busy bar, then RoIs done of N with time left
        self._bar = napari.utils.progress(total=0, desc="Finding tissue")
        self.worker.start()

    def _in_order(self, handler):
        """``handler`` as a slot that runs only after the slots called before it have returned.

        napari's progress bar runs ``QApplication.processEvents()`` when its value or description
        changes, so the next worker signal could be handled inside this one (the plan after the first
        batches, the result before the last batch); queued here, they run one after the other.
        """

        def slot(*args) -> None:
            self._queue.append((handler, args))
            if self._draining:
                return
            self._draining = True
            try:
                while self._queue:
                    call, queued = self._queue.pop(0)
                    try:
                        call(*queued)
                    except Exception as err:  # a notification; the slots after it (the end) still run
                        show_error(f"whole-slide scoring: {err}")
            finally:
                self._draining = False

        return slot

    @thread_worker
    def _score_slide(self, model, slide, resolution, class_names, config, device):
        try:
            return (yield from iter_score_slide(model, slide, resolution=resolution, class_names=class_names,
                                                config=config, device=device, should_stop=lambda: self._stop,
                                                threads=self.threads))  # fmt: skip
        except Cancelled as stopped:
            return stopped.partial  # the RoIs finished so far (SlideScore.complete is False)

    def _on_slide_progress(self, event: Progress) -> None:
        """The plan: tissue layer, empty heat map, bar total; then each scored batch: cells, bar, status."""
        if event.info.get("stage") == "planned":
            self.tissue_layer = show_tissue(self.viewer, self._tissue_name, event.info["tissue"])
            self.tissue_layer.visible = self.show_tissue.isChecked()
            self.tissue_layer.events.visible.connect(self._tissue_visibility)
            self.heat_map.ensure_layer()  # above the tissue layer, and the active layer: clicks reach it
            self._bar.reset(total=event.total)  # the clock restarts: the time left counts scoring only
            self._bar.set_description("Scoring tissue RoIs")
            self._started = time.monotonic()
            self.status.setText(f"0 of {event.total} RoIs")
            return
        tiles = event.info["tiles"]
        # the box each RoI's distribution covers, level 0 (the RoI fitted to the region grid)
        self.heat_map.add(tiles, [tuple(float(v) for v in tile.distribution_box_level0) for tile in tiles])
        self._bar.update(event.done - self._bar.n)
        left = ""
        if 0 < event.done < (event.total or 0):
            seconds = (time.monotonic() - self._started) / event.done * (event.total - event.done)
            left = f", about {_duration(seconds)} left"
        self.status.setText(f"{event.done} of {event.total} RoIs{left}")

    def _show_slide(self, result) -> None:
        if self.heat_map is not None:
            self.heat_map.flush()  # the last batches, if they came too fast to be drawn yet
        if self._cancelled(result):
            return
        self.slide_result = result
        self._last = "slide"
        done, planned = len(result.tiles), len(result.plan)
        if not planned:
            self.status.setText("no RoI with enough tissue")
            show_warning(f"{result.path}: no RoI has enough tissue to be scored")
        elif result.complete:
            shares = ", ".join(f"{c} {100 * f:.0f} %" for c, f in result.class_fractions().items())
            self.status.setText(f"{done} of {planned} RoIs; tissue area: {shares}")
        else:
            self.status.setText(f"cancelled: {done} of {planned} RoIs kept")
            show_warning(f"scoring cancelled: the heat map keeps the {done} RoIs finished")

    def inspect_tile(self, index: int) -> None:
        """Show heat map cell ``index`` (its plan index) as a single RoI: distribution, regions, classes;
        zoom onto it. What a click on the cell does."""
        if self.heat_map is None or index not in self.heat_map.boxes:
            show_warning(f"RoI {index} of the slide has not been scored")
            return
        view = self.heat_map.view(index)
        for layer in self._inspected:  # one inspected cell at a time: the previous one's layers go
            if layer in self.viewer.layers and not layer.name.startswith(roi_label(view)):
                self.viewer.layers.remove(layer)
                if layer in self._watched:
                    self._watched.remove(layer)
        dist, regions = show_score(self.viewer, view)
        self._inspected = [dist, regions]
        self._watch(regions)
        self._show_classes(view)
        self._listed = [view]
        self._list_regions(self._listed)
        x, y, w, h = view.roi
        zoom_to_box(self.viewer, (x, y, x + w, y + h))
        if self.heat_map.layer in self.viewer.layers:  # the next click goes to the heat map again
            self.viewer.layers.selection.active = self.heat_map.layer
        p = float(view.probabilities[view.class_names.index(view.predicted)])
        self.status.setText(f"RoI {index} ({x},{y} {w}x{h}): {view.predicted} {100 * p:.1f} %")
        self.concentration.setText(concentration_text(view))

    def _toggle_tissue(self, shown: bool) -> None:
        if self.tissue_layer is not None and self.tissue_layer in self.viewer.layers:
            self.tissue_layer.visible = shown

    def _tissue_visibility(self, event) -> None:
        """Keep the checkbox in step with the layer's eye in the layer list."""
        self.show_tissue.blockSignals(True)
        self.show_tissue.setChecked(bool(event.source.visible))
        self.show_tissue.blockSignals(False)

    def show_selection(self) -> None:
        """Each region's probability of selection under σ noise and top K, for the last scored RoI."""
        score = self.results[-1] if self.results and self._last == "rois" else None
        if score is None:
            show_warning("score an RoI first (for a whole-slide cell, score that RoI itself)")
            return
        try:
            model, _ = cached_model(Path(self.checkpoint.text()), self.device.currentText())
            k = min(self.top_k.value(), score.distribution.size)
            sigma = self.sigma.value()
        except Exception as err:  # bad input is a notification, not a traceback dialog
            show_error(str(err))
            return
        worker = self._selection(model, score, sigma, k, _ignore_errors=True)
        worker.returned.connect(lambda probability: show_selection(self.viewer, score, probability, sigma, k))
        worker.errored.connect(lambda err: show_error(str(err)))
        self.selection_button.setEnabled(False)
        worker.finished.connect(lambda: self.selection_button.setEnabled(True))
        self.selection_worker = worker
        worker.start()

    @thread_worker
    def _selection(self, model, score, sigma: float, k: int):
        return selection_map(model, score, sigma, k)

    def cancel(self) -> None:
        """Ask the worker to stop after the current RoI or batch."""
        self._stop = True

    def _done(self) -> None:
        self._bar.close()
        self.score_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.worker = None

    def _cancelled(self, result) -> bool:
        """Whether a job returned nothing because it was cancelled; then says so."""
        if result is not None:
            return False
        self.status.setText("cancelled")
        show_warning("scoring cancelled")
        return True

    def _show(self, results) -> None:
        if self._cancelled(results):
            return
        self.results = results
        self._last = "rois"
        self._listed = list(results)
        for score in results:
            self._watch(show_score(self.viewer, score)[1])
        self._show_classes(results[-1])
        self._list_regions(results)
        for score in results:
            if score.padded_fraction > 0:  # never silent: the share scored on white padding
                show_warning(padding_note(self.slide_box.currentText(), score))
        self.status.setText(f"{len(results)} RoI(s): " + ", ".join(s.predicted for s in results))
        self.concentration.setText(concentration_text(results[-1]))
        self.top_k.setValue(len(results[-1].ranks))

    def _watch(self, regions) -> None:
        """Selecting a box in the ``regions`` Shapes layer zooms onto it (connected once per layer)."""
        if regions not in self._watched:
            self._watched.append(regions)
            regions.selected_data.events.items_changed.connect(lambda *_, ly=regions: self._zoom_to(ly))

    def _list_regions(self, scores) -> None:
        """The region list: every region of ``scores`` by rank, with its score."""
        self.region_list.clear()
        for score in scores:
            for rank, value in zip(score.ranks, score.scores, strict=True):
                self.region_list.addItem(f"{roi_label(score)} #{rank}: {value:.4f}")

    def _show_classes(self, score) -> None:
        while self.classes.count():
            self.classes.takeAt(0).widget().deleteLater()
        for name, p in zip(score.class_names, score.probabilities, strict=True):
            bar = QProgressBar(maximum=1000, value=int(round(1000 * float(p))))
            bar.setFormat(f"{name}: {100 * float(p):.1f} %")
            self.classes.addWidget(bar)

    def _zoom_to_row(self, row: int) -> None:
        k = len(self._listed[0].ranks) if self._listed else 0
        if row < 0 or not k:
            return
        score = self._listed[row // k]
        zoom_to_box(self.viewer, score.boxes_level0[row % k])

    def _zoom_to(self, layer) -> None:
        """Selecting one region in its Shapes layer zooms onto it (level-0 px, as the layer's data)."""
        if len(layer.selected_data) != 1:
            return
        corners = np.asarray(layer.data[next(iter(layer.selected_data))])[:, -2:]
        (y0, x0), (y1, x1) = corners.min(axis=0), corners.max(axis=0)
        zoom_to_box(self.viewer, (x0, y0, x1, y1))

    def _export_dialog(self, kind: str) -> None:
        if self._last == "slide" and kind == "png":
            show_warning(_NO_SLIDE_PNG)
            return
        if self._last is None:
            show_warning(_NOTHING_YET)
            return
        default = f"{'tiles' if self._last == 'slide' else 'regions'}.{kind}"
        path, _ = QFileDialog.getSaveFileName(self, f"Export {kind}", default)
        if path:
            self.export(kind, path)

    def export(self, kind: str, path: str | Path) -> Path | None:
        """Write what was scored last, atomically: for RoIs the last result as GeoJSON, regions CSV or
        overlay PNG; for a whole slide its RoIs as GeoJSON (QuPath detections with a probability
        measurement per class) or CSV (``scorenet.slide_export``), the RoIs finished when cancelled."""
        if self._last is None:
            show_warning(_NOTHING_YET)
            return None
        if self._last == "slide":
            return self._export_slide(kind, path)
        writers = {
            "geojson": export.write_geojson,
            "csv": export.write_regions_csv,
            "png": export.write_overlay_png,
        }
        try:
            out = writers[kind](path, self.results[-1])
        except (OSError, ScoreNetInputError) as err:
            show_error(f"{path}: {err}")
            return None
        show_info(f"wrote {out}")
        return Path(out)

    def _export_slide(self, kind: str, path: str | Path) -> Path | None:
        result = self.slide_result
        if kind == "png":
            show_warning(_NO_SLIDE_PNG)
            return None
        try:
            text = json.dumps(tiles_geojson(result)) if kind == "geojson" else tiles_csv(result)
            out = atomic_write(path, text)
        except OSError as err:
            show_error(f"{path}: {err}")
            return None
        show_info(f"wrote {out} ({len(result.tiles)} of {len(result.plan)} RoIs)")
        return Path(out)


_NOTHING_YET = "nothing to export: score an RoI first"
_NO_SLIDE_PNG = "PNG export shows one RoI: for a whole slide, export its RoIs as GeoJSON or CSV"


def _duration(seconds: float) -> str:
    """``40 s``, ``3 min``, ``1 h 05 min``: a time left, no more precise than it can be."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"

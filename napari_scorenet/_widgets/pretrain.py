"""Pretrain widget: self-supervised pre-training on open slides and/or a folder, in a worker, with Cancel."""

from __future__ import annotations

from pathlib import Path

import napari
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QWidget,
)
from scorenet.choices import PRETRAIN, Model, values
from scorenet.jobs import Progress
from scorenet.pretrain import (
    PRETRAIN_MODES,
    PRETRAIN_PARTS,
    STATE,
    PretrainConfig,
    PretrainResult,
    iter_pretrain,
)
from scorenet.slide import SUPPORTED_SUFFIXES

from ._folders import PathPicker, readable_folder
from ._form import DEVICES, resume_after_run, resume_checkbox, saved_run_warning, stack_form
from ._plots import LinePlot

PATH_ROLE = Qt.ItemDataRole.UserRole


def layer_source_path(layer) -> str | None:
    """The slide or image file an Image layer was read from, or None (e.g. an array made in Python)."""
    if not isinstance(layer, napari.layers.Image):
        return None
    # the plugin's reader records the path; layers opened by other readers only have layer.source
    path = layer.metadata.get("path") or getattr(layer.source, "path", None)
    if not path or Path(path).suffix.lower() not in SUPPORTED_SUFFIXES or not Path(path).is_file():
        return None
    return str(path)


class PretrainWidget(QWidget):
    """Sources (open slide layers, a folder), output folder and main options, Run/Cancel, live loss."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = viewer
        self.worker = None
        self.result: PretrainResult | None = None
        self.overrides: dict = {}  # model config overrides (e.g. a smaller model for a quick run)
        self._stop = False
        self.layers = QListWidget()
        self.layers.setToolTip("slide and image layers read from a file; checked ones are pre-trained on")
        self.layers.setMaximumHeight(110)
        self.folder = PathPicker()
        self.folder.edit.setPlaceholderText("none: the checked layers only")
        self.out = PathPicker(str(Path.home() / "scorenet-runs" / "pretrain"))
        self.model = QComboBox()
        self.model.addItems(values(Model))
        self.model.setCurrentText(PRETRAIN.model)
        self.model.setToolTip("finetune the same model from these weights")
        self.mode = QComboBox()
        self.mode.addItems(PRETRAIN_MODES)
        self.mode.setCurrentText(PRETRAIN.mode)
        self.mode.setToolTip("modular: DINO per part; unbiased: the paper's end-to-end pretext")
        self.part = QComboBox()
        self.part.addItems(PRETRAIN_PARTS)
        self.part.setCurrentText(PRETRAIN.part)
        self.mode.currentTextChanged.connect(lambda mode: self.part.setEnabled(mode == "modular"))
        self.epochs = QSpinBox(minimum=1, maximum=10000, value=PRETRAIN.epochs)
        self.samples = QSpinBox(minimum=2, maximum=1_000_000, value=PRETRAIN.samples_per_epoch, singleStep=64)
        self.batch_size = QSpinBox(minimum=2, maximum=1024, value=PRETRAIN.batch_size)
        self.local_crops = QSpinBox(minimum=0, maximum=32, value=PRETRAIN.local_crops)
        self.local_crops.setToolTip("small DINO views per sample (modular mode); fewer is faster")
        self.mpp = QDoubleSpinBox(minimum=0.0, maximum=100.0, decimals=3, singleStep=0.25)
        self.mpp.setSpecialValueText("each source's own")
        self.device = QComboBox()
        self.device.addItems(DEVICES)
        self.device.setCurrentText(PRETRAIN.device)
        self.resume = resume_checkbox()
        self.start_button = QPushButton("Run", clicked=self.run)
        self.cancel_button = QPushButton("Cancel", clicked=self.cancel, enabled=False)
        self.bar = QProgressBar()
        self.plot = LinePlot()
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        rows = (
            ("Open slides", self.layers),
            ("Folder", self.folder),
            ("Output folder", self.out),
            ("Model", self.model),
            ("Mode", self.mode),
            ("Part", self.part),
            ("Epochs", self.epochs),
            ("Samples per epoch", self.samples),
            ("Batch size", self.batch_size),
            ("Local crops", self.local_crops),
            ("µm/px", self.mpp),
            ("Device", self.device),
            ("Resume", self.resume),
        )
        below = (self.bar, QLabel("Pre-training loss (per step / epoch mean)"), self.plot, self.status)
        stack_form(self, rows, (self.start_button, self.cancel_button), below)

        viewer.layers.events.inserted.connect(self._refresh_layers)
        viewer.layers.events.removed.connect(self._refresh_layers)
        self._refresh_layers()

    def _refresh_layers(self, *_: object) -> None:
        """List the file-backed image layers; a new one starts checked, known ones keep their check."""
        was = {
            self.layers.item(i).data(PATH_ROLE): self.layers.item(i).checkState()
            for i in range(self.layers.count())
        }
        self.layers.clear()
        for layer in self.viewer.layers:
            path = layer_source_path(layer)
            if path is None:
                continue
            item = QListWidgetItem(layer.name)
            item.setData(PATH_ROLE, path)
            item.setToolTip(path)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(was.get(path, Qt.CheckState.Checked))
            self.layers.addItem(item)

    def sources(self) -> list[str]:
        """The checked layers' files, then the folder if one is given (deduplicated, in order)."""
        items = (self.layers.item(i) for i in range(self.layers.count()))
        paths = [it.data(PATH_ROLE) for it in items if it.checkState() == Qt.CheckState.Checked]
        if self.folder.text():
            paths.append(str(readable_folder(self.folder.text(), "slide")))
        return list(dict.fromkeys(paths))

    def config(self) -> PretrainConfig:
        """The run described by the form; raises ScoreNetInputError for bad sources or options."""
        config = PretrainConfig(
            sources=self.sources(),
            out=Path(self.out.text()).expanduser(),
            mode=self.mode.currentText(),
            part=self.part.currentText(),
            model=self.model.currentText(),
            overrides=dict(self.overrides),
            epochs=self.epochs.value(),
            samples_per_epoch=self.samples.value(),
            batch_size=self.batch_size.value(),
            local_crops=self.local_crops.value(),
            mpp=self.mpp.value() or None,
            device=self.device.currentText(),
            resume=self.resume.isChecked(),
        )
        config.check()
        return config

    def run(self) -> None:
        try:
            config = self.config()
        except Exception as err:  # bad input is a notification, not a traceback dialog
            self._fail(err)
            return
        note = saved_run_warning(config.out / STATE, config.resume)
        if note:
            show_warning(note)
        self._stop = False
        self.result = None
        self.plot.clear()
        self.bar.setValue(0)
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText(f"pre-training on {len(config.sources)} source(s)…")
        self.worker = self._pretrain(config, _ignore_errors=True)
        self.worker.yielded.connect(self._on_event)
        self.worker.returned.connect(self._on_result)
        self.worker.errored.connect(self._fail)
        self.worker.finished.connect(self._done)
        self.worker.start()

    @thread_worker
    def _pretrain(self, config: PretrainConfig):
        return (yield from iter_pretrain(config, should_stop=lambda: self._stop))

    def cancel(self) -> None:
        """Stop between steps; the last finished epoch's weights are kept."""
        self._stop = True
        self.status.setText("stopping after the current step…")

    def _fail(self, err: BaseException) -> None:
        show_error(str(err))
        self.status.setText(str(err))

    def _on_event(self, event: Progress) -> None:
        self.bar.setMaximum(event.total or 0)
        self.bar.setValue(event.done)
        self.plot.append("epoch loss" if event.info.get("epoch_end") else "loss", event.info["loss"])

    def _on_result(self, result: PretrainResult) -> None:
        self.result = result
        epochs = len(result.history)
        if result.collapsed:  # continuing a collapsed run would only report the collapse again
            self.resume.setChecked(False)
            self.status.setText(f"{result.collapsed} (after {epochs} epoch(s); weights: {result.weights})")
            show_warning(result.collapsed)
            return
        if not epochs:
            self.status.setText("stopped before the first epoch ended; nothing saved")
            show_warning("pre-training stopped before the first epoch ended; nothing saved")
            return
        state = "stopped" if result.stopped else "finished"
        resume = resume_after_run(self.resume, result.stopped, epochs, "Run")
        self.status.setText(
            f"{state} after {epochs} epoch(s), loss {result.history[-1]['loss']:.4g}; "
            f"weights: {result.weights} (use as Initial weights in Finetune){resume}"
        )
        (show_warning if result.stopped else show_info)(f"pre-training {state}; weights: {result.weights}")

    def _done(self) -> None:
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.worker = None

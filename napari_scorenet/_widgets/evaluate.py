"""Evaluate widget: metrics of a checkpoint on a labelled folder, shown and saved as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import napari
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import (
    QComboBox,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from scorenet.atomic import atomic_write
from scorenet.evaluate import iter_evaluate_checkpoint
from scorenet.jobs import Cancelled, Progress

from ._folders import PathPicker, readable_folder
from ._form import DEVICES, stack_form
from ._plots import ClassBars, confusion_table
from ._workers import default_checkpoint_path, missing_checkpoint_message


class EvaluateWidget(QWidget):
    """Data folder, checkpoint, split; weighted F1, per-class F1 and confusion matrix, saved to JSON."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = viewer
        self.worker = None
        self.metrics: dict | None = None
        self.saved: Path | None = None
        self._stop = False
        self.data = PathPicker()
        self.checkpoint = PathPicker(
            str(default_checkpoint_path()), folder=False, name_filter="safetensors (*.safetensors)"
        )
        self.split = QComboBox()
        self.split.addItems(["default", "test", "val", "train"])
        self.device = QComboBox()
        self.device.addItems(DEVICES)
        self.out = PathPicker()
        self.out.edit.setPlaceholderText("metrics JSON folder (default: beside the checkpoint)")
        self.start_button = QPushButton("Evaluate", clicked=self.run)
        self.cancel_button = QPushButton("Cancel", clicked=self.cancel, enabled=False)
        self.bar = QProgressBar()
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.f1 = ClassBars()
        self.matrix_box = QVBoxLayout()

        rows = (("Data folder", self.data), ("Checkpoint", self.checkpoint), ("Split", self.split),
                ("Device", self.device), ("Save to", self.out))  # fmt: skip
        below = (self.bar, self.summary, self.f1, self.matrix_box)
        stack_form(self, rows, (self.start_button, self.cancel_button), below)

    def run(self) -> None:
        try:
            data = readable_folder(self.data.text(), "data")
            checkpoint = Path(self.checkpoint.text()).expanduser()
            if not checkpoint.is_file():
                raise FileNotFoundError(missing_checkpoint_message(checkpoint))
            out_dir = readable_folder(self.out.text(), "output") if self.out.text() else checkpoint.parent
        except Exception as err:  # bad input is a notification, not a traceback dialog
            show_error(str(err))
            return
        self._stop = False
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        split = None if self.split.currentText() == "default" else self.split.currentText()
        self.worker = self._evaluate(data, checkpoint, split, self.device.currentText(), _ignore_errors=True)
        self.worker.yielded.connect(self._on_progress)
        self.worker.returned.connect(lambda metrics: self._on_result(metrics, out_dir))
        self.worker.errored.connect(self._on_error)
        self.worker.finished.connect(self._done)
        self.worker.start()

    @thread_worker
    def _evaluate(self, data, checkpoint, split, device):
        job = iter_evaluate_checkpoint(data, checkpoint, split=split, device=device,
                                       should_stop=lambda: self._stop)  # fmt: skip
        return (yield from job)

    def cancel(self) -> None:
        """Stop between batches; nothing is saved."""
        self._stop = True

    def _on_progress(self, event: Progress) -> None:
        self.bar.setMaximum(event.total or 0)
        self.bar.setValue(event.done)

    def _on_error(self, err: Exception) -> None:
        if isinstance(err, Cancelled):
            show_warning("evaluation stopped")
            self.summary.setText("stopped")
        else:
            show_error(str(err))

    def _on_result(self, metrics: dict, out_dir: Path) -> None:
        self.metrics = metrics
        names = metrics["class_names"]
        absent = [n for n in names if metrics["per_class_f1"][n] is None]  # no images: no F1
        self.summary.setText(
            f"{metrics['num_images']} images ({metrics['split']}): weighted F1 "
            f"{metrics['weighted_f1']:.3f}, accuracy {metrics['accuracy']:.3f}"
            + (f"; no images of {', '.join(absent)}" if absent else "")
        )
        self.f1.set_values(names, [metrics["per_class_f1"][n] for n in names], " F1")
        while self.matrix_box.count():
            self.matrix_box.takeAt(0).widget().deleteLater()
        self.matrix_box.addWidget(confusion_table(metrics["confusion_matrix"], names))
        self.saved = out_dir / f"{Path(metrics['checkpoint']).stem}_metrics.json"
        try:
            atomic_write(self.saved, json.dumps(metrics, indent=2))
        except OSError as err:
            show_error(f"{self.saved}: {err}")
            return
        show_info(f"metrics saved to {self.saved}")

    def _done(self) -> None:
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.worker = None

"""Finetune widget: train ScoreNet on labelled folders in a worker, with a live loss plot and Cancel."""

from __future__ import annotations

from pathlib import Path

import napari
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QWidget,
)
from scorenet.choices import DEFAULT_RECIPE, TRAIN, Mix, Model, values
from scorenet.jobs import Progress
from scorenet.recipes import RECIPES
from scorenet.train import STATE, TrainConfig, iter_train

from ._folders import PathPicker, readable_folder
from ._form import DEVICES, resume_after_run, resume_checkbox, saved_run_warning, stack_form
from ._plots import ClassBars, LinePlot

# the form starts where `scorenet train` does: the default recipe on TrainConfig's defaults
START = RECIPES[DEFAULT_RECIPE]


class FinetuneWidget(QWidget):
    """Data and output folders, the main options, Start/Cancel, live loss and validation F1."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = viewer
        self.worker = None
        self.result = None
        self.overrides: dict = {}  # model config overrides (e.g. a smaller model for a quick run)
        self._stop = False
        self.data = PathPicker()
        self.out = PathPicker(str(Path.home() / "scorenet-runs" / "finetune"))
        self.model = QComboBox()
        self.model.addItems(values(Model))
        self.model.setCurrentText(TRAIN.model)
        self.init = PathPicker(folder=False, name_filter="safetensors (*.safetensors)")
        self.init.edit.setPlaceholderText("none: from scratch")
        self.init.setToolTip("pre-trained weights or a ScoreNet checkpoint; the head always starts fresh")
        self.recipe = QComboBox()
        self.recipe.addItems(list(RECIPES))
        self.recipe.setCurrentText(DEFAULT_RECIPE)
        self.recipe.setToolTip("scratch: for a randomly initialised model; paper: the paper's SGD finetuning")
        self.epochs = QSpinBox(minimum=1, maximum=1000, value=START.get("epochs", TRAIN.epochs))
        self.batch_size = QSpinBox(minimum=1, maximum=1024, value=TRAIN.batch_size)
        self.lr = QDoubleSpinBox(minimum=0.0, maximum=1.0, decimals=5, singleStep=1e-4)
        self.lr.setSpecialValueText("recipe default")
        self.mix = QComboBox()
        self.mix.addItems(values(Mix))
        self.mix.setCurrentText(TRAIN.mix)
        self.fraction = QDoubleSpinBox(minimum=0.01, maximum=1.0, singleStep=0.05, value=TRAIN.fraction)
        self.device = QComboBox()
        self.device.addItems(DEVICES)
        self.device.setCurrentText(TRAIN.device)
        self.resume = resume_checkbox()
        self.start_button = QPushButton("Start", clicked=self.run)
        self.cancel_button = QPushButton("Cancel", clicked=self.cancel, enabled=False)
        self.bar = QProgressBar()
        self.plot = LinePlot()
        self.f1 = ClassBars()
        self.status = QLabel("")
        self.status.setWordWrap(True)

        rows = (
            ("Data folder", self.data),
            ("Output folder", self.out),
            ("Model", self.model),
            ("Initial weights", self.init),
            ("Recipe", self.recipe),
            ("Epochs", self.epochs),
            ("Batch size", self.batch_size),
            ("Learning rate", self.lr),
            ("Mixing", self.mix),
            ("Data fraction", self.fraction),
            ("Device", self.device),
            ("Resume", self.resume),
        )
        plot_title = QLabel("Training loss / validation weighted F1")
        below = (self.bar, plot_title, self.plot, self.f1, self.status)
        stack_form(self, rows, (self.start_button, self.cancel_button), below)

    def config(self) -> TrainConfig:
        """The run described by the form; raises ScoreNetInputError for bad folders or options."""
        chosen = {"lr": self.lr.value()} if self.lr.value() else {}
        init = Path(self.init.text()).expanduser() if self.init.text() else None
        config = TrainConfig.from_recipe(
            self.recipe.currentText(),
            data=readable_folder(self.data.text(), "data"),
            out=Path(self.out.text()).expanduser(),
            model=self.model.currentText(),
            epochs=self.epochs.value(),
            batch_size=self.batch_size.value(),
            mix=self.mix.currentText(),
            fraction=self.fraction.value(),
            device=self.device.currentText(),
            overrides=dict(self.overrides),
            init=init,
            resume=self.resume.isChecked(),
            **chosen,
        )
        config.check()
        return config

    def run(self) -> None:
        try:
            config = self.config()
            init = config.check_init()
        except Exception as err:  # bad input is a notification, not a traceback dialog
            show_error(str(err))
            self.status.setText(str(err))
            return
        note = saved_run_warning(config.out / STATE, config.resume)
        if note:
            show_warning(note)
        self._stop = False
        self.plot.clear()
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText(f"training… {init.summary()}" if init else "training…")
        self.worker = self._train(config, _ignore_errors=True)
        self.worker.yielded.connect(self._on_event)
        self.worker.returned.connect(self._on_result)
        self.worker.errored.connect(lambda err: show_error(str(err)))
        self.worker.finished.connect(self._done)
        self.worker.start()

    @thread_worker
    def _train(self, config: TrainConfig):
        return (yield from iter_train(config, should_stop=lambda: self._stop))

    def cancel(self) -> None:
        """Stop between steps; the last finished epoch's checkpoint is kept."""
        self._stop = True
        self.status.setText("stopping after the current step…")

    def _on_event(self, event: Progress) -> None:
        self.bar.setMaximum(event.total or 0)
        self.bar.setValue(event.done)
        if not event.info.get("epoch_end"):
            self.plot.append("loss", event.info["loss"])
        elif "val_weighted_f1" in event.info:
            self.plot.append("val weighted F1", event.info["val_weighted_f1"])

    def _on_result(self, result) -> None:
        self.result = result
        last = result.history[-1] if result.history else {}
        if "val_per_class_f1" in last:
            names = list(last["val_per_class_f1"])
            self.f1.set_values(names, [last["val_per_class_f1"][n] for n in names], " F1")
        state = "stopped" if result.stopped else "finished"
        f1 = f"; validation weighted F1 {last['val_weighted_f1']:.3f}" if "val_weighted_f1" in last else ""
        epochs = len(result.history)
        resume = resume_after_run(self.resume, result.stopped, epochs, "Start")
        self.status.setText(f"{state} after {epochs} epoch(s){f1}; best: {result.best_checkpoint}{resume}")
        (show_warning if result.stopped else show_info)(f"training {state}; checkpoints in {result.out}")

    def _done(self) -> None:
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.worker = None

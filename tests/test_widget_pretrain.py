"""Pretrain widget on a real slide opened in the viewer: a run, Cancel, and bad sources as notifications."""

from __future__ import annotations

import numpy as np
import pytest
from napari.utils.notifications import notification_manager
from scorenet.pretrained import read_pretrained_info
from small_model import SMALL

from napari_scorenet._widgets import pretrain
from napari_scorenet._widgets.pretrain import PretrainWidget

SLIDE = "cmu_small_region.svs"


@pytest.fixture
def notes(monkeypatch):
    seen: dict[str, list[str]] = {"error": [], "warning": [], "info": []}
    for kind in seen:
        monkeypatch.setattr(pretrain, f"show_{kind}", seen[kind].append)
    return seen


@pytest.fixture
def no_tracebacks():
    """napari records a worker's unhandled error (its traceback dialog) here; a run must add none."""
    before = len(notification_manager.records)
    yield
    assert notification_manager.records[before:] == []


@pytest.fixture
def slide_viewer(make_napari_viewer, slides_dir):
    """A viewer with the real slide open through the plugin's reader."""
    viewer = make_napari_viewer()
    viewer.open(str(slides_dir / SLIDE), plugin="napari-scorenet")
    return viewer


def _widget(viewer, out, epochs: int = 2) -> PretrainWidget:
    widget = PretrainWidget(viewer)
    widget.out.setText(str(out))
    widget.epochs.setValue(epochs)
    widget.samples.setValue(4)
    widget.batch_size.setValue(2)
    widget.local_crops.setValue(1)
    widget.part.setCurrentText("local")  # the high-resolution branch alone: the quickest real run
    widget.device.setCurrentText("cpu")
    widget.overrides = dict(SMALL)
    return widget


def _leftovers(out) -> list[str]:
    """Half-written files: anything but the finished run's own files (writes go through a temp name)."""
    done = {"pretrained.safetensors", "pretrain_state.pt", "pretrain_config.json", "log.csv", "log.json"}
    return sorted(p.name for p in out.iterdir() if p.name not in done)


def test_pretrain_open_slide(slide_viewer, qtbot, slides_dir, tmp_path, notes, no_tracebacks):
    viewer = slide_viewer
    viewer.add_image(np.zeros((8, 8, 3), np.uint8), name="array", rgb=True)  # no file: not a source
    widget = _widget(viewer, tmp_path / "run")
    assert widget.sources() == [str(slides_dir / SLIDE)]
    widget.start_button.click()
    assert not widget.start_button.isEnabled() and widget.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    assert not notes["error"], notes
    result = widget.result
    assert not result.stopped and result.collapsed is None and len(result.history) == 2
    assert result.weights == tmp_path / "run" / "pretrained.safetensors" and result.weights.is_file()
    info = read_pretrained_info(result.weights)
    assert info.parts == ["local_vit"] and info.metadata["sources"] == [str(slides_dir / SLIDE)]
    # 2 steps per epoch (4 samples, batch 2): one point per step and one per epoch, from the worker
    assert len(widget.plot.series["loss"]) == 4 and len(widget.plot.series["epoch loss"]) == 2
    assert widget.bar.value() == widget.bar.maximum() == 4
    assert str(result.weights) in widget.status.text() and "Initial weights" in widget.status.text()
    assert notes["info"] and widget.start_button.isEnabled() and not widget.cancel_button.isEnabled()
    assert _leftovers(tmp_path / "run") == []


def test_pretrain_cancel_keeps_last_epoch(slide_viewer, qtbot, tmp_path, notes, no_tracebacks):
    widget = _widget(slide_viewer, tmp_path / "run", epochs=5)

    def stop_after_first_epoch(event):
        if event.info.get("epoch_end"):
            widget.cancel()

    widget.start_button.click()
    widget.worker.yielded.connect(stop_after_first_epoch)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    result = widget.result
    assert result.stopped and len(result.history) == 1 and result.weights.is_file()
    assert (tmp_path / "run" / "log.csv").read_text().count("\n") == 2  # header and epoch 1
    assert "stopped after 1 epoch(s)" in widget.status.text()
    assert notes["warning"] and not notes["error"]
    assert _leftovers(tmp_path / "run") == []


def test_pretrain_resume_after_cancel_continues_the_saved_run(
    slide_viewer, qtbot, tmp_path, notes, no_tracebacks
):
    widget = _widget(slide_viewer, tmp_path / "run", epochs=2)
    assert not widget.resume.isChecked()
    widget.start_button.click()
    widget.worker.yielded.connect(lambda event: event.info.get("epoch_end") and widget.cancel())
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    first = widget.result.history
    assert widget.result.stopped and len(first) == 1
    # a cancelled run ticks Resume: Run again goes on from the saved epoch, it does not start afresh
    assert widget.resume.isChecked() and "Resume is ticked" in widget.status.text()
    warnings = len(notes["warning"])
    widget.start_button.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    assert len(notes["warning"]) == warnings and not notes["error"], notes  # nothing to warn about
    result = widget.result
    assert not result.stopped and len(result.history) == 2 and result.history[0] == first[0]
    assert len(widget.plot.series["loss"]) == 2  # the steps of epoch 2 only: epoch 1 was not redone
    assert (tmp_path / "run" / "log.csv").read_text().count("\n") == 3  # header and epochs 1, 2
    assert not widget.resume.isChecked()  # finished: nothing left to continue
    # starting afresh over a saved run, or resuming where none is saved, is said before the run
    widget.start_button.click()
    assert "holds an earlier run" in notes["warning"][-1] and str(tmp_path / "run") in notes["warning"][-1]
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    widget.out.setText(str(tmp_path / "empty"))
    widget.resume.setChecked(True)
    widget.start_button.click()
    assert "no saved run to resume" in notes["warning"][-1]
    widget.cancel()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)


def test_pretrain_cancel_in_first_epoch_saves_no_weights(slide_viewer, qtbot, tmp_path, notes, no_tracebacks):
    widget = _widget(slide_viewer, tmp_path / "run")
    widget.start_button.click()
    widget.worker.yielded.connect(lambda event: widget.cancel())  # after the first step
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    assert widget.result.stopped and widget.result.history == []
    assert not widget.result.weights.exists() and "nothing saved" in widget.status.text()
    assert notes["warning"] and not notes["error"]
    assert _leftovers(tmp_path / "run") == []


def test_pretrain_bad_sources_notify(make_napari_viewer, qtbot, tmp_path, notes, no_tracebacks):
    widget = _widget(make_napari_viewer(), tmp_path / "run")
    widget.start_button.click()  # no slide open, no folder
    assert "at least one" in notes["error"][-1] and widget.worker is None
    widget.folder.setText(str(tmp_path / "missing"))
    widget.start_button.click()
    assert "missing" in notes["error"][-1] and widget.worker is None
    empty = tmp_path / "empty"
    empty.mkdir()
    widget.folder.setText(str(empty))
    widget.start_button.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    assert len(notes["error"]) == 3 and str(empty) in notes["error"][-1], notes
    assert widget.status.text() == notes["error"][-1] and widget.result is None
    assert widget.start_button.isEnabled() and not (tmp_path / "run" / "pretrained.safetensors").exists()


def test_part_only_for_modular(make_napari_viewer):
    widget = PretrainWidget(make_napari_viewer())
    assert widget.part.isEnabled()
    widget.mode.setCurrentText("unbiased")
    assert not widget.part.isEnabled()
    widget.mode.setCurrentText("modular")
    assert widget.part.isEnabled()

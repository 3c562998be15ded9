"""Finetune and Evaluate widgets on a small folder of real tiles: live progress, results, Cancel, errors."""

from __future__ import annotations

import json

import pytest
import torch
from scorenet.demo_data import DEMO_MODEL_OVERRIDES, make_tile_folder
from scorenet.evaluate import classification_metrics
from scorenet.model import build_model
from scorenet.pretrained import save_pretrained

from napari_scorenet._widgets import evaluate, finetune
from napari_scorenet._widgets.evaluate import EvaluateWidget
from napari_scorenet._widgets.finetune import FinetuneWidget


@pytest.fixture(scope="module")
def tiles(tmp_path_factory, tiles_dir):
    return make_tile_folder(tmp_path_factory.mktemp("tiles") / "tiles", 6, seed=0, tiles_dir=tiles_dir)


@pytest.fixture
def notes(monkeypatch):
    seen: dict[str, list[str]] = {"error": [], "warning": []}
    for module in (finetune, evaluate):
        monkeypatch.setattr(module, "show_error", seen["error"].append)
        monkeypatch.setattr(module, "show_warning", seen["warning"].append)
    return seen


def _finetune(viewer, tiles, out, epochs=2):
    widget = FinetuneWidget(viewer)
    widget.data.setText(str(tiles))
    widget.out.setText(str(out))
    widget.epochs.setValue(epochs)
    widget.batch_size.setValue(4)
    widget.device.setCurrentText("cpu")
    widget.overrides = dict(DEMO_MODEL_OVERRIDES)
    return widget


def test_finetune_then_evaluate(make_napari_viewer, qtbot, tiles, tmp_path, notes):
    viewer = make_napari_viewer()
    widget = _finetune(viewer, tiles, tmp_path / "run")
    widget.start_button.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=90_000)
    assert not notes["error"], notes
    result = widget.result
    assert not result.stopped and len(result.history) == 2 and result.best_checkpoint.is_file()
    # the plot got one loss point per step and one F1 point per epoch, from the worker's yielded events
    assert len(widget.plot.series["loss"]) > 2 and len(widget.plot.series["val weighted F1"]) == 2
    assert widget.bar.value() == widget.bar.maximum()
    assert len(widget.f1.bars) == 2

    ev = EvaluateWidget(viewer)
    ev.data.setText(str(tiles))
    ev.checkpoint.setText(str(result.best_checkpoint))
    ev.device.setCurrentText("cpu")
    ev.start_button.click()
    qtbot.waitUntil(lambda: ev.worker is None, timeout=60_000)
    assert not notes["error"], notes
    saved = json.loads(ev.saved.read_text())
    assert saved["weighted_f1"] == ev.metrics["weighted_f1"] and 0 <= saved["weighted_f1"] <= 1
    matrix = saved["confusion_matrix"]
    assert sum(map(sum, matrix)) == saved["num_images"] > 0
    assert ev.matrix_box.count() == 1 and len(ev.f1.bars) == 2


def test_finetune_cancel_keeps_last_epoch(make_napari_viewer, qtbot, tiles, tmp_path, notes):
    widget = _finetune(make_napari_viewer(), tiles, tmp_path / "run", epochs=5)

    def stop_after_first_epoch(event):
        if event.info.get("epoch_end"):
            widget.cancel()

    widget.start_button.click()
    widget.worker.yielded.connect(stop_after_first_epoch)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=90_000)
    result = widget.result
    assert result.stopped and 1 <= len(result.history) < 5 and result.last_checkpoint.is_file()
    assert notes["warning"] and not notes["error"]


def test_finetune_resume_after_cancel_continues_the_saved_run(
    make_napari_viewer, qtbot, tiles, tmp_path, notes
):
    widget = _finetune(make_napari_viewer(), tiles, tmp_path / "run", epochs=2)
    widget.start_button.click()
    widget.worker.yielded.connect(lambda event: event.info.get("epoch_end") and widget.cancel())
    qtbot.waitUntil(lambda: widget.worker is None, timeout=90_000)
    first, first_steps = widget.result.history, len(widget.plot.series["loss"])
    assert widget.result.stopped and len(first) == 1
    assert widget.resume.isChecked() and "Resume is ticked" in widget.status.text()
    widget.start_button.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=90_000)
    assert not notes["error"], notes
    result = widget.result
    assert not result.stopped and len(result.history) == 2 and result.history[0] == first[0]
    assert len(widget.plot.series["loss"]) == first_steps  # epoch 2 only: epoch 1 was not redone
    assert not widget.resume.isChecked()  # finished: nothing left to continue
    widget.start_button.click()
    assert "holds an earlier run" in notes["warning"][-1]
    widget.cancel()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=90_000)
    widget.out.setText(str(tmp_path / "empty"))
    widget.resume.setChecked(True)
    widget.start_button.click()
    note = notes["warning"][-1]
    assert "no saved run to resume" in note and str(tmp_path / "empty") in note
    widget.cancel()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=90_000)


def test_bad_folders_notify(make_napari_viewer, tmp_path, notes):
    viewer = make_napari_viewer()
    widget = _finetune(viewer, tmp_path / "missing", tmp_path / "run")
    widget.start_button.click()
    assert "missing" in notes["error"][-1] and widget.worker is None
    ev = EvaluateWidget(viewer)
    ev.data.setText(str(tmp_path))
    ev.checkpoint.setText(str(tmp_path / "none.safetensors"))
    ev.start_button.click()
    assert "none.safetensors" in notes["error"][-1] and ev.worker is None


def test_finetune_from_initial_weights_says_what_it_loaded(make_napari_viewer, qtbot, tiles, tmp_path, notes):
    torch.manual_seed(1)
    pre = tmp_path / "pre.safetensors"
    save_pretrained(build_model("scorenet_4_1", 2, **DEMO_MODEL_OVERRIDES), pre, ["scorer", "local_vit"])
    widget = _finetune(make_napari_viewer(), tiles, tmp_path / "run", epochs=1)
    widget.init.setText(str(pre))
    widget.start_button.click()
    summary = f"initialised scorer, local_vit from {pre.resolve()}; fresh: global_encoder, head"
    assert widget.status.text() == f"training… {summary}"
    qtbot.waitUntil(lambda: widget.worker is None, timeout=90_000)
    assert not notes["error"], notes
    recorded = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert recorded["init_report"]["loaded"] == ["scorer", "local_vit"]


def test_finetune_bad_initial_weights_notify(make_napari_viewer, tiles, tmp_path, notes):
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00" * 64)
    widget = _finetune(make_napari_viewer(), tiles, tmp_path / "run")
    widget.init.setText(str(corrupt))
    widget.start_button.click()
    assert widget.worker is None and len(notes["error"]) == 1
    message = notes["error"][0]
    assert message.startswith(f"{corrupt}: not a readable safetensors") and "\n" not in message
    assert widget.status.text() == message and not (tmp_path / "run").exists()


def test_evaluate_shows_a_class_without_images_as_absent(make_napari_viewer, tmp_path, notes):
    ev = EvaluateWidget(make_napari_viewer())
    # "normal" has no images (predicted once all the same): its F1 is None, not 0
    metrics = classification_metrics([0, 0, 2], [0, 1, 2], ["carcinoma", "normal", "stroma"])
    metrics.update(split="all", checkpoint=str(tmp_path / "model.safetensors"))
    ev._on_result(metrics, tmp_path)
    assert [bar.text() for bar in ev.f1.bars] == ["carcinoma F1: 0.667", "normal F1: —", "stroma F1: 1.000"]
    assert ev.f1.bars[1].value() == 0 and "no images of normal" in ev.summary.text()
    assert json.loads(ev.saved.read_text())["per_class_f1"]["normal"] is None
    assert not notes["error"]

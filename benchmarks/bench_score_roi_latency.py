"""Latency of the "Score RoI" widget: click to overlays shown, for a 1536 x 2048 RoI of the TCGA slide.

The end-to-end time goes through the real widget in a **visible** viewer (button click, worker thread,
layer update, the canvas drawn): the first click cold (model load, tiles decoded), then the median of
``REPEATS`` clicks with the tile cache warm, with the widget's thread policy (the cores found free)
and, in the same run, with 2 intra-op threads forced (torch's default on this machine). The split
re-times its three parts on the same inputs: slide read, model forward, layer update (the clicks
re-score the same RoI, whose layers are updated in place), and the layers of a newly scored RoI
added from scratch (the first click on a new rectangle does that instead of the update): as the only
scored RoI (its distribution layer builds the colour bar) and beside one already shown (the usual
case from the second RoI on: the bar stays on the first). The model is
the bundled checkpoint when present, else a freshly built ``scorenet_4_1`` (same size and speed).
Run under a display, e.g. ``xvfb-run -a .venv/bin/python benchmarks/bench_score_roi_latency.py``.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

RESULT = Path(__file__).parent / "results" / "latency.json"  # as scorenet bench --suite latency
SLIDE = "tcga-cr-7395-01a-01-ts1.svs"
ROI = (1200, 1000, 2048, 1536)  # (x, y, w, h) level 0, tissue of the TCGA slide
REPEATS = 5


def _checkpoint(tmp: Path) -> Path:
    from scorenet.checkpoint import save_checkpoint
    from scorenet.model import build_model

    from napari_scorenet._widgets._workers import default_checkpoint_path

    bundled = default_checkpoint_path()
    if bundled.is_file():
        return bundled
    path = tmp / "scorenet_4_1.safetensors"
    save_checkpoint(build_model("scorenet_4_1", 2).eval(), path, ["class 0", "class 1"])
    return path


def _median_ms(times: list[float]) -> float:
    return round(1000 * statistics.median(times), 1)


def run(out_json: str | Path = RESULT) -> dict:
    """Measure, write ``out_json`` atomically and return the numbers (milliseconds, medians)."""
    import tempfile

    import napari
    from qtpy.QtWidgets import QApplication
    from scorenet.atomic import atomic_write
    from scorenet.inference import read_model_input, snap_roi
    from scorenet.paths import data_dir
    from scorenet.resolution import LEVEL0
    from scorenet.slide import open_slide
    from scorenet.threads import choose_threads, intra_op_threads

    from napari_scorenet._reader import slide_layer_data
    from napari_scorenet._widgets._layers import show_score
    from napari_scorenet._widgets._workers import cached_model
    from napari_scorenet._widgets.score_roi import ScoreRoIWidget

    slide_path = data_dir() / "slides" / SLIDE
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = _checkpoint(Path(tmp))
        viewer = napari.Viewer(show=True)  # what the user sees: a drawn canvas, not a hidden one
        data, kwargs, _ = slide_layer_data(slide_path)
        viewer.add_image(data, **kwargs)
        x, y, w, h = ROI
        viewer.add_shapes([np.array([[y, x], [y + h, x + w]])], shape_type="rectangle", name="RoIs")
        widget = ScoreRoIWidget(viewer)
        viewer.window.add_dock_widget(widget, name="Score RoI")
        widget.checkpoint.setText(str(ckpt))
        widget.device.setCurrentText("cpu")
        app = QApplication.instance()
        for _ in range(20):  # let the window appear and draw the slide once
            app.processEvents()
            time.sleep(0.02)

        def click() -> float:
            start = time.perf_counter()
            widget.score_button.click()
            while widget.worker is not None:
                app.processEvents()
                time.sleep(0.001)
            viewer.window._qt_viewer.canvas.native.update()
            app.processEvents()  # the overlays drawn
            return time.perf_counter() - start

        cold = click()  # loads the model, decodes the RoI's tiles
        timings: dict[str, list[float]] = {"auto": [], "2 threads": []}
        for _ in range(REPEATS):  # alternate, so both see the same machine
            for name, threads in (("auto", None), ("2 threads", 2)):
                widget.threads = threads
                timings[name].append(click())
        widget.threads = None
        model, _ = cached_model(ckpt, "cpu")
        slide = open_slide(slide_path)
        chosen = choose_threads()
        read, model_t, layers, added, added_beside = [], [], [], [], []
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            _, image = read_model_input(slide, model, ROI, LEVEL0)
            t1 = time.perf_counter()
            with torch.inference_mode(), intra_op_threads(chosen):
                model(torch.from_numpy(image).permute(2, 0, 1)[None])
            t2 = time.perf_counter()
            show_score(viewer, widget.results[0])  # the RoI's layers exist: updated in place
            app.processEvents()
            t3 = time.perf_counter()
            read.append(t1 - t0), model_t.append(t2 - t1), layers.append(t3 - t2)
        for _ in range(REPEATS):  # a newly scored RoI: its layers are added
            for layer in show_score(viewer, widget.results[0]):
                viewer.layers.remove(layer)
            app.processEvents()
            t0 = time.perf_counter()
            show_score(viewer, widget.results[0])
            app.processEvents()
            added.append(time.perf_counter() - t0)
        # a second scored RoI: the same result under another RoI name (its layers are new, drawn
        # exactly over the first RoI's, which stay shown)
        beside = dataclasses.replace(widget.results[0], roi=(x + 1, y, w, h))
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            new = show_score(viewer, beside)
            app.processEvents()
            added_beside.append(time.perf_counter() - t0)
            for layer in new:
                viewer.layers.remove(layer)
            app.processEvents()
        snapped = snap_roi(model, ROI, 1.0)
        slide.close()
        viewer.close()
    result = {
        "roi": list(ROI),
        "snapped_roi": list(snapped),
        "input_shape": list(image.shape),
        "checkpoint": ckpt.name if ckpt.parent != Path(tmp) else "scorenet_4_1 (random weights)",
        "device": "cpu",
        "torch_threads_default": torch.get_num_threads(),
        "threads_chosen_by_policy": chosen,
        "viewer": "visible (napari.Viewer(show=True)), widget docked",
        "repeats": REPEATS,
        "cold_first_click_ms": round(1000 * cold, 1),
        "click_to_overlay_ms": _median_ms(timings["auto"]),
        "click_to_overlay_ms_2_threads": _median_ms(timings["2 threads"]),
        "read_ms": _median_ms(read),
        "model_ms": _median_ms(model_t),
        "layer_update_ms": _median_ms(layers),
        "layer_add_ms": _median_ms(added),
        "layer_add_beside_another_ms": _median_ms(added_beside),
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
    }
    atomic_write(out_json, json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))

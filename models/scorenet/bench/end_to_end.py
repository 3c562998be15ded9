"""Where the time of one RoI goes: slide read, then each stage of ScoreNet's forward pass.

Stages are timed with forward hooks on the model's own submodules, so the timed code is the real
``ScoreNet.forward``:

- ``slide_read``: ``scorenet.slide.read_roi`` of a 1536 x 2048 RoI of the TCGA slide (level 0);
- ``to_tensor``: the uint8 array to a (1, 3, H, W) tensor on the device;
- ``prepare_downscale``: forward start to the scorer's input (uint8 -> float, fit to the grid, s-times
  average pooling, normalisation);
- ``scorer``: the scorer ViT with the [CLS]-row logits;
- ``select_gather``: semantic distribution, top-K and region gather (scorer end to local ViT start);
- ``local``, ``global``, ``head``: the local ViT over the K regions, the global encoder, the classifier;
- ``outputs``: head end to forward return (boxes and scores).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..model import ScoreNet, build_model
from ..paths import data_dir

SLIDE = "tcga-cr-7395-01a-01-ts1.svs"
ROI = (1200, 1000, 2048, 1536)  # (x, y, w, h) level 0, inside the tissue of the TCGA slide
STAGES = (
    "slide_read",
    "to_tensor",
    "prepare_downscale",
    "scorer",
    "select_gather",
    "local",
    "global",
    "head",
    "outputs",
)


def read_roi_image(path: Path, roi: tuple[int, int, int, int]) -> tuple[np.ndarray, str]:
    """The RoI as (H, W, 3) uint8 and the reader used."""
    try:
        from ..slide import read_roi
    except ImportError:  # the project's reader is not installed: time OpenSlide itself
        import openslide

        x, y, w, h = roi
        with openslide.OpenSlide(str(path)) as slide:
            return np.array(slide.read_region((x, y), 0, (w, h)).convert("RGB")), "openslide.read_region"
    return read_roi(path, *roi).image, "scorenet.slide.read_roi"


class StageClock:
    """Timestamps at the start and end of the model's submodules, via forward hooks."""

    def __init__(self, model: ScoreNet, sync: Callable[[], None]) -> None:
        self.marks: dict[str, float] = {}
        self._handles = []
        for name in ("scorer", "local_vit", "global_encoder", "head"):
            module = getattr(model, name)
            self._handles.append(module.register_forward_pre_hook(self._mark(f"{name}_start", sync)))
            self._handles.append(module.register_forward_hook(self._mark(f"{name}_end", sync)))

    def _mark(self, key: str, sync: Callable[[], None]) -> Callable[..., None]:
        def hook(*_: Any) -> None:
            sync()
            self.marks[key] = time.perf_counter()

        return hook

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def time_once(
    model: ScoreNet, slide_path: Path, roi: tuple[int, int, int, int], device: torch.device
) -> dict[str, Any]:
    """Seconds per stage for one RoI (see the module docstring for the stages)."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    clock = StageClock(model, sync)
    try:
        t0 = time.perf_counter()
        image, reader = read_roi_image(slide_path, roi)
        t1 = time.perf_counter()
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].to(device)
        sync()
        t2 = time.perf_counter()
        with torch.inference_mode():
            output = model(tensor)
        sync()
        t3 = time.perf_counter()
    finally:
        clock.remove()
    m = clock.marks
    seconds = {
        "slide_read": t1 - t0,
        "to_tensor": t2 - t1,
        "prepare_downscale": m["scorer_start"] - t2,
        "scorer": m["scorer_end"] - m["scorer_start"],
        "select_gather": m["local_vit_start"] - m["scorer_end"],
        "local": m["local_vit_end"] - m["local_vit_start"],
        "global": m["global_encoder_end"] - m["global_encoder_start"],
        "head": m["head_end"] - m["head_start"],
        "outputs": t3 - m["head_end"],
    }
    return {
        "seconds": seconds,
        "total": t3 - t0,
        "reader": reader,
        "input_shape": list(tensor.shape),
        "selected": int(output.indices.shape[1]),
    }


def run_suite(device: str = "cpu", repeats: int = 5, root: Path | None = None) -> dict[str, Any]:
    """Median seconds per stage over ``repeats`` RoIs (after one warm-up), and the slowest stage."""
    slide_path = (root or data_dir()) / "slides" / SLIDE
    torch.manual_seed(0)
    dev = torch.device(device)
    model = build_model("scorenet_4_1", 4).eval().to(dev)
    time_once(model, slide_path, ROI, dev)  # warm-up: file cache, allocator, kernels
    runs = [time_once(model, slide_path, ROI, dev) for _ in range(repeats)]
    median = {stage: float(np.median([r["seconds"][stage] for r in runs])) for stage in STAGES}
    total = float(np.median([r["total"] for r in runs]))
    rows = [
        {"stage": stage, "median_ms": 1e3 * median[stage], "share": median[stage] / total} for stage in STAGES
    ]
    return {
        "suite": "end-to-end",
        "slide": SLIDE,
        "roi_xywh_level0": list(ROI),
        "reader": runs[0]["reader"],
        "model": "scorenet_4_1 (K = 20, s = 8), 4 classes, random weights",
        "input_shape": runs[0]["input_shape"],
        "repeats": repeats,
        "results": rows,
        "total_median_ms": 1e3 * total,
        "slowest_stage": max(median, key=median.get),
    }

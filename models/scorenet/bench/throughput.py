"""Inference throughput at 1536 x 2048: ScoreNet vs a vanilla ViT and a Swin Transformer, same process.

The baselines follow the paper's App. B.1: a ViT 96 / 8 / 4 / 2 with 16-pixel patches on the full image
(12,288 tokens) and a Swin Transformer with 16-pixel patches, embedding 24 -> 192, depths 2 / 2 / 6 / 2,
heads 3 / 6 / 12 / 24, window 6 x 8, MLP ratio 4 (about 1.77 M parameters, as in the paper).

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` (tensors only); on CPU the peak resident set
growth above its level before the measurement, sampled every 5 ms with psutil. Memory the allocator
kept from an earlier, smaller batch is reused without growth, so read the CPU figure as the extra
memory a batch size needed beyond the previous ones in the same process.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psutil
import torch
from torch import nn

from .. import _compat  # noqa: F401  (must precede timm)
from ..config import IMAGENET_MEAN, IMAGENET_STD
from ..model import build_model

IMAGE_SIZE = (1536, 2048)  # (H, W), BACH
PAPER_IMAGES_PER_S = {"scorenet": 335.0, "swin": 76.8, "vit": 3.8}  # RTX 3070, paper Sec. 4
MODELS = ("scorenet", "swin", "vit")


class Normalized(nn.Module):
    """Takes uint8 or [0, 1] float images like ScoreNet does, normalises, then runs ``model``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        images = images.float().div_(255) if images.dtype == torch.uint8 else images.float()
        return self.model((images - self.mean) / self.std)


def build_vit(num_classes: int, image_size: tuple[int, int] = IMAGE_SIZE) -> nn.Module:
    """Vanilla ViT 96 / 8 / 4 / 2, patch 16, attending over every patch of the full image."""
    from timm.models.vision_transformer import VisionTransformer

    vit = VisionTransformer(
        img_size=image_size,
        patch_size=16,
        embed_dim=96,
        depth=8,
        num_heads=4,
        mlp_ratio=2.0,
        num_classes=num_classes,
        dynamic_img_size=True,
    )
    return Normalized(vit)


def build_swin(num_classes: int, image_size: tuple[int, int] = IMAGE_SIZE) -> nn.Module:
    """Swin Transformer of the paper's App. B.1 (non-square 6 x 8 windows)."""
    from timm.models.swin_transformer import SwinTransformer

    swin = SwinTransformer(
        img_size=image_size,
        patch_size=16,
        embed_dim=24,
        depths=(2, 2, 6, 2),
        num_heads=(3, 6, 12, 24),
        window_size=(6, 8),
        mlp_ratio=4.0,
        num_classes=num_classes,
    )
    return Normalized(swin)


def build(name: str, num_classes: int = 4, image_size: tuple[int, int] = IMAGE_SIZE) -> nn.Module:
    """One of ``MODELS`` in eval mode; ScoreNet is ScoreNet/4/1 with the paper's defaults (K = 20)."""
    if name == "scorenet":
        model: nn.Module = build_model("scorenet_4_1", num_classes)
    elif name == "vit":
        model = build_vit(num_classes, image_size)
    elif name == "swin":
        model = build_swin(num_classes, image_size)
    else:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
    return model.eval()


@dataclass
class Options:
    """How to run: device, batch sizes, time budget per measurement, and the GPU options."""

    device: str = "cpu"
    batch_sizes: Sequence[int] = (1, 2, 4, 8, 16, 32, 64)
    models: Sequence[str] = MODELS
    image_size: tuple[int, int] = IMAGE_SIZE
    min_seconds: float = 2.0  # keep timing a batch size for at least this long ...
    max_iterations: int = 20  # ... but at most this many batches
    max_batch_seconds: float = 30.0  # larger batches are skipped once one batch takes longer than this
    bf16: bool = False  # torch.autocast(bfloat16)
    uint8_input: bool = True  # images stay uint8 until on the device (4x less host-to-device traffic)
    compile: bool = False  # torch.compile
    cuda_graphs: bool = False  # torch.compile(mode="reduce-overhead"), which captures CUDA graphs
    paired_rounds: int = 0  # ScoreNet and Swin alternated this many times (see paired_ratio)


class PeakRss:
    """Peak resident set size above the starting level, sampled in a background thread."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._proc = psutil.Process()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss - self.base)
            time.sleep(self.interval)

    def __enter__(self) -> PeakRss:
        self.base = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss - self.base)


@contextlib.contextmanager
def peak_memory(device: torch.device) -> Iterator[dict[str, Any]]:
    """Yield a dict that holds ``peak_memory_mb`` and ``memory_method`` once the block ends."""
    out: dict[str, Any] = {}
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        yield out
        torch.cuda.synchronize(device)
        out["peak_memory_mb"] = (torch.cuda.max_memory_allocated(device) - base) / 2**20
        out["memory_method"] = "torch.cuda.max_memory_allocated"
    else:
        with PeakRss() as rss:
            yield out
        out["peak_memory_mb"] = rss.peak / 2**20
        out["memory_method"] = "psutil RSS peak above start (5 ms sampling)"


def real_images(batch_size: int, image_size: tuple[int, int] = IMAGE_SIZE) -> torch.Tensor:
    """A (B, 3, H, W) uint8 batch of real stroma and carcinoma, resized from the shared tiles."""
    from PIL import Image

    from ..paths import data_dir

    tiles = data_dir() / "tiles"
    images = []
    for name in ("hgsc_stromal_he.jpg", "hgsc_nest.jpg", "target_image.png"):
        with Image.open(tiles / name) as im:
            resized = im.convert("RGB").resize((image_size[1], image_size[0]), Image.Resampling.BILINEAR)
        images.append(torch.from_numpy(np.array(resized)).permute(2, 0, 1))
    return torch.stack([images[i % len(images)] for i in range(batch_size)])


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _runner(model: nn.Module, options: Options, device: torch.device) -> Callable[[torch.Tensor], Any]:
    if options.compile or options.cuda_graphs:
        model = torch.compile(model, mode="reduce-overhead" if options.cuda_graphs else None)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=options.bf16)

    def run(images: torch.Tensor) -> Any:
        with torch.inference_mode(), autocast:
            return model(images)

    return run


def _batch_times(run: Callable[[torch.Tensor], Any], images: torch.Tensor, options: Options) -> list[float]:
    """Seconds of each batch, timed for ``options.min_seconds`` (at most ``max_iterations`` batches)."""
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < options.max_iterations and (
        not times or time.perf_counter() - start < options.min_seconds
    ):
        t0 = time.perf_counter()
        run(images)
        _synchronize(images.device)
        times.append(time.perf_counter() - t0)
    return times


def measure(name: str, options: Options) -> list[dict[str, Any]]:
    """Images/s and peak memory of one model at each batch size (stops at the time cap)."""
    device = torch.device(options.device)
    model = build(name, image_size=options.image_size).to(device)
    run = _runner(model, options, device)
    params = sum(p.numel() for p in model.parameters())
    rows = []
    for batch_size in options.batch_sizes:
        host = real_images(batch_size, options.image_size)
        images = host.to(device) if options.uint8_input else host.float().div_(255).to(device)
        run(images)  # warm-up (and compilation)
        _synchronize(device)
        with peak_memory(device) as memory:
            times = _batch_times(run, images, options)
        seconds = float(np.median(times))
        rows.append(
            {
                "model": name,
                "parameters": params,
                "batch_size": batch_size,
                "images_per_s": batch_size / seconds,
                "seconds_per_batch": seconds,
                "iterations": len(times),
                **memory,
            }
        )
        if seconds > options.max_batch_seconds:
            break
    return rows


def ratios(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Best images/s per model, ScoreNet's speed-up over each baseline, and the paper's numbers."""
    best: dict[str, float] = {}
    for row in rows:
        best[row["model"]] = max(best.get(row["model"], 0.0), row["images_per_s"])
    ours = {
        f"scorenet_over_{other}": best["scorenet"] / best[other]
        for other in ("swin", "vit")
        if "scorenet" in best and other in best
    }
    paper = PAPER_IMAGES_PER_S
    return {
        "best_images_per_s": best,
        "measured": ours,
        "paper": {
            "images_per_s": paper,
            "device": "NVIDIA RTX 3070",
            "scorenet_over_swin": paper["scorenet"] / paper["swin"],
            "scorenet_over_vit": paper["scorenet"] / paper["vit"],
        },
    }


def paired_ratio(options: Options, batch_sizes: dict[str, int]) -> dict[str, Any]:
    """ScoreNet / Swin images/s from ``options.paired_rounds`` rounds that time the two models back to
    back, each at its batch size in ``batch_sizes``; the median of the per-round ratios.

    A shared machine's speed drifts over the minutes a sweep takes, and a sweep times one model after
    the other; alternating them makes the drift cancel within each round.
    """
    device = torch.device(options.device)
    runs, inputs = {}, {}
    for name in ("scorenet", "swin"):
        runs[name] = _runner(build(name, image_size=options.image_size).to(device), options, device)
        host = real_images(batch_sizes[name], options.image_size)
        inputs[name] = host.to(device) if options.uint8_input else host.float().div_(255).to(device)
        runs[name](inputs[name])  # warm-up
    rounds = []
    for _ in range(options.paired_rounds):
        ips = {
            name: batch_sizes[name] / float(np.median(_batch_times(runs[name], inputs[name], options)))
            for name in ("scorenet", "swin")
        }
        ratio = ips["scorenet"] / ips["swin"]
        rounds.append({**{f"{n}_images_per_s": v for n, v in ips.items()}, "ratio": ratio})
    ratios_ = [r["ratio"] for r in rounds]
    return {
        "batch_sizes": batch_sizes,
        "rounds": rounds,
        "median_ratio": float(np.median(ratios_)),
        "min_ratio": min(ratios_),
        "max_ratio": max(ratios_),
    }


def _best_batch_sizes(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["images_per_s"] > best.get(row["model"], {"images_per_s": 0.0})["images_per_s"]:
            best[row["model"]] = row
    return {name: row["batch_size"] for name, row in best.items()}


def run_suite(options: Options) -> dict[str, Any]:
    """The whole throughput suite as one JSON-able dict (without the environment block)."""
    torch.manual_seed(0)
    rows = [row for name in options.models for row in measure(name, options)]
    paired = None
    if options.paired_rounds > 0 and {"scorenet", "swin"} <= set(options.models):
        best = _best_batch_sizes(rows)
        paired = paired_ratio(options, {name: best[name] for name in ("scorenet", "swin")})
    return {
        "suite": "throughput",
        "image_size": list(options.image_size),
        "options": {
            "batch_sizes": list(options.batch_sizes),
            "min_seconds": options.min_seconds,
            "max_iterations": options.max_iterations,
            "max_batch_seconds": options.max_batch_seconds,
            "bf16": options.bf16,
            "uint8_input": options.uint8_input,
            "compile": options.compile,
            "cuda_graphs": options.cuda_graphs,
            "paired_rounds": options.paired_rounds,
        },
        "results": rows,
        "ratios": ratios(rows),
        "paired_scorenet_over_swin": paired,
    }

"""Whole-slide scoring: ScoreNet over RoIs tiled on a slide's tissue, results streamed as they finish.

Tissue is found on a thumbnail (``scorenet.tissue``; the mask is kept in the result). RoIs of the
model's input size (``SlideScoringConfig.roi_size`` pixels at the read resolution, 1536 x 2048 by
default) are laid on a grid over the slide with the chosen overlap, never outside it (the last row
and column are moved back inside), and those whose tissue share reaches ``min_tissue`` are scored in
batches while the next batches are read on threads. Every RoI keeps its class probabilities, its
semantic distribution and its top-K boxes in level-0 pixels; its pixels are dropped as soon as it
is scored, so memory stays bounded whatever the slide's size.

A long job of the ``scorenet.jobs`` protocol: :func:`iter_score_slide` yields a ``Progress`` per
batch whose ``info["tiles"]`` holds the RoIs just scored (the napari heat map fills in from them);
:func:`score_slide` runs it to its end. Cancelling raises ``Cancelled`` whose ``partial`` is the
:class:`SlideScore` of the RoIs finished so far.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .errors import ScoreNetInputError
from .inference import read_model_input, resolve_device, score_reads
from .jobs import Job, Progress, ProgressFn, StopFn, check_stop, run_job
from .model import ScoreNet
from .resolution import Resolution
from .slide import Slide
from .threads import ThreadPolicy
from .tissue import TissueMask, TissueParams, slide_tissue_mask

Roi = tuple[int, int, int, int]
DEFAULT_ROI_SIZE = (1536, 2048)  # (height, width) of the model input: the BACH image size


@dataclass(frozen=True)
class SlideScoringConfig:
    """How a slide is tiled and scored."""

    roi_size: tuple[int, int] = DEFAULT_ROI_SIZE  # (height, width) in pixels at the read resolution
    overlap: float = 0.0  # share of an RoI's side shared with its neighbour, in [0, 0.9]
    min_tissue: float = 0.1  # least share of tissue for an RoI to be scored
    tissue: TissueParams = field(default_factory=TissueParams)
    batch_size: int = 2  # RoIs per forward pass
    read_ahead: int = 2  # batches read on threads while the model runs
    top_per_class: int = 5  # most suspicious RoIs kept per class in the summary

    def check(self) -> None:
        """Raise ``ScoreNetInputError`` for options that cannot be used."""
        if len(self.roi_size) != 2 or min(self.roi_size) < 1:
            raise ScoreNetInputError(
                f"RoI size must be two positive numbers (height, width), got {self.roi_size}"
            )
        if not 0.0 <= self.overlap <= 0.9:
            raise ScoreNetInputError(f"overlap must be in [0, 0.9], got {self.overlap}")
        if not 0.0 <= self.min_tissue <= 1.0:
            raise ScoreNetInputError(f"min_tissue must be in [0, 1], got {self.min_tissue}")
        if self.batch_size < 1 or self.read_ahead < 0 or self.top_per_class < 0:
            raise ScoreNetInputError("batch size must be >= 1, read-ahead and top per class >= 0")


@dataclass(frozen=True)
class TileScore:
    """One scored RoI of a slide (no pixels)."""

    index: int  # position in the slide's tile plan
    roi: Roi  # (x, y, w, h) level 0
    tissue: float  # share of the RoI that is tissue
    probabilities: np.ndarray  # (C,)
    predicted: str
    distribution: np.ndarray  # (gh, gw), sums to 1
    boxes_level0: np.ndarray  # (K, 4) (x0, y0, x1, y1), rank order
    scores: np.ndarray  # (K,) descending
    distribution_box_level0: tuple[float, float, float, float]  # where the (gh, gw) grid lies


@dataclass
class SlideScore:
    """The RoIs scored on one slide, its tissue mask and the tile plan."""

    path: str
    class_names: list[str]
    resolution: Resolution
    tissue: TissueMask
    plan: list[tuple[Roi, float]]  # every RoI to score, with its tissue share
    tiles: list[TileScore] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Whether every planned RoI was scored."""
        return len(self.tiles) == len(self.plan)

    def class_fractions(self) -> dict[str, float]:
        """Share of the scored tissue area predicted as each class (each RoI weighs its tissue area)."""
        weights = {name: 0.0 for name in self.class_names}
        for tile in self.tiles:
            weights[tile.predicted] += tile.tissue * tile.roi[2] * tile.roi[3]
        total = sum(weights.values())
        return {name: (w / total if total else 0.0) for name, w in weights.items()}

    def top_rois(self, per_class: int = 5) -> dict[str, list[dict[str, Any]]]:
        """The ``per_class`` RoIs with the highest probability of each class."""
        top = {}
        for c, name in enumerate(self.class_names):
            ranked = sorted(self.tiles, key=lambda t: -float(t.probabilities[c]))[:per_class]
            top[name] = [{"index": t.index, "roi": list(t.roi), "probability": float(t.probabilities[c])}
                         for t in ranked]  # fmt: skip
        return top

    def summary(self, per_class: int = 5) -> dict[str, Any]:
        """Plain-JSON summary of the slide (``summary.json``)."""
        return {
            "slide": self.path,
            "class_names": list(self.class_names),
            "rois_planned": len(self.plan),
            "rois_scored": len(self.tiles),
            "complete": self.complete,
            "scale": self.resolution.scale,
            "mpp": self.resolution.mpp,
            "tissue_area_level0_px": self.tissue.tissue_area,
            "class_fractions": self.class_fractions(),
            "top_rois": self.top_rois(per_class),
        }


def plan_tiles(
    slide: Slide, tissue: TissueMask, resolution: Resolution, config: SlideScoringConfig
) -> list[tuple[Roi, float]]:
    """Level-0 RoIs ``(x, y, w, h)`` over the slide with their tissue share, those with enough tissue.

    RoIs are the model's input size at the read scale; the grid steps by ``(1 - overlap)`` of that
    and its last row and column are moved back so no RoI leaves the slide. A slide smaller than one
    RoI is one RoI of the slide's size.
    """
    width, height = slide.dimensions
    h0 = min(height, max(1, round(config.roi_size[0] / resolution.scale)))
    w0 = min(width, max(1, round(config.roi_size[1] / resolution.scale)))
    plan = []
    for y in _starts(height, h0, config.overlap):
        for x in _starts(width, w0, config.overlap):
            share = tissue.fraction(x, y, w0, h0)
            if share >= config.min_tissue and share > 0:
                plan.append(((x, y, w0, h0), share))
    return plan


def _starts(length: int, size: int, overlap: float) -> list[int]:
    """Tile starts along one side: every ``size * (1 - overlap)``, the last one ending at ``length``."""
    if size >= length:
        return [0]
    step = max(1, round(size * (1 - overlap)))
    count = math.ceil((length - size) / step) + 1
    return sorted({min(i * step, length - size) for i in range(count)})


def score_slide(
    model: ScoreNet, slide: Slide, *, progress: ProgressFn | None = None, **options: Any
) -> SlideScore:
    """Score a whole slide's tissue: :func:`iter_score_slide` run to its end."""
    return run_job(iter_score_slide(model, slide, **options), progress)


def iter_score_slide(
    model: ScoreNet,
    slide: Slide,
    *,
    resolution: Resolution,
    class_names: Sequence[str],
    config: SlideScoringConfig = SlideScoringConfig(),
    device: str | torch.device = "auto",
    should_stop: StopFn | None = None,
    threads: int | None = None,
) -> Job[SlideScore]:
    """Tile the slide's tissue and score the RoIs, yielding a ``Progress`` per batch.

    The first event (``done`` 0, ``info["stage"]`` "planned") carries the tissue mask and the plan;
    each later one (``stage`` "scored") the :class:`TileScore` objects just finished in
    ``info["tiles"]``. ``resolution`` comes from ``scorenet.resolution.resolve_resolution``.
    """
    config.check()
    names = [str(c) for c in class_names]
    if len(names) != model.config.num_classes:
        raise ScoreNetInputError(
            f"{len(names)} class names for a model with {model.config.num_classes} classes"
        )
    tissue = slide_tissue_mask(slide, config.tissue)
    plan = plan_tiles(slide, tissue, resolution, config)
    result = SlideScore(str(slide.path), names, resolution, tissue, plan)
    yield Progress("score-slide", 0, len(plan), "RoI", {"stage": "planned", "tissue": tissue, "plan": plan})
    target = resolve_device(device)
    policy = ThreadPolicy(threads) if target.type == "cpu" else None
    was_training = model.training
    model.to(target).eval()
    batches = [
        list(range(i, min(i + config.batch_size, len(plan)))) for i in range(0, len(plan), config.batch_size)
    ]

    def read(batch: list[int]) -> list:
        return [read_model_input(slide, model, plan[i][0], resolution) for i in batch]

    pool = ThreadPoolExecutor(max_workers=max(1, config.read_ahead), thread_name_prefix="scorenet-tiles")
    pending = [pool.submit(read, b) for b in batches[: config.read_ahead + 1]]
    try:
        for n, batch in enumerate(batches):
            stopped = f"slide scoring stopped after {len(result.tiles)} of {len(plan)} RoIs"
            check_stop(should_stop, stopped, result)
            reads = pending.pop(0).result()
            if n + config.read_ahead + 1 < len(batches):
                pending.append(pool.submit(read, batches[n + config.read_ahead + 1]))
            scores = score_reads(model, reads, [plan[i][0] for i in batch], names, target, policy)
            done = []
            for i, score in zip(batch, scores, strict=True):
                roi, share = plan[i]
                done.append(TileScore(
                    i, roi, share, score.probabilities, score.predicted, score.distribution,
                    score.boxes_level0, score.scores, score.distribution_box_level0,
                ))  # fmt: skip
            result.tiles.extend(done)
            yield Progress(
                "score-slide", len(result.tiles), len(plan), "RoI", {"stage": "scored", "tiles": done}
            )
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        model.train(was_training)
    return result

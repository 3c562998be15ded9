"""Score regions of interest of a slide: read each at a resolution, run ScoreNet, map results to level 0.

The model sees whole P_h x P_h regions at exactly the requested resolution: each RoI is grown or
trimmed symmetrically to the model's region grid (``ScoreNet.grid_size``) before it is read, so the
model never resamples the pixels and every selected region is a real crop of the slide at that
resolution. ``RoiScore.distribution_box_level0`` is that scored area; it equals the RoI when the RoI
is already a whole number of regions (and at least K of them).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .errors import ScoreNetInputError
from .jobs import Job, Progress, ProgressFn, StopFn, check_stop, run_job
from .model import ScoreNet, ScoreNetOutput
from .resolution import Resolution, resolve_resolution
from .slide import RoiRead, Slide, read_roi
from .threads import ThreadPolicy, intra_op_threads

# ~1.2 GB as float32 RGB, the size of a float copy should one be made on the way
DEFAULT_MAX_PIXELS = 100_000_000
# pixels of model input per batch: several small RoIs share a forward pass, large ones go alone
BATCH_PIXELS = 8 * 1024 * 1024
# pixels read from the slide's level per output pixel allowed before resampling (coarse mpp, no pyramid)
SOURCE_PIXELS_PER_PIXEL = 4

Roi = tuple[int, int, int, int]
Box = tuple[float, float, float, float]


@dataclass
class RoiScore:
    """The result of scoring one RoI (see docs/scoring.md for the coordinate conventions)."""

    roi: Roi  # (x, y, w, h) level 0, as requested
    probabilities: np.ndarray  # (C,) softmax of the logits
    class_names: list[str]
    predicted: str
    distribution: np.ndarray  # (gh, gw), sums to 1
    boxes_level0: np.ndarray  # (K, 4) float (x0, y0, x1, y1), in rank order
    scores: np.ndarray  # (K,) distribution values, descending
    ranks: np.ndarray  # (K,) 1..K
    distribution_box_level0: Box  # where the (gh, gw) grid lies on the slide
    image: np.ndarray  # (H, W, 3) uint8, the model input
    scale: float  # input px per level-0 px
    mpp: float | None  # of the input
    padded_fraction: float = 0.0  # share of the scored area outside the slide (white padding)

    @property
    def boxes_image(self) -> np.ndarray:
        """The K boxes in pixels of ``image`` (the model's input)."""
        x0, y0, x1, y1 = self.distribution_box_level0
        h, w = self.image.shape[:2]
        sx, sy = w / (x1 - x0), h / (y1 - y0)
        offset = np.array([x0, y0, x0, y0])
        return (self.boxes_level0 - offset) * np.array([sx, sy, sx, sy])


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then CPU; an explicit device must be available."""
    name = str(name).lower()
    mps = getattr(torch.backends, "mps", None)
    mps_ok = mps is not None and mps.is_available()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_ok else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ScoreNetInputError(f"unknown device {name!r}; choose auto, cpu, cuda or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ScoreNetInputError(f"device {name!r} requested but CUDA is not available; use auto or cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ScoreNetInputError(
            f"device {name!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist"
        )
    if device.type == "mps" and not mps_ok:
        raise ScoreNetInputError(f"device {name!r} requested but Apple MPS is not available; use auto or cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ScoreNetInputError(f"unsupported device {name!r}; choose auto, cpu, cuda or mps")
    return device


def _resolution(slide: Slide, resolution: Resolution | float | None) -> Resolution:
    """A resolution as given, or ``mpp`` (a number) or level 0 (None) through the shared rule."""
    if isinstance(resolution, Resolution):
        return resolution
    return resolve_resolution(slide, mpp=resolution)


def check_roi(
    slide: Slide,
    roi: Sequence[int],
    resolution: Resolution | float | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> None:
    """Refuse an RoI that is empty, lies outside the slide or is too large; reads nothing.

    ``resolution`` is a resolved :class:`Resolution`, a µm/px or None (level 0).
    """
    x, y, w, h = (int(v) for v in roi)
    if w <= 0 or h <= 0:
        raise ScoreNetInputError(f"RoI size must be positive, got {w} x {h} pixels", slide.path)
    width, height = slide.dimensions
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise ScoreNetInputError(
            f"RoI x={x} y={y} w={w} h={h} lies entirely outside the slide ({width} x {height} pixels)",
            slide.path,
        )
    resolution = _resolution(slide, resolution)
    scale = resolution.scale
    out_w, out_h = round(w * scale), round(h * scale)
    if out_w * out_h > max_pixels:
        raise ScoreNetInputError(
            f"RoI of {w} x {h} level-0 pixels is {out_w} x {out_h} = {out_w * out_h:,} pixels at "
            f"{resolution.describe()}, over the limit of {max_pixels:,}; choose a coarser resolution "
            "(larger mpp) or a smaller RoI",
            slide.path,
        )
    level = slide.best_level_for_downsample(1.0 / scale)
    downsample = slide.level_downsamples[level]
    source = math.ceil(w / downsample) * math.ceil(h / downsample)
    if source > SOURCE_PIXELS_PER_PIXEL * max_pixels:
        raise ScoreNetInputError(
            f"RoI of {w} x {h} level-0 pixels needs {source:,} pixels read from level {level} "
            f"(downsample {downsample:g}), over the limit of {SOURCE_PIXELS_PER_PIXEL * max_pixels:,}; "
            "choose a smaller RoI or a finer resolution, or use a slide with a pyramid",
            slide.path,
        )


def _level0_size(target: int, scale: float) -> int:
    """Level-0 pixels that ``read_roi`` turns into exactly ``target`` pixels at ``scale``, if any."""
    size = max(1, round(target / scale))
    for candidate in (size, size - 1, size + 1):
        if candidate >= 1 and round(candidate * scale) == target:
            return candidate
    return size  # only when upsampling (scale > 1): read_roi's rounding may miss by a pixel


def _input_grid(model: ScoreNet, roi: Roi, scale: float) -> tuple[int, int]:
    """The model's region grid (gh, gw) for the RoI read at ``scale``."""
    _, _, w, h = roi
    return model.grid_size(max(1, round(h * scale)), max(1, round(w * scale)))


def snap_roi(model: ScoreNet, roi: Roi, scale: float, bounds: tuple[int, int] | None = None) -> Roi:
    """The RoI grown or trimmed about its centre to whole regions of the model's grid at ``scale``.

    With the slide's ``bounds`` (width, height) it is then moved back inside the slide wherever it
    fits, so no region takes padding it need not; where it does not fit, it is centred on the slide.
    """
    x, y, w, h = roi
    p = model.config.region_size
    gh, gw = _input_grid(model, roi, scale)
    w0, h0 = _level0_size(gw * p, scale), _level0_size(gh * p, scale)
    x, y = x + (w - w0) // 2, y + (h - h0) // 2
    if bounds is not None:
        x, y = _inside(x, w0, bounds[0]), _inside(y, h0, bounds[1])
    return x, y, w0, h0


def _inside(start: int, size: int, length: int) -> int:
    """``start`` moved so ``[start, start + size)`` lies in ``[0, length)``, or centred when it cannot."""
    if size > length:
        return (length - size) // 2
    return min(max(start, 0), length - size)


def padding_shares(read: RoiRead, grid: tuple[int, int]) -> np.ndarray:
    """(gh, gw) share of each region of the read that lies outside the slide (white padding)."""
    gh, gw = grid
    x0, y0, x1, y1 = read.valid
    xs = read.x + np.arange(gw + 1) * (read.w / gw)
    ys = read.y + np.arange(gh + 1) * (read.h / gh)
    inside_x = np.clip(np.minimum(xs[1:], x1) - np.maximum(xs[:-1], x0), 0, None) / np.diff(xs)
    inside_y = np.clip(np.minimum(ys[1:], y1) - np.maximum(ys[:-1], y0), 0, None) / np.diff(ys)
    return 1.0 - np.outer(inside_y, inside_x)


def padded_fraction(read: RoiRead) -> float:
    """Share of the read area outside the slide."""
    x0, y0, x1, y1 = read.valid
    return 1.0 - (x1 - x0) * (y1 - y0) / (read.w * read.h)


def padding_note(path: object, score: RoiScore) -> str:
    """The one-line warning for an RoI scored partly on padding."""
    x, y, w, h = score.roi
    return (
        f"{path}: RoI x={x} y={y} w={w} h={h} was scored with {100 * score.padded_fraction:.0f} % white "
        "padding outside the image; regions mostly padding are not recommended"
    )


# a region more than half padding is never recommended while other regions remain
MAX_REGION_PADDING = 0.5


def read_model_input(
    slide: Slide, model: ScoreNet, roi: Roi, resolution: Resolution
) -> tuple[RoiRead, np.ndarray]:
    """The snapped RoI read at ``resolution`` and its pixels at exactly the grid's size."""
    scale = resolution.scale
    read = read_roi(slide, *snap_roi(model, roi, scale, slide.dimensions), resolution=resolution)
    p = model.config.region_size
    gh, gw = _input_grid(model, roi, scale)
    image = read.image
    if image.shape[:2] != (gh * p, gw * p):  # a pixel off after read_roi's rounding (large upsampling)
        import cv2

        image = cv2.resize(image, (gw * p, gh * p), interpolation=cv2.INTER_LINEAR)
    return read, np.ascontiguousarray(image)


def _to_level0(boxes: np.ndarray, read: RoiRead, image: np.ndarray) -> tuple[np.ndarray, Box]:
    """Boxes in input pixels -> level 0, and the level-0 box the whole input covers."""
    sx, sy = image.shape[1] / read.w, image.shape[0] / read.h
    level0 = boxes / np.array([sx, sy, sx, sy]) + np.array([read.x, read.y, read.x, read.y])
    return level0, (float(read.x), float(read.y), float(read.x + read.w), float(read.y + read.h))


def _batches(sizes: list[tuple[int, int]], batch_pixels: int) -> list[list[int]]:
    """Indices of RoIs grouped by equal input size, each group cut to at most ``batch_pixels``."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, size in enumerate(sizes):
        groups.setdefault(size, []).append(i)
    batches = []
    for (h, w), members in groups.items():
        per_batch = max(1, batch_pixels // (h * w))
        batches += [members[i : i + per_batch] for i in range(0, len(members), per_batch)]
    return batches


def score_rois(
    model: ScoreNet,
    slide: Slide,
    rois: Sequence[Sequence[int]],
    *,
    progress: ProgressFn | None = None,
    **options: Any,
) -> list[RoiScore]:
    """Score each level-0 RoI ``(x, y, w, h)`` of ``slide``: :func:`iter_score_rois` run to its end.

    ``progress(event)`` gets each :class:`scorenet.jobs.Progress`; the keywords are those of
    :func:`iter_score_rois`.
    """
    return run_job(iter_score_rois(model, slide, rois, **options), progress)


def iter_score_rois(
    model: ScoreNet,
    slide: Slide,
    rois: Sequence[Sequence[int]],
    *,
    mpp: float | None = None,
    resolution: Resolution | None = None,
    device: str | torch.device = "auto",
    class_names: Sequence[str] | None = None,
    should_stop: StopFn | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    threads: int | None = None,
) -> Job[list[RoiScore]]:
    """Score RoIs read at ``mpp`` (None: level 0) or ``resolution``, yielding progress; return the scores.

    ``resolution`` (from ``scorenet.resolution.resolve_resolution``, e.g. with the checkpoint's µm/px)
    replaces ``mpp``. RoIs of equal input size share a batch; each batch yields two events, after its
    read (``stage`` "read") and after the model (``stage`` "scored"), counting RoIs read and scored out
    of twice their number. ``should_stop()`` is asked before each read and each forward pass; when it
    returns True, :class:`Cancelled` is raised with the finished scores as ``partial``. All RoIs are
    checked before anything is read. Results come in the order of ``rois``; the model is left in the
    training mode it came in. On the CPU the forward passes use ``threads`` intra-op threads, by
    default the cores found free (``scorenet.threads``).
    """
    num_classes = model.config.num_classes
    names = (
        [str(c) for c in class_names]
        if class_names is not None
        else [f"class {i}" for i in range(num_classes)]
    )
    if len(names) != num_classes:
        raise ScoreNetInputError(f"{len(names)} class names given for a model with {num_classes} classes")
    if resolution is not None and mpp is not None:
        raise ScoreNetInputError("give mpp or a resolution, not both")
    resolution = resolution or resolve_resolution(slide, mpp=mpp)
    scale = resolution.scale
    rois = [tuple(int(v) for v in roi) for roi in rois]
    for roi in rois:
        if len(roi) != 4:
            raise ScoreNetInputError(f"an RoI is (x, y, w, h), got {roi}", slide.path)
        check_roi(slide, roi, resolution, max_pixels)
    for roi in rois:  # the area actually read: an RoI of few pixels grows to K whole regions
        check_roi(slide, snap_roi(model, roi, scale, slide.dimensions), resolution, max_pixels)
    target = resolve_device(device)
    p = model.config.region_size
    sizes = [tuple(n * p for n in _input_grid(model, roi, scale)) for roi in rois]
    results: list[RoiScore | None] = [None] * len(rois)
    was_training = model.training
    model.to(target).eval()
    policy = ThreadPolicy(threads) if target.type == "cpu" else None
    done, total = 0, 2 * len(rois)

    def stop_point() -> None:
        finished = [r for r in results if r is not None]
        check_stop(should_stop, f"scoring stopped after {len(finished)} of {len(rois)} RoIs", finished)

    try:
        for batch in _batches(sizes, BATCH_PIXELS):
            stop_point()
            reads = [read_model_input(slide, model, rois[i], resolution) for i in batch]
            done += len(batch)
            yield Progress("score", done, total, "step", _stage("read", results))
            stop_point()
            scored = score_reads(model, reads, [rois[i] for i in batch], names, target, policy)
            for i, score in zip(batch, scored, strict=True):
                results[i] = score
            done += len(batch)
            yield Progress("score", done, total, "step", _stage("scored", results))
    finally:
        model.train(was_training)
    return results  # type: ignore[return-value]


def score_reads(
    model: ScoreNet,
    reads: Sequence[tuple[RoiRead, np.ndarray]],
    rois: Sequence[Roi],
    names: list[str],
    target: torch.device,
    policy: ThreadPolicy | None,
) -> list[RoiScore]:
    """One forward pass over read RoIs (from :func:`read_model_input`): their scores, in order.

    Regions mostly padding are kept from the recommendation; ``policy`` sets the CPU threads.
    """
    pixels = reads[0][1][None] if len(reads) == 1 else np.stack([image for _, image in reads])
    # channels-last view: the model's byte downscale reads it without a copy to (B, 3, H, W)
    images = torch.from_numpy(pixels).to(target).permute(0, 3, 1, 2)
    padding = region_padding(model, reads)  # an RoI past the slide's edge, a slide smaller than one
    with torch.inference_mode(), _threads(policy):
        out = model(images, avoid=avoid_mask(padding, target))
    return [_roi_score(out, j, roi, *reads[j], names, padding[j]) for j, roi in enumerate(rois)]


def region_padding(model: ScoreNet, reads: Sequence[tuple[RoiRead, np.ndarray]]) -> list[np.ndarray]:
    """The share of padding in each region (gh, gw) of each read RoI, computed once per batch."""
    return [padding_shares(read, model.grid_size(*image.shape[:2])) for read, image in reads]


def avoid_mask(shares: Sequence[np.ndarray], device: torch.device) -> torch.Tensor | None:
    """(B, gh, gw) regions mostly padding, for ``ScoreNet.forward(avoid=...)``; None when none are."""
    masks = [share > MAX_REGION_PADDING for share in shares]
    if not any(mask.any() for mask in masks):
        return None
    return torch.from_numpy(np.stack(masks)).to(device)


def _threads(policy: ThreadPolicy | None) -> contextlib.AbstractContextManager:
    """The policy's intra-op threads for one forward pass; nothing to set off the CPU."""
    return intra_op_threads(policy.update()) if policy is not None else contextlib.nullcontext()


def _stage(stage: str, results: list) -> dict[str, Any]:
    """What a scoring event reports besides its count: the stage, RoIs in all and RoIs scored."""
    return {"stage": stage, "rois": len(results), "scored": sum(r is not None for r in results)}


def _roi_score(
    out: ScoreNetOutput,
    j: int,
    roi: Roi,
    read: RoiRead,
    image: np.ndarray,
    names: list[str],
    padding: np.ndarray,
) -> RoiScore:
    """Row ``j`` of a batch output as an :class:`RoiScore`, regions in rank order.

    Ranks follow the scores, except that regions mostly padding (taken only when too few others
    exist) come last; boxes are clipped to the part of the slide that was read. ``padding``: the
    RoI's :func:`region_padding`.
    """
    probabilities = out.logits[j].float().softmax(-1).cpu().numpy()
    scores = out.scores[j].float().cpu().numpy()
    distribution = out.distribution[j].float().cpu().numpy()
    padded = padding.ravel()[out.indices[j].cpu().numpy()] > MAX_REGION_PADDING  # selected regions
    order = np.lexsort((-scores, padded))
    boxes, box = _to_level0(out.boxes[j].float().cpu().numpy()[order], read, image)
    x0, y0, x1, y1 = read.valid
    boxes = np.clip(boxes, [x0, y0, x0, y0], [x1, y1, x1, y1])
    return RoiScore(
        roi=roi,
        probabilities=probabilities,
        class_names=names,
        predicted=names[int(np.argmax(probabilities))],
        distribution=distribution,
        boxes_level0=boxes,
        scores=scores[order],
        ranks=np.arange(1, len(order) + 1),
        distribution_box_level0=box,
        image=image,
        scale=read.scale,
        mpp=read.mpp,
        padded_fraction=padded_fraction(read),
    )

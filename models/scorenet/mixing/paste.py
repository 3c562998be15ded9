"""The cut-and-paste step every method shares, and its result."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class MixResult:
    """Mixed batch.

    ``images`` has the target's shape; ``labels`` (B, C) are ``lam * y_t + (1 - lam) * y_s``;
    ``cut_boxes`` (B, 4) are in source pixels and ``paste_boxes`` (B, 4) in target pixels, both
    ``(x0, y0, x1, y1)``; ``lam`` (B,) is the fraction of the target's pixels kept.
    """

    images: torch.Tensor
    labels: torch.Tensor
    cut_boxes: torch.Tensor
    paste_boxes: torch.Tensor
    lam: torch.Tensor


def check_pair(
    source: torch.Tensor, target: torch.Tensor, source_labels: torch.Tensor, target_labels: torch.Tensor
) -> None:
    """Raise ``ValueError`` unless the two batches and their (B, C) labels line up."""
    if source.ndim != 4 or target.ndim != 4:
        raise ValueError(f"images must be (B, C, H, W), got {tuple(source.shape)} and {tuple(target.shape)}")
    if source.shape[:2] != target.shape[:2]:
        raise ValueError(f"source {tuple(source.shape)} and target {tuple(target.shape)} differ in B or C")
    batch = target.shape[0]
    for name, labels in (("source_labels", source_labels), ("target_labels", target_labels)):
        if labels.ndim != 2 or labels.shape[0] != batch:
            raise ValueError(f"{name} must be (B, C) with B = {batch}, got {tuple(labels.shape)}")
    if source_labels.shape != target_labels.shape:
        raise ValueError("source_labels and target_labels differ in shape")


def paste(
    source: torch.Tensor,
    target: torch.Tensor,
    cut_boxes: torch.Tensor,
    paste_boxes: torch.Tensor,
    source_labels: torch.Tensor,
    target_labels: torch.Tensor,
) -> MixResult:
    """Copy each source box onto its target box (same pixel size) and mix the labels by kept area."""
    mixed = target.clone()
    for b, (cut, put) in enumerate(zip(cut_boxes.tolist(), paste_boxes.tolist(), strict=True)):
        mixed[b, :, put[1] : put[3], put[0] : put[2]] = source[b, :, cut[1] : cut[3], cut[0] : cut[2]]
    height, width = target.shape[-2:]
    pasted = (paste_boxes[:, 2] - paste_boxes[:, 0]) * (paste_boxes[:, 3] - paste_boxes[:, 1])
    lam = 1.0 - pasted.to(torch.float64) / (height * width)
    weight = lam.to(device=target_labels.device, dtype=torch.float32).unsqueeze(1)
    labels = weight * target_labels.float() + (1 - weight) * source_labels.float().to(target_labels.device)
    return MixResult(mixed, labels, cut_boxes, paste_boxes, lam.float())

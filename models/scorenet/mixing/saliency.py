"""SaliencyMix (Uddin et al. 2021): a box centred on the source's spectral-residual saliency peak."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from .boxes import box_pixel_size, box_tensor, place, sample_area_ratio
from .cutmix import grid_of, paired_box
from .paste import MixResult, check_pair, paste


def to_uint8_hwc(image: torch.Tensor) -> np.ndarray:
    """(C, H, W) float in [0, 1] or uint8 -> (H, W, C) uint8 array."""
    if image.dtype != torch.uint8:
        image = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    return np.ascontiguousarray(image.detach().cpu().permute(1, 2, 0).numpy())


def saliency_map(image: torch.Tensor) -> np.ndarray:
    """Static spectral-residual saliency (Hou and Zhang 2007, OpenCV contrib) of one (C, H, W) image."""
    detector = cv2.saliency.StaticSaliencySpectralResidual_create()
    ok, saliency = detector.computeSaliency(to_uint8_hwc(image))
    if not ok:
        raise RuntimeError("OpenCV could not compute the saliency map")
    return saliency


def saliency_peak(image: torch.Tensor) -> tuple[int, int]:
    """(row, col) of the most salient pixel of one (C, H, W) image."""
    saliency = saliency_map(image)
    row, col = np.unravel_index(int(np.argmax(saliency)), saliency.shape)
    return int(row), int(col)


def saliencymix(
    source: torch.Tensor,
    target: torch.Tensor,
    source_distribution: torch.Tensor | None,
    target_distribution: torch.Tensor | None,
    source_labels: torch.Tensor,
    target_labels: torch.Tensor,
    *,
    lam: float | torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> MixResult:
    """Cut the source box centred on its saliency peak and paste it at the same place in the target.

    Same arguments as :func:`cutmix`. A box that would leave the source is moved inside it rather than
    cropped, so the box sizes stay those of the other methods.
    """
    check_pair(source, target, source_labels, target_labels)
    source_hw, target_hw = tuple(source.shape[-2:]), tuple(target.shape[-2:])
    ratio = sample_area_ratio(target.shape[0], lam, generator)
    sizes = box_pixel_size(ratio, target_hw, grid_of(target_distribution, target), source_hw)
    cut, pasted = [], []
    for b, (h, w) in enumerate(sizes.tolist()):
        row, col = saliency_peak(source[b])
        y0, x0 = place(row - h / 2, h, source_hw[0]), place(col - w / 2, w, source_hw[1])
        cut.append(box_tensor(y0, x0, h, w))
        pasted.append(paired_box((y0, x0), (h, w), target_hw))
    return paste(source, target, torch.stack(cut), torch.stack(pasted), source_labels, target_labels)

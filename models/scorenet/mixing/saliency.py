"""SaliencyMix (Uddin et al. 2021): a box centred on the peak of the source's fine-grained saliency.

The saliency detector is the one of the original SaliencyMix code, OpenCV's static fine-grained
saliency (Montabone and Soto 2010, ``cv2.saliency.StaticSaliencyFineGrained_create``).
"""

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


def to_detector_input(image: torch.Tensor) -> np.ndarray:
    """One (3, H, W) RGB or (1, H, W) grey image -> the 8-bit array OpenCV's detector expects.

    Colour becomes (H, W, 3) BGR, the layout ``cv2.imread`` gives: the detector turns three channels
    into grey with ``COLOR_BGR2GRAY``, so RGB input would swap the red and blue weights.
    """
    pixels = to_uint8_hwc(image)
    if pixels.shape[2] == 3:
        return np.ascontiguousarray(pixels[:, :, ::-1])
    if pixels.shape[2] == 1:
        return np.ascontiguousarray(pixels[:, :, 0])
    raise ValueError(f"saliency needs a 3-channel RGB or 1-channel image, got {pixels.shape[2]} channels")


def saliency_map(image: torch.Tensor) -> np.ndarray:
    """Static fine-grained saliency of one (C, H, W) image: (H, W) float32 in [0, 1].

    The detector works on the 8-bit grey image only (centre-surround intensity differences at six
    scales), so colour matters only through the grey conversion.
    """
    detector = cv2.saliency.StaticSaliencyFineGrained_create()
    ok, saliency = detector.computeSaliency(to_detector_input(image))
    if not ok:
        raise RuntimeError("OpenCV could not compute the saliency map")
    return saliency


def saliency_peak(image: torch.Tensor) -> tuple[int, int]:
    """(row, col) of the most salient pixel of one (C, H, W) image (the first one in raster order)."""
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

"""ScoreMix (paper Sec. 3.2): cut where the source's semantics are, paste where the target's are not."""

from __future__ import annotations

import torch

from .boxes import (
    box_mass,
    box_pixel_size,
    box_tensor,
    kernel_patches,
    place,
    sample_area_ratio,
    sample_cell,
)
from .paste import MixResult, check_pair, paste


def _check_distribution(name: str, distribution: torch.Tensor | None, images: torch.Tensor) -> None:
    if distribution is None or distribution.ndim != 3 or distribution.shape[0] != images.shape[0]:
        shape = None if distribution is None else tuple(distribution.shape)
        raise ValueError(f"{name} must be (B, gh, gw) with B = {images.shape[0]}, got {shape}")
    if distribution.shape[1] > images.shape[-2] or distribution.shape[2] > images.shape[-1]:
        raise ValueError(f"{name} grid {tuple(distribution.shape[1:])} is finer than the image's pixels")


def _sample_box(
    distribution: torch.Tensor,
    image_hw: tuple[int, int],
    box_hw: tuple[int, int],
    *,
    avoid: bool,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """A box of ``box_hw`` pixels on one image, placed by a window drawn from ``P_bbox`` or ``1 - P_bbox``.

    The window is the whole patches the box spans; the box is centred on it (they coincide when the
    box is a whole number of this image's patches), so a box of at least one patch covers its window.
    """
    grid = distribution.shape
    patch = (image_hw[0] / grid[0], image_hw[1] / grid[1])
    kernel = (kernel_patches(box_hw[0], patch[0], grid[0]), kernel_patches(box_hw[1], patch[1], grid[1]))
    mass = box_mass(distribution.unsqueeze(0).to(torch.float64), kernel)[0]
    row, col = sample_cell(1.0 - mass if avoid else mass, generator)
    y0 = place((row + kernel[0] / 2) * patch[0] - box_hw[0] / 2, box_hw[0], image_hw[0])
    x0 = place((col + kernel[1] / 2) * patch[1] - box_hw[1] / 2, box_hw[1], image_hw[1])
    return box_tensor(y0, x0, *box_hw)


def scoremix(
    source: torch.Tensor,
    target: torch.Tensor,
    source_distribution: torch.Tensor,
    target_distribution: torch.Tensor,
    source_labels: torch.Tensor,
    target_labels: torch.Tensor,
    *,
    lam: float | torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> MixResult:
    """Paste a semantically rich source box onto a semantically poor part of the target.

    Args:
        source, target: (B, C, Hs, Ws) and (B, C, Ht, Wt) images; sizes and aspect ratios may differ.
        source_distribution, target_distribution: ``P_patch`` (B, gh, gw) of each image, summing to 1;
            the grids may differ (a patch is image size / grid size pixels).
        source_labels, target_labels: (B, C) one-hot or soft labels.
        lam: fraction of the target to keep (float or (B,)); ``1 - lam ~ U(0, 1)`` when None.
        generator: makes the box sizes and locations reproducible.

    The box is sized in the target's patches (see ``box_pixel_size``) and has the same pixel size in
    both images. Its top-left patch is drawn from ``P_bbox / Z`` on the source (box scores with a kernel
    of the box size in source patches) and from ``(1 - P_bbox) / Z`` on the target, uniformly when all
    of those are zero.
    """
    check_pair(source, target, source_labels, target_labels)
    _check_distribution("source_distribution", source_distribution, source)
    _check_distribution("target_distribution", target_distribution, target)
    source_hw, target_hw = tuple(source.shape[-2:]), tuple(target.shape[-2:])
    ratio = sample_area_ratio(target.shape[0], lam, generator)
    sizes = box_pixel_size(ratio, target_hw, tuple(target_distribution.shape[1:]), source_hw)
    source_distribution = source_distribution.detach().cpu()
    target_distribution = target_distribution.detach().cpu()
    cut, pasted = [], []
    for b, (h, w) in enumerate(sizes.tolist()):
        cut.append(_sample_box(source_distribution[b], source_hw, (h, w), avoid=False, generator=generator))
        pasted.append(_sample_box(target_distribution[b], target_hw, (h, w), avoid=True, generator=generator))
    return paste(source, target, torch.stack(cut), torch.stack(pasted), source_labels, target_labels)

"""ScoreMix (paper Sec. 3.2): cut where the source's semantics are, paste where the target's are not."""

from __future__ import annotations

from functools import partial

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

PASTE_RULES = ("paper", "official")  # where ScoreMix pastes: the paper's law or the published code's


def _check_distribution(name: str, distribution: torch.Tensor | None, images: torch.Tensor) -> None:
    if distribution is None or distribution.ndim != 3 or distribution.shape[0] != images.shape[0]:
        shape = None if distribution is None else tuple(distribution.shape)
        raise ValueError(f"{name} must be (B, gh, gw) with B = {images.shape[0]}, got {shape}")
    if distribution.shape[1] > images.shape[-2] or distribution.shape[2] > images.shape[-1]:
        raise ValueError(f"{name} grid {tuple(distribution.shape[1:])} is finer than the image's pixels")


def check_paste_rule(paste_rule: str) -> None:
    """Raise ``ValueError`` for a paste rule other than those in ``PASTE_RULES``."""
    if paste_rule not in PASTE_RULES:
        choices = ", ".join(PASTE_RULES)
        raise ValueError(f"unknown ScoreMix paste rule {paste_rule!r}; choose one of {choices}")


def box_kernel(image_hw: tuple[int, int], grid: tuple[int, int], box_hw: tuple[int, int]) -> tuple[int, int]:
    """Whole patches (kh, kw) of ``grid`` that a box of ``box_hw`` pixels on this image spans."""
    patch = (image_hw[0] / grid[0], image_hw[1] / grid[1])
    return kernel_patches(box_hw[0], patch[0], grid[0]), kernel_patches(box_hw[1], patch[1], grid[1])


def site_weights(
    distribution: torch.Tensor, kernel: tuple[int, int], *, cut: bool, paste_rule: str = "paper"
) -> torch.Tensor:
    """Unnormalised weight of each window (top-left patch) of ``kernel`` patches on one (gh, gw) ``P_patch``.

    Cut: ``P_bbox``. Paste: ``1 - P_bbox`` (``"paper"``, Sec. 3.2) or ``max P_bbox - P_bbox``
    (``"official"``, the published code). Returns (gh - kh + 1, gw - kw + 1) float64.
    """
    check_paste_rule(paste_rule)
    mass = box_mass(distribution.detach().cpu().unsqueeze(0).to(torch.float64), kernel)[0]
    if cut:
        return mass
    return mass.max() - mass if paste_rule == "official" else 1.0 - mass


def site_probabilities(
    distribution: torch.Tensor, kernel: tuple[int, int], *, cut: bool, paste_rule: str = "paper"
) -> torch.Tensor:
    """:func:`site_weights` normalised to sum to 1; the uniform law when they are all zero (as drawn)."""
    weights = site_weights(distribution, kernel, cut=cut, paste_rule=paste_rule).clamp_min(0)
    total = weights.sum()
    if not torch.isfinite(total) or total <= 0:
        return torch.full_like(weights, 1.0 / weights.numel())
    return weights / total


def _sample_box(
    distribution: torch.Tensor,
    image_hw: tuple[int, int],
    box_hw: tuple[int, int],
    *,
    cut: bool,
    paste_rule: str,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """A box of ``box_hw`` pixels on one image, placed by a window drawn with :func:`site_probabilities`.

    The window is the whole patches the box spans; the box is centred on it (they coincide when the
    box is a whole number of this image's patches), so a box of at least one patch covers its window.
    """
    grid = tuple(distribution.shape)
    patch = (image_hw[0] / grid[0], image_hw[1] / grid[1])
    kernel = box_kernel(image_hw, grid, box_hw)
    row, col = sample_cell(site_weights(distribution, kernel, cut=cut, paste_rule=paste_rule), generator)
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
    paste_rule: str = "paper",
) -> MixResult:
    """Paste a semantically rich source box onto a semantically poor part of the target.

    Args:
        source, target: (B, C, Hs, Ws) and (B, C, Ht, Wt) images; sizes and aspect ratios may differ.
        source_distribution, target_distribution: ``P_patch`` (B, gh, gw) of each image, summing to 1;
            the grids may differ (a patch is image size / grid size pixels).
        source_labels, target_labels: (B, C) one-hot or soft labels.
        lam: fraction of the target to keep (float or (B,)); ``1 - lam ~ U(0, 1)`` when None.
        generator: makes the box sizes and locations reproducible.
        paste_rule: ``"paper"`` draws the paste window from ``(1 - P_bbox) / Z`` (Sec. 3.2);
            ``"official"`` from ``(max P_bbox - P_bbox) / Z``, as the published code does.

    The box is sized in the target's patches (see ``box_pixel_size``) and has the same pixel size in
    both images. Its top-left patch is drawn from ``P_bbox / Z`` on the source (box scores with a kernel
    of the box size in source patches) and from the paste rule's law on the target, uniformly when all
    of those weights are zero.
    """
    check_paste_rule(paste_rule)
    check_pair(source, target, source_labels, target_labels)
    _check_distribution("source_distribution", source_distribution, source)
    _check_distribution("target_distribution", target_distribution, target)
    source_hw, target_hw = tuple(source.shape[-2:]), tuple(target.shape[-2:])
    ratio = sample_area_ratio(target.shape[0], lam, generator)
    sizes = box_pixel_size(ratio, target_hw, tuple(target_distribution.shape[1:]), source_hw)
    source_distribution = source_distribution.detach().cpu()
    target_distribution = target_distribution.detach().cpu()
    draw = partial(_sample_box, paste_rule=paste_rule, generator=generator)
    cut, pasted = [], []
    for b, (h, w) in enumerate(sizes.tolist()):
        cut.append(draw(source_distribution[b], source_hw, (h, w), cut=True))
        pasted.append(draw(target_distribution[b], target_hw, (h, w), cut=False))
    return paste(source, target, torch.stack(cut), torch.stack(pasted), source_labels, target_labels)

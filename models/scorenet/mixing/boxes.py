"""Box geometry shared by ScoreMix, CutMix and SaliencyMix: sizes, box scores and placement.

Boxes are ``(x0, y0, x1, y1)`` pixels, half-open. A grid ``(gh, gw)`` splits an image of ``(h, w)``
pixels into patches of ``h / gh`` by ``w / gw`` pixels; a pixel grid (``gh, gw == h, w``) means no
quantisation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def sample_area_ratio(
    batch: int, lam: float | torch.Tensor | None = None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Requested box area as a fraction of the target, ``1 - lambda ~ U(0, 1)``; (B,) on the CPU.

    ``lam`` (a float or (B,) tensor, the fraction of the target to keep) fixes it instead.
    """
    if lam is None:
        return torch.rand(batch, generator=generator, dtype=torch.float64)
    ratio = 1.0 - torch.as_tensor(lam, dtype=torch.float64).cpu().expand(batch)
    if ((ratio < 0) | (ratio > 1)).any():
        raise ValueError(f"lam must lie in [0, 1], got {lam}")
    return ratio.clone()


def box_pixel_size(
    area_ratio: torch.Tensor,
    target_hw: tuple[int, int],
    target_grid: tuple[int, int],
    source_hw: tuple[int, int],
) -> torch.Tensor:
    """Box (h, w) in pixels (B, 2) long: sides ``sqrt(area_ratio)`` of the target, in whole target patches.

    Each side is rounded to whole patches of the target grid (at least one, so every mix pastes
    something) and then cut down to the source's side, so the same pixel box fits both images.
    """
    side = area_ratio.to(torch.float64).sqrt()
    sizes = []
    for axis in (0, 1):
        cells = target_grid[axis]
        patches = (side * cells).round().clamp(1, cells)
        pixels = (patches * (target_hw[axis] / cells)).round().clamp(1, min(target_hw[axis], source_hw[axis]))
        sizes.append(pixels)
    return torch.stack(sizes, dim=1).long()


def box_mass(distribution: torch.Tensor, box_patches: tuple[int, int]) -> torch.Tensor:
    """Box scores: ``P_bbox(i) = sum of P_patch over the box whose top-left patch is i``.

    ``distribution`` (B, gh, gw) -> (B, gh - bh + 1, gw - bw + 1): a valid 2-D convolution of the
    patch distribution with a ones kernel of the box size, run on the whole batch.
    """
    kernel = distribution.new_ones(1, 1, *box_patches)
    return F.conv2d(distribution.unsqueeze(1), kernel).squeeze(1)


def sample_cell(weights: torch.Tensor, generator: torch.Generator | None = None) -> tuple[int, int]:
    """Row and column drawn with probability proportional to ``weights`` (gh', gw').

    Weights that are all zero (or not finite) carry no preference: the draw is then uniform.
    """
    flat = weights.detach().flatten().to(device="cpu", dtype=torch.float64).clamp_min(0)
    total = flat.sum()
    if not torch.isfinite(total) or total <= 0:
        flat = torch.ones_like(flat)
    index = int(torch.multinomial(flat, 1, generator=generator))
    return divmod(index, weights.shape[-1])


def kernel_patches(box_px: int, patch_px: float, cells: int) -> int:
    """Whole patches (1 .. cells) a box of ``box_px`` pixels spans at least, patches being ``patch_px``."""
    return int(min(max(math.floor(box_px / patch_px + 1e-6), 1), cells))


def place(start: float, box_px: int, image_px: int) -> int:
    """First pixel of a box of ``box_px`` starting near ``start``, shifted just enough to stay inside."""
    return int(min(max(round(start), 0), image_px - box_px))


def box_tensor(y0: int, x0: int, h: int, w: int) -> torch.Tensor:
    """One ``(x0, y0, x1, y1)`` box as a long tensor."""
    return torch.tensor([x0, y0, x0 + w, y0 + h], dtype=torch.long)

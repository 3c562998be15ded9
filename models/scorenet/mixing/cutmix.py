"""CutMix (Yun et al. 2019): a box at a uniformly random place, with ScoreMix's box sizes."""

from __future__ import annotations

import torch

from .boxes import box_pixel_size, box_tensor, place, sample_area_ratio
from .paste import MixResult, check_pair, paste


def grid_of(distribution: torch.Tensor | None, image: torch.Tensor) -> tuple[int, int]:
    """The patch grid box sizes are rounded to: the distribution's, else the image's pixels."""
    return tuple(image.shape[-2:]) if distribution is None else tuple(distribution.shape[-2:])


def paired_box(cut: tuple[int, int], box_hw: tuple[int, int], target_hw: tuple[int, int]) -> torch.Tensor:
    """The paste box at the cut box's place, as the original methods do, moved inside the target if needed."""
    return box_tensor(place(cut[0], box_hw[0], target_hw[0]), place(cut[1], box_hw[1], target_hw[1]), *box_hw)


def cutmix(
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
    """Cut a uniformly placed source box and paste it at the same place in the target.

    Same arguments as :func:`scoremix`; the distributions are only used, when given, for the grid
    the box sides are rounded to (the target's), so that all methods draw the same box sizes.
    """
    check_pair(source, target, source_labels, target_labels)
    source_hw, target_hw = tuple(source.shape[-2:]), tuple(target.shape[-2:])
    ratio = sample_area_ratio(target.shape[0], lam, generator)
    sizes = box_pixel_size(ratio, target_hw, grid_of(target_distribution, target), source_hw)
    cut, pasted = [], []
    for h, w in sizes.tolist():
        y0 = int(torch.randint(source_hw[0] - h + 1, (1,), generator=generator))
        x0 = int(torch.randint(source_hw[1] - w + 1, (1,), generator=generator))
        cut.append(box_tensor(y0, x0, h, w))
        pasted.append(paired_box((y0, x0), (h, w), target_hw))
    return paste(source, target, torch.stack(cut), torch.stack(pasted), source_labels, target_labels)

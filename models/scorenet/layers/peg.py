"""CPVT positional encoding generator (Chu et al. 2021): a depth-wise 3x3 conv on the token grid."""

from __future__ import annotations

import torch
from torch import nn


class PosConv(nn.Module):
    """Adds ``dwconv3x3(tokens)`` to the patch tokens, so positions follow from the grid, any size."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim)

    def forward(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        b, n, c = x.shape
        feat = x.transpose(1, 2).reshape(b, c, *grid)
        return x + self.proj(feat).flatten(2).transpose(1, 2)

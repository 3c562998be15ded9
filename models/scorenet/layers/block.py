"""Pre-norm transformer block (timm ``Block`` layout)."""

from __future__ import annotations

import torch
from timm.layers import DropPath, Mlp
from torch import nn

from .attention import Attention


class Block(nn.Module):
    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 2.0,
        proj_drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, attn_drop=attn_drop, proj_drop=proj_drop)
        self.drop_path1 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, hidden_features=int(dim * mlp_ratio), drop=proj_drop)
        self.drop_path2 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path1(self.attn(self.norm1(x)))
        return x + self.drop_path2(self.mlp(self.norm2(x)))

    def forward_cls(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The block's output for token 0 only (B, 1, C), and that token's attention logits
        (B, heads, N - 1); equal to ``forward(x)[:, :1]`` at a fraction of the cost."""
        cls, logits = self.attn.forward_cls(self.norm1(x))
        cls = x[:, :1] + self.drop_path1(cls)
        return cls + self.drop_path2(self.mlp(self.norm2(cls))), logits

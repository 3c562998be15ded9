"""Transformer encoder over a set of tokens with its own learnable [CLS] (the global stage)."""

from __future__ import annotations

import torch
from torch import nn

from .block import Block


class ClsEncoder(nn.Module):
    """Prepends a learnable [CLS] to (B, K, D) tokens and returns the [CLS] state of every layer."""

    def __init__(
        self,
        embed_dim: int = 96,
        depth: int = 4,
        num_heads: int = 4,
        mlp_ratio: float = 2.0,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        dpr = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, drop_rate, attn_drop_rate, dpr[i]) for i in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, K, D) -> normalised [CLS] states of all layers (B, depth, D)."""
        x = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        cls_states = []
        for block in self.blocks[:-1]:
            x = block(x)
            cls_states.append(x[:, 0])
        # only [CLS] is read after the last block
        cls_states.append(self.blocks[-1].forward_cls(x)[0][:, 0])
        return self.norm(torch.stack(cls_states, dim=1))

"""Transformer encoder over a set of tokens with a [CLS] token (the global stage)."""

from __future__ import annotations

import torch
from torch import nn

from .block import Block

GLOBAL_CLS_MODES = ("learned", "gap")


class ClsEncoder(nn.Module):
    """Transformer over (B, K, D) tokens that returns the normalised states of its [CLS] token.

    ``pseudo_cls_layers = 0`` (default): a learnable [CLS] is prepended at the input and every layer
    outputs a [CLS] state. ``pseudo_cls_layers = n >= 1``: no learned token; before the last n blocks
    the mean of the tokens is prepended as a pseudo-[CLS] (CPVT-GAP, paper App. C, inserted where the
    published code inserts it), and only those n layers output a [CLS] state.
    """

    def __init__(
        self,
        embed_dim: int = 96,
        depth: int = 4,
        num_heads: int = 4,
        mlp_ratio: float = 2.0,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        pseudo_cls_layers: int = 0,
    ) -> None:
        super().__init__()
        if not 0 <= pseudo_cls_layers <= depth:
            raise ValueError(f"pseudo_cls_layers must be in [0, depth = {depth}], got {pseudo_cls_layers}")
        self.pseudo_cls_layers = pseudo_cls_layers
        if pseudo_cls_layers == 0:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
            nn.init.trunc_normal_(self.cls_token, std=0.02)
        dpr = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, drop_rate, attn_drop_rate, dpr[i]) for i in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)

    @staticmethod
    def pseudo_cls_layers_for(mode: str, cls_in_head: int) -> int:
        """``pseudo_cls_layers`` for a ``global_cls`` mode: 0 for ``"learned"``; for ``"gap"``, the
        ``cls_in_head`` layers whose [CLS] states the head reads (the paper's L - m rule with m = y)."""
        if mode not in GLOBAL_CLS_MODES:
            raise ValueError(f"unknown global_cls {mode!r}; choose one of {', '.join(GLOBAL_CLS_MODES)}")
        return cls_in_head if mode == "gap" else 0

    @property
    def num_cls_states(self) -> int:
        """How many [CLS] states :meth:`forward` returns: every layer's, or the last n."""
        return self.pseudo_cls_layers or len(self.blocks)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, K, D) -> normalised [CLS] states of the layers that have one (B, num_cls_states, D)."""
        first = len(self.blocks) - self.num_cls_states
        x = tokens
        if self.pseudo_cls_layers == 0:
            x = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        cls_states = []
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            if self.pseudo_cls_layers and i == first:
                x = torch.cat([x.mean(dim=1, keepdim=True), x], dim=1)
            if i == last:
                # only [CLS] is read after the last block
                cls_states.append(block.forward_cls(x)[0][:, 0])
                break
            x = block(x)
            if i >= first:
                cls_states.append(x[:, 0])
        return self.norm(torch.stack(cls_states, dim=1))

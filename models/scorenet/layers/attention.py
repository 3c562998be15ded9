"""Multi-head self-attention (fused kernel) that can also return the [CLS] row's logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """timm-style attention over (B, N, C) tokens with ``F.scaled_dot_product_attention``."""

    def __init__(self, dim: int, num_heads: int, attn_drop: float = 0.0, proj_drop: float = 0.0) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj(x.transpose(1, 2).reshape(b, n, c)))

    def cls_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-softmax attention logits of token 0 ([CLS]) to the other tokens: (B, heads, N - 1).

        Only the [CLS] query is formed, so this costs one key projection, not a second attention.
        """
        b, n, c = x.shape
        w_q, w_k, _ = self.qkv.weight.chunk(3, dim=0)
        b_q, b_k, _ = self.qkv.bias.chunk(3, dim=0)
        q = F.linear(x[:, :1], w_q, b_q).reshape(b, 1, self.num_heads, self.head_dim).transpose(1, 2)
        k = F.linear(x[:, 1:], w_k, b_k).reshape(b, n - 1, self.num_heads, self.head_dim).transpose(1, 2)
        return (q @ k.transpose(-2, -1)).squeeze(2) * self.scale

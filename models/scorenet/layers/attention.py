"""Multi-head self-attention (fused kernel), and its [CLS] row alone with its logits."""

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

    def forward_cls(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Only the [CLS] row (token 0): its output (B, 1, C) and its pre-softmax logits to the other
        tokens (B, heads, N - 1).

        Used in a network's last block, where only [CLS] is read: one query instead of N, and the
        logits come from the same query and keys instead of a second pass.
        """
        b, n, c = x.shape
        w_q, w_kv = self.qkv.weight.split((c, 2 * c), dim=0)
        b_q, b_kv = self.qkv.bias.split((c, 2 * c), dim=0)
        q = F.linear(x[:, :1], w_q, b_q).reshape(b, 1, self.num_heads, self.head_dim).transpose(1, 2)
        k, v = F.linear(x, w_kv, b_kv).reshape(b, n, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        logits = (q * self.scale) @ k.transpose(-2, -1)  # (B, heads, 1, N)
        attn = logits.softmax(dim=-1)
        if self.training and self.attn_drop > 0:
            attn = F.dropout(attn, self.attn_drop)
        out = (attn @ v).transpose(1, 2).reshape(b, 1, c)
        return self.proj_drop(self.proj(out)), logits[:, :, 0, 1:]

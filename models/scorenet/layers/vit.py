"""CPVT-GAP vision transformer: PEG after the first block, GAP pseudo-[CLS] after layer L - m."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import PatchEmbed
from torch import nn

from .block import Block
from .peg import PosConv


def fold_pixel_affine(
    weight: torch.Tensor, bias: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights (O, C, k, k) and bias (O,) of a convolution that gives on ``x`` what the original
    gives on ``x * scale + shift`` (per input channel, (C,) each); exact for unpadded convolutions."""
    bias = bias + (weight * shift.view(1, -1, 1, 1)).sum(dim=(1, 2, 3))
    return weight * scale.view(1, -1, 1, 1), bias


class CpvtGapViT(nn.Module):
    """ViT whose last ``num_cls_tokens`` (m) layers each output a [CLS] state.

    No [CLS] enters the network: after layer ``L - m`` the mean of the patch tokens is prepended as a
    pseudo-[CLS] token (paper App. C), so each of the last m blocks has a [CLS] row in its attention.
    """

    def __init__(
        self,
        patch_size: int = 16,
        embed_dim: int = 96,
        depth: int = 8,
        num_heads: int = 4,
        mlp_ratio: float = 2.0,
        num_cls_tokens: int = 4,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_cls_tokens = num_cls_tokens
        self.patch_embed = PatchEmbed(
            img_size=None,
            patch_size=patch_size,
            embed_dim=embed_dim,
            strict_img_size=False,
            output_fmt="NHWC",
        )
        self.pos_conv = PosConv(embed_dim)
        dpr = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, drop_rate, attn_drop_rate, dpr[i]) for i in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)

    def embed(
        self, x: torch.Tensor, pixel_affine: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Patch tokens (B, gh, gw, D) of images (B, 3, H, W); ``pixel_affine`` = (scale, shift) per
        channel is applied to the pixels first, folded into the patch projection (no normalised copy
        of the pixels is made)."""
        if pixel_affine is None:
            return self.patch_embed(x)
        proj = self.patch_embed.proj
        weight, bias = fold_pixel_affine(proj.weight, proj.bias, *pixel_affine)
        x = F.conv2d(x, weight, bias, stride=proj.stride)  # unpadded, so the fold is exact
        return self.patch_embed.norm(x.permute(0, 2, 3, 1))

    def forward(
        self,
        x: torch.Tensor,
        return_cls_logits: bool = False,
        pixel_affine: tuple[torch.Tensor, torch.Tensor] | None = None,
    ):
        """Images (B, 3, H, W) -> [CLS] states of the last m layers (B, m, D), normalised.

        With ``return_cls_logits`` also the last block's [CLS]-row attention logits (B, heads, N);
        ``pixel_affine`` as in :meth:`embed`.
        """
        x = self.embed(x, pixel_affine)
        grid = x.shape[1:3]
        # tokens (B, N, D) contiguous once, or every layer norm of the first blocks copies them
        x = x.flatten(1, 2).contiguous()
        first_cls_layer = len(self.blocks) - self.num_cls_tokens
        cls_states = []
        cls_logits = None
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            if i == first_cls_layer:
                x = torch.cat([x.mean(dim=1, keepdim=True), x], dim=1)
            if i == last and i >= first_cls_layer and i > 0:
                # only [CLS] is read after the last block: skip the other tokens' queries and MLP
                x, cls_logits = block.forward_cls(x)
                cls_states.append(x[:, 0])
                break
            if return_cls_logits and i == last:
                cls_logits = block.attn.forward_cls(block.norm1(x))[1]
            x = block(x)
            if i == 0:
                # PEG after the first block (CPVT); the pseudo-[CLS] is never before it unless m = L
                x = self._peg(x, grid, has_cls=i >= first_cls_layer)
            if i >= first_cls_layer:
                cls_states.append(x[:, 0])
        cls = self.norm(torch.stack(cls_states, dim=1))
        return (cls, cls_logits) if return_cls_logits else cls

    def _peg(self, x: torch.Tensor, grid: tuple[int, int], has_cls: bool) -> torch.Tensor:
        if not has_cls:
            return self.pos_conv(x, grid)
        return torch.cat([x[:, :1], self.pos_conv(x[:, 1:], grid)], dim=1)

"""Weight initialisation shared by ScoreNet and its pre-training heads."""

from __future__ import annotations

from torch import nn


def init_linear(module: nn.Module) -> None:
    """ViT-style init for ``Module.apply``: truncated normal (std 0.02) weights, zero biases."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)

"""Parameter counts: ours, and where the paper's "about 1.79 M" comes from."""

from __future__ import annotations

import pytest
from scorenet.model import build_model
from timm.models.vision_transformer import Block as TimmBlock
from torch import nn


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    ("name", "global_cls", "expected"),
    [
        ("scorenet_4_1", "learned", 1_649_291),
        ("scorenet_4_3", "learned", 1_650_635),
        ("scorenet_4_1", "gap", 1_649_195),  # no learned [CLS]: 96 fewer
    ],
)
def test_default_parameter_counts(name, global_cls, expected):
    assert _count(build_model(name, num_classes=7, global_cls=global_cls)) == expected


def test_the_published_layout_gives_the_papers_1_79_million():
    # the published global encoder: MLP ratio 4 (the paper's text says 2), no qkv bias, GAP pseudo-[CLS]
    model = build_model("scorenet_4_1", num_classes=7, global_cls="gap", global_mlp_ratio=4.0)
    qkv_biases = sum(block.attn.qkv.bias.numel() for block in model.global_encoder.blocks)
    # an independent count of one such block: timm's own Block without qkv bias
    timm_block = _count(TimmBlock(96, num_heads=4, mlp_ratio=4.0, qkv_bias=False))
    assert timm_block == 111_552
    assert _count(model.global_encoder) - qkv_biases == 4 * timm_block + 2 * 96  # blocks + final norm
    # the published model's modules: scorer, local ViT, the 4 head-aggregation weights, global encoder;
    # its linear classifier is a separate module
    published = _count(model) - qkv_biases - _count(model.head)
    assert _count(model.scorer) == _count(model.local_vit) == 673_248
    assert published == 1_792_900

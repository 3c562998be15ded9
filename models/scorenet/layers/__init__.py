"""Building blocks of the ScoreNet transformers."""

from .. import _compat  # noqa: F401  (must precede timm)
from .attention import Attention
from .block import Block
from .encoder import ClsEncoder
from .peg import PosConv
from .vit import CpvtGapViT

__all__ = ["Attention", "Block", "ClsEncoder", "CpvtGapViT", "PosConv"]

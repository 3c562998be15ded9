"""A small ScoreNet for fast tests that score real slides: K = 4 regions of 128 px, s = 8."""

from __future__ import annotations

K = 4
SMALL = {
    "embed_dim": 32,
    "depth": 2,
    "num_heads": 2,
    "num_cls_tokens": 1,
    "scorer_cls_in_head": 1,
    "global_depth": 1,
    "global_num_heads": 2,
    "top_k": K,
}

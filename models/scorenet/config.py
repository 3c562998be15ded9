"""ScoreNet hyper-parameters as one JSON-able dataclass."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .choices import Model
from .topk import ESTIMATORS

# what the perturbed top-K perturbs: "uniform" is N * P (1 for a uniform distribution), "minmax" the
# distribution rescaled to [0, 1] per image (Cordonnier et al. 2021)
SCORE_SCALINGS = ("uniform", "minmax")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class ScoreNetConfig:
    """Every number that fixes a ScoreNet's architecture and its region selection.

    Defaults follow the paper (Sec. 3.1, App. B.1, C): s = 8, P_l = 16, P_h = s * P_l = 128, K = 20,
    scorer and local ViT 96 / 8 / 4 / 2 with a CPVT PEG and GAP pseudo-[CLS] tokens for the last
    ``num_cls_tokens`` layers, global encoder 96 / 4 / 4 / 2 with its own [CLS].
    """

    num_classes: int = 7
    downscale: int = 8  # s
    patch_size: int = 16  # P_l, also the local ViT's patch size
    top_k: int = 20  # K
    embed_dim: int = 96
    depth: int = 8
    num_heads: int = 4
    mlp_ratio: float = 2.0
    num_cls_tokens: int = 4  # m: pseudo-[CLS] appended after layer L - m (scorer and local ViT)
    global_depth: int = 4
    global_num_heads: int = 4
    global_mlp_ratio: float = 2.0
    scorer_cls_in_head: int = 4  # x: last x scorer [CLS] states fed to the head (0: regions only)
    global_cls_in_head: int = 1  # y: last y global-encoder [CLS] states fed to the head
    global_cls: str = "learned"  # global encoder: "learned" [CLS] or "gap" (pseudo-[CLS], last y blocks)
    sigma: float = 0.05  # perturbed top-K noise, relative to the uniform score (see topk docs)
    num_samples: int = 500  # perturbed top-K Monte-Carlo samples
    topk_estimator: str = "loo"  # perturbed top-K gradient estimator (scorenet.topk.ESTIMATORS)
    score_scaling: str = "uniform"  # scores fed to the perturbed top-K (see SCORE_SCALINGS)
    mean: tuple[float, float, float] = field(default=IMAGENET_MEAN)
    std: tuple[float, float, float] = field(default=IMAGENET_STD)
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.0

    def __post_init__(self) -> None:
        self.mean = tuple(float(v) for v in self.mean)
        self.std = tuple(float(v) for v in self.std)
        checks = [
            (self.num_classes >= 1, "num_classes must be >= 1"),
            (self.downscale >= 1 and self.patch_size >= 1, "downscale and patch_size must be >= 1"),
            (self.top_k >= 1, "top_k must be >= 1"),
            (self.embed_dim % self.num_heads == 0, "embed_dim must be divisible by num_heads"),
            (self.embed_dim % self.global_num_heads == 0, "embed_dim must be divisible by global_num_heads"),
            (1 <= self.num_cls_tokens <= self.depth, "num_cls_tokens must be in [1, depth]"),
            (0 <= self.scorer_cls_in_head <= self.num_cls_tokens, "scorer_cls_in_head must be in [0, m]"),
            (1 <= self.global_cls_in_head <= self.global_depth, "global_cls_in_head must be in [1, depth]"),
            (self.sigma > 0 and self.num_samples >= 1, "sigma must be > 0 and num_samples >= 1"),
            (self.topk_estimator in ESTIMATORS, f"topk_estimator must be one of {ESTIMATORS}"),
            (self.score_scaling in SCORE_SCALINGS, f"score_scaling must be one of {SCORE_SCALINGS}"),
            (len(self.mean) == 3 and len(self.std) == 3, "mean and std need 3 values"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"invalid ScoreNetConfig: {message}")

    @property
    def region_size(self) -> int:
        """P_h: side of a high-resolution region, one per scorer patch."""
        return self.downscale * self.patch_size

    @property
    def feature_dim(self) -> int:
        """Width of ``features``: the concatenated [CLS] states."""
        return self.embed_dim * (self.scorer_cls_in_head + self.global_cls_in_head)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScoreNetConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown ScoreNetConfig keys: {', '.join(unknown)}")
        return cls(**data)


# the variants by name (scorenet.choices.Model lists the names)
MODEL_CONFIGS: dict[str, dict[str, Any]] = {
    Model.SCORENET_4_1.value: {"scorer_cls_in_head": 4, "global_cls_in_head": 1},
    Model.SCORENET_4_3.value: {"scorer_cls_in_head": 4, "global_cls_in_head": 3},
}

"""ScoreNet: a scorer ViT picks the top-K high-resolution regions, two more transformers classify them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from . import _compat  # noqa: F401  (must precede timm)
from .config import MODEL_CONFIGS, ScoreNetConfig
from .layers import ClsEncoder, CpvtGapViT
from .layers.init import init_linear
from .regions import downscale, fit_to_grid, gather_regions, grid_size, region_boxes, soft_regions
from .topk import hard_topk, perturbed_topk


@dataclass
class ScoreNetOutput:
    """What one forward pass returns (see docs/dev/contracts.md)."""

    logits: torch.Tensor  # (B, C)
    distribution: torch.Tensor  # (B, gh, gw), sums to 1
    indices: torch.Tensor  # (B, K) long, row-major in the grid, increasing
    scores: torch.Tensor  # (B, K) distribution values of the selected regions
    features: torch.Tensor  # (B, D) concatenated [CLS] states
    boxes: torch.Tensor  # (B, K, 4) float (x0, y0, x1, y1) in input pixels


def selection_scores(distribution: torch.Tensor, scaling: str) -> torch.Tensor:
    """The scores (B, N) that the perturbed top-K perturbs, from the distribution (B, N).

    ``"uniform"``: N * P, so the noise is relative to the uniform probability 1/N and sigma means the
    same at every image size. ``"minmax"``: P rescaled to [0, 1] per image (Cordonnier et al. 2021),
    so the noise is relative to the distribution's own spread, however flat it is.
    """
    if scaling == "uniform":
        return distribution * distribution.shape[1]
    low = distribution.amin(dim=1, keepdim=True)
    high = distribution.amax(dim=1, keepdim=True)
    return (distribution - low) / (high - low).clamp_min(1e-12)


def _vit(cfg: ScoreNetConfig) -> CpvtGapViT:
    return CpvtGapViT(
        patch_size=cfg.patch_size,
        embed_dim=cfg.embed_dim,
        depth=cfg.depth,
        num_heads=cfg.num_heads,
        mlp_ratio=cfg.mlp_ratio,
        num_cls_tokens=cfg.num_cls_tokens,
        drop_rate=cfg.drop_rate,
        attn_drop_rate=cfg.attn_drop_rate,
        drop_path_rate=cfg.drop_path_rate,
    )


class ScoreNet(nn.Module):
    """Two-stage ViT (paper Sec. 3.1). ``train()`` selects regions with the perturbed top-K,
    ``eval()`` with the hard top-K."""

    def __init__(self, config: ScoreNetConfig, name: str = "scorenet") -> None:
        super().__init__()
        self.config = config
        self.name = name
        self.scorer = _vit(config)
        # learnable weight of each head's [CLS] row in the semantic distribution (paper Sec. 3.1)
        self.head_weights = nn.Parameter(torch.full((config.num_heads,), 1.0 / config.num_heads))
        self.local_vit = _vit(config)
        self.global_encoder = ClsEncoder(
            embed_dim=config.embed_dim,
            depth=config.global_depth,
            num_heads=config.global_num_heads,
            mlp_ratio=config.global_mlp_ratio,
            drop_rate=config.drop_rate,
            attn_drop_rate=config.attn_drop_rate,
            drop_path_rate=config.drop_path_rate,
            pseudo_cls_layers=ClsEncoder.pseudo_cls_layers_for(config.global_cls, config.global_cls_in_head),
        )
        self.head = nn.Linear(config.feature_dim, config.num_classes)
        self.register_buffer("mean", torch.tensor(config.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.std).view(1, 3, 1, 1), persistent=False)
        self.apply(init_linear)
        # the perturbed top-K noise; a training schedule may change it (not part of the weights)
        self.sigma = config.sigma

    def grid_size(self, h: int, w: int) -> tuple[int, int]:
        """Region grid (gh, gw) used for an input of h x w pixels (also the distribution's shape)."""
        return grid_size(h, w, self.config.region_size, self.config.top_k)

    def fit_images(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Images on the grid (B, 3, gh*P_h, gw*P_h), not yet normalised.

        uint8 images that already fit the grid stay uint8: the downscale and the region gather then
        work on bytes and only the small results become float (no float copy of the full image).
        Anything else becomes float in [0, 1] and is resized to the grid.
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got shape {tuple(images.shape)}")
        grid = self.grid_size(*images.shape[-2:])
        p = self.config.region_size
        if images.dtype == torch.uint8 and tuple(images.shape[-2:]) == (grid[0] * p, grid[1] * p):
            return images, grid
        dtype = self.mean.dtype
        images = images.to(dtype).div_(255) if images.dtype == torch.uint8 else images.to(dtype)
        return fit_to_grid(images, grid, p), grid

    def pixel_affine(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel (scale, shift), (3,) each, that normalise pixels of ``dtype``: uint8 in 0-255 or
        float in [0, 1]."""
        scale = 1 / self.std.flatten()
        shift = -self.mean.flatten() * scale
        return (scale / 255 if dtype == torch.uint8 else scale), shift

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised float pixels from uint8 or [0, 1] float images, in one fused pass."""
        scale, shift = (t.view(1, 3, 1, 1) for t in self.pixel_affine(images.dtype))
        dtype = self.mean.dtype if images.dtype == torch.uint8 else images.dtype
        return torch.addcmul(shift.to(dtype), images.to(dtype), scale.to(dtype))

    def _vit_input(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Float pixels and the normalisation to fold into a ViT's patch embedding."""
        affine = self.pixel_affine(images.dtype)
        pixels = images.to(self.mean.dtype) if images.dtype == torch.uint8 else images
        return pixels, tuple(t.to(pixels.dtype) for t in affine)

    def score(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scorer on the s-times downscaled image -> ([CLS] states (B, m, D), distribution (B, N))."""
        low, affine = self._vit_input(downscale(images, self.config.downscale).to(self.mean.dtype))
        cls, logits = self.scorer(low, return_cls_logits=True, pixel_affine=affine)
        # heads combined on the pre-softmax logits, then one softmax over the patches (Eq. 3)
        combined = torch.einsum("bhn,h->bn", logits, self.head_weights.to(logits.dtype))
        return cls, combined.softmax(dim=-1)

    def semantic_distribution(self, images: torch.Tensor) -> torch.Tensor:
        """P_patch (B, gh, gw) from the scorer alone; sums to 1 per image."""
        fitted, grid = self.fit_images(images)
        _, dist = self.score(fitted)
        return dist.view(-1, *grid)

    def encode_regions(self, regions: torch.Tensor) -> torch.Tensor:
        """The global encoder's [CLS] states (B, n, D) over regions (B, K, 3, P_h, P_h), uint8 or float
        in [0, 1], each region encoded by the local ViT's last [CLS] state."""
        b, k = regions.shape[:2]
        pixels, affine = self._vit_input(regions.flatten(0, 1))
        region_cls = self.local_vit(pixels, pixel_affine=affine)[:, -1]
        return self.global_encoder(region_cls.view(b, k, -1))

    def select_regions(
        self,
        fitted: torch.Tensor,
        distribution: torch.Tensor,
        grid: tuple[int, int],
        indices: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The K regions (B, K, 3, P_h, P_h) of grid-fitted images: soft perturbed top-K blends in
        ``train()`` (float in [0, 1]), the hard top-K regions (input dtype) in ``eval()``, those at
        ``indices`` when given."""
        cfg = self.config
        if not self.training:
            if indices is None:
                indices = hard_topk(distribution.detach(), cfg.top_k)
            return gather_regions(fitted, indices, grid, cfg.region_size)
        scores = selection_scores(distribution, cfg.score_scaling)
        indicators = perturbed_topk(
            scores, cfg.top_k, self.sigma, cfg.num_samples, estimator=cfg.topk_estimator
        )
        regions = soft_regions(fitted, indicators, grid, cfg.region_size)
        return regions / 255 if fitted.dtype == torch.uint8 else regions  # the blend is linear in pixels

    def region_features(self, scorer_cls: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
        """The head's input (B, D): the last x scorer [CLS] states (B, m, D) and the last y global
        [CLS] states over the K regions (B, K, 3, P_h, P_h), uint8 or float in [0, 1]."""
        cfg = self.config
        global_cls = self.encode_regions(regions)
        last_x = scorer_cls[:, scorer_cls.shape[1] - cfg.scorer_cls_in_head :].flatten(1)  # x may be 0
        last_y = global_cls[:, -cfg.global_cls_in_head :].flatten(1)
        return torch.cat([last_x, last_y], dim=1)

    def forward(self, images: torch.Tensor, avoid: torch.Tensor | None = None) -> ScoreNetOutput:
        """Score, select and classify ``images`` (B, 3, H, W), uint8 or float in [0, 1].

        ``avoid`` (B, gh, gw) bool marks regions not to recommend (mostly padding outside a slide):
        the hard top-K takes them only when fewer than K others exist. The distribution is unchanged.
        """
        cfg = self.config
        height, width = images.shape[-2:]
        fitted, grid = self.fit_images(images)
        scorer_cls, dist = self.score(fitted)
        ranking = dist.detach()
        if avoid is not None:  # below every other region, in their own order
            ranking = ranking - 2.0 * avoid.reshape(ranking.shape).to(ranking.dtype)
        indices = hard_topk(ranking, cfg.top_k)
        b = images.shape[0]
        features = self.region_features(scorer_cls, self.select_regions(fitted, dist, grid, indices))
        scale = (width / (grid[1] * cfg.region_size), height / (grid[0] * cfg.region_size))
        return ScoreNetOutput(
            logits=self.head(features),
            distribution=dist.view(b, *grid),
            indices=indices,
            scores=dist.gather(1, indices),
            features=features,
            boxes=region_boxes(indices, grid, cfg.region_size, scale).to(images.device),
        )


def build_model(name: str, num_classes: int, **overrides: Any) -> ScoreNet:
    """A fresh ScoreNet: ``name`` is ``scorenet_4_1`` or ``scorenet_4_3``; overrides set config fields."""
    if name not in MODEL_CONFIGS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(sorted(MODEL_CONFIGS))}")
    config = ScoreNetConfig(**{**MODEL_CONFIGS[name], **overrides, "num_classes": num_classes})
    return ScoreNet(config, name=name)

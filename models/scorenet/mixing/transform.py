"""Batch transform for training loops: mix each image with another image of the same batch."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ScoreNetInputError
from .cutmix import cutmix
from .paste import MixResult
from .saliency import saliencymix
from .scoremix import PASTE_RULES, scoremix

MIX_METHODS: dict[str, Callable[..., MixResult] | None] = {
    "none": None,
    "cutmix": cutmix,
    "saliencymix": saliencymix,
    "scoremix": scoremix,
}


class MixBatchTransform:
    """``(images, labels) -> (images, soft_labels)``: mix the batch with a random permutation of itself.

    Args:
        method: ``"none"``, ``"cutmix"``, ``"saliencymix"`` or ``"scoremix"``.
        model: for ScoreMix, a module with ``semantic_distribution(images) -> (B, gh, gw)`` (a ScoreNet),
            asked under ``torch.no_grad()`` with its current weights as in the paper.
        prob: chance that a batch is mixed at all.
        generator: makes permutations, boxes and the ``prob`` draw reproducible.
        num_classes: width of the one-hot labels made from (B,) class indices; defaults to
            ``model.config.num_classes`` when the model has one.
        paste_rule: ScoreMix's paste law, ``"paper"`` (``(1 - P_bbox) / Z``) or ``"official"``
            (``(max P_bbox - P_bbox) / Z``, the published code); see :func:`scoremix`.
    """

    def __init__(
        self,
        method: str = "scoremix",
        model: nn.Module | None = None,
        prob: float = 1.0,
        generator: torch.Generator | None = None,
        num_classes: int | None = None,
        paste_rule: str = "paper",
    ) -> None:
        if method not in MIX_METHODS:
            choices = ", ".join(MIX_METHODS)
            raise ScoreNetInputError(f"unknown mixing method {method!r}; choose one of {choices}")
        if method == "scoremix" and model is None:
            raise ScoreNetInputError("ScoreMix needs the model whose semantic distribution guides the boxes")
        if not 0.0 <= prob <= 1.0:
            raise ScoreNetInputError(f"mixing probability must lie in [0, 1], got {prob}")
        if paste_rule not in PASTE_RULES:
            choices = ", ".join(PASTE_RULES)
            raise ScoreNetInputError(f"unknown ScoreMix paste rule {paste_rule!r}; choose one of {choices}")
        self.method = method
        self.model = model
        self.prob = prob
        self.generator = generator
        self.paste_rule = paste_rule
        config = getattr(model, "config", None)
        self.num_classes = num_classes if num_classes is not None else getattr(config, "num_classes", None)

    def soft_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """(B,) class indices or (B, C) soft labels -> (B, C) float."""
        if labels.ndim == 2:
            return labels.float()
        if labels.ndim != 1 or labels.is_floating_point():
            shape = tuple(labels.shape)
            raise ValueError(f"labels must be (B,) class indices or (B, C) soft labels, got {shape}")
        if self.num_classes is None:
            raise ValueError("class-index labels need num_classes (or a model with config.num_classes)")
        return F.one_hot(labels.long(), self.num_classes).float()

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        soft = self.soft_labels(labels)
        mix = MIX_METHODS[self.method]
        if mix is None or images.shape[0] < 2:
            return images, soft
        if self.prob < 1.0 and float(torch.rand(1, generator=self.generator)) >= self.prob:
            return images, soft
        order = torch.randperm(images.shape[0], generator=self.generator)
        distribution = None
        if self.method == "scoremix":
            with torch.no_grad():
                distribution = self.model.semantic_distribution(images)
        source_distribution = None if distribution is None else distribution[order.to(distribution.device)]
        # only ScoreMix places its paste box by a law; the other methods take no paste rule
        options = {"paste_rule": self.paste_rule} if self.method == "scoremix" else {}
        result = mix(
            images[order.to(images.device)],
            images,
            source_distribution,
            distribution,
            soft[order.to(soft.device)],
            soft,
            generator=self.generator,
            **options,
        )
        return result.images, result.labels

    def __repr__(self) -> str:
        rule = f", paste_rule={self.paste_rule!r}" if self.method == "scoremix" else ""
        return f"{type(self).__name__}(method={self.method!r}, prob={self.prob}{rule})"

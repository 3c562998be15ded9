"""Views for self-supervised pre-training: DINO's multi-crop and pixel-value-only augmentations.

Both work on one uint8 (3, H, W) image at a time and return uint8 views (the model normalises).
Histology has no up or down, so the multi-crop also flips vertically; otherwise the recipes are DINO's
(colour jitter 0.4 / 0.4 / 0.2 / 0.1 with p = 0.8, greyscale p = 0.2, Gaussian blur p = 1.0 / 0.1 /
0.5 for the first global, second global and local views, solarisation p = 0.2 on the second).
"""

from __future__ import annotations

import torch

from . import _compat  # noqa: F401  (torchvision on CPU-only torch)


def _pixel_ops(blur_p: float, solarize_p: float) -> list:
    from torchvision.transforms import v2

    return [
        v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
        v2.RandomGrayscale(p=0.2),
        v2.RandomApply([v2.GaussianBlur(9, sigma=(0.1, 2.0))], p=blur_p),
        v2.RandomSolarize(128, p=solarize_p),
    ]


class MultiCrop:
    """Two global views of ``global_size`` and ``local_crops`` local views of ``local_size`` pixels."""

    def __init__(
        self,
        global_size: int,
        local_size: int,
        local_crops: int,
        global_scale: tuple[float, float] = (0.4, 1.0),
        local_scale: tuple[float, float] = (0.05, 0.4),
    ) -> None:
        from torchvision.transforms import v2

        def view(size: int, scale: tuple[float, float], blur_p: float, solarize_p: float) -> v2.Compose:
            geometry = [
                v2.RandomResizedCrop(size, scale=scale, antialias=True),
                v2.RandomHorizontalFlip(),
                v2.RandomVerticalFlip(),
            ]
            return v2.Compose(geometry + _pixel_ops(blur_p, solarize_p))

        self.global_views = [
            view(global_size, global_scale, 1.0, 0.0),
            view(global_size, global_scale, 0.1, 0.2),
        ]
        self.local_view = view(local_size, local_scale, 0.5, 0.0)
        self.local_crops = local_crops

    def __call__(self, image: torch.Tensor) -> list[torch.Tensor]:
        """The global views first, then the local ones."""
        return [t(image) for t in self.global_views] + [
            self.local_view(image) for _ in range(self.local_crops)
        ]


class PixelViews:
    """Two views that change pixel values, never their positions (the "unbiased" pretext): the
    regions the scorer picks in one view are the same tissue in the other."""

    def __init__(self) -> None:
        from torchvision.transforms import v2

        self.views = [v2.Compose(_pixel_ops(1.0, 0.0)), v2.Compose(_pixel_ops(0.1, 0.2))]

    def __call__(self, image: torch.Tensor) -> list[torch.Tensor]:
        return [t(image) for t in self.views]

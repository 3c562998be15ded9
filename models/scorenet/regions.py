"""The region grid: fitting an image to it, gathering the selected P_h x P_h regions, their boxes."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def grid_size(height: int, width: int, region_size: int, min_regions: int) -> tuple[int, int]:
    """Regions per column and row (gh, gw) for an image of ``height x width`` pixels.

    The nearest whole number of regions per side (at least 1); when that gives fewer than
    ``min_regions`` (K) regions, both sides are scaled up by the same factor until gh * gw >= K,
    keeping the aspect ratio as well as whole regions allow.
    """
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height} x {width}")
    gh_f, gw_f = height / region_size, width / region_size
    gh, gw = max(1, round(gh_f)), max(1, round(gw_f))
    if gh * gw < min_regions:
        scale = math.sqrt(min_regions / (gh_f * gw_f))
        # ceil of both scaled sides guarantees gh * gw >= gh_f * gw_f * scale^2 = K
        gh, gw = max(1, math.ceil(gh_f * scale - 1e-9)), max(1, math.ceil(gw_f * scale - 1e-9))
    return gh, gw


def fit_to_grid(images: torch.Tensor, grid: tuple[int, int], region_size: int) -> torch.Tensor:
    """Float images resized (bilinear, antialiased) to exactly the grid's pixels; a no-op when they fit."""
    size = (grid[0] * region_size, grid[1] * region_size)
    if tuple(images.shape[-2:]) == size:
        return images
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)


# bytes of int16 rows a band of the byte downscale converts at once: small enough to stay in the
# last-level cache and be reused, large enough that the per-band overhead of a few ops stays small
_BAND_BYTES = 1 << 22


def downscale(images: torch.Tensor, factor: int) -> torch.Tensor:
    """Average pooling by ``factor`` (sides must be multiples of it); uint8 in, [0, 1] float out.

    For uint8 images the ``factor`` rows of each block are added in int16 (at most 255 * factor) and
    the columns in int32, a band of rows at a time: only the ``factor``-squared smaller result is ever
    float, and the int16 rows of a band stay in cache. Equal to float pooling up to rounding, and
    about 10x faster on CPU than converting the full image first.
    """
    if images.dtype != torch.uint8:
        return F.avg_pool2d(images, kernel_size=factor)
    if 255 * factor > torch.iinfo(torch.int16).max:
        return F.avg_pool2d(images.float().div_(255), kernel_size=factor)
    b, c, h, w = images.shape
    channels_last = images.permute(0, 2, 3, 1).is_contiguous()
    if channels_last:
        # an (H, W, 3) array viewed as (3, H, W): interleaved pixels, added as they lie in memory
        rows = images.permute(0, 2, 3, 1).reshape(b * (h // factor), factor, w * c)
        interleaved = c
    else:
        rows = images.reshape(b * c * (h // factor), factor, w)
        interleaved = 1
    count, length = rows.shape[0], rows.shape[2]
    sums = torch.empty(count, w // factor, interleaved, dtype=torch.int32, device=images.device)
    # on an accelerator every op is a kernel launch and there is no cache to fit: one band
    band = max(1, _BAND_BYTES // (2 * factor * length)) if images.device.type == "cpu" else count
    wide = torch.empty(min(band, count), factor, length, dtype=torch.int16, device=images.device)
    acc = torch.empty(min(band, count), length, dtype=torch.int16, device=images.device)
    for start in range(0, count, band):
        stop = min(count, start + band)
        block, total = wide[: stop - start], acc[: stop - start]
        block.copy_(rows[start:stop])  # one conversion into a reused buffer, no temporary per add
        total.copy_(block[:, 0])
        for i in range(1, factor):
            total += block[:, i]
        columns = total.view(-1, w // factor, factor, interleaved)
        torch.sum(columns, dim=2, dtype=torch.int32, out=sums[start:stop])
    low = sums.float().div_(255 * factor * factor)
    if channels_last:
        return low.view(b, h // factor, w // factor, c).permute(0, 3, 1, 2)
    return low.view(b, c, h // factor, w // factor)


def region_view(images: torch.Tensor, grid: tuple[int, int], region_size: int) -> torch.Tensor:
    """(B, C, gh*P, gw*P) -> (B, gh, gw, C, P, P) as a view (no copy) of the regions of the grid."""
    b, c = images.shape[:2]
    p = region_size
    return images.view(b, c, grid[0], p, grid[1], p).permute(0, 2, 4, 1, 3, 5)


def gather_regions(
    images: torch.Tensor, indices: torch.Tensor, grid: tuple[int, int], region_size: int
) -> torch.Tensor:
    """Copy only the regions at row-major ``indices`` (B, M): (B, M, C, P, P)."""
    p = region_size
    # contiguous uint8 rows are copied as int64 words, 8 pixels at a time: several times faster
    packed = (
        images.dtype == torch.uint8
        and p % 8 == 0
        and images.is_contiguous()
        and images.storage_offset() % 8 == 0
    )
    source = images.view(torch.int64) if packed else images
    b, c = source.shape[:2]
    regions = source.view(b, c, grid[0], p, grid[1], p // 8 if packed else p).permute(0, 2, 4, 1, 3, 5)
    batch = torch.arange(b, device=images.device).unsqueeze(1)
    selected = regions[batch, indices // grid[1], indices % grid[1]]
    return selected.view(torch.uint8) if packed else selected


def soft_regions(
    images: torch.Tensor, indicators: torch.Tensor, grid: tuple[int, int], region_size: int
) -> torch.Tensor:
    """X = Y^T P (B, K, C, P, P) for soft indicators Y (B, N, K), differentiable in Y.

    Only the regions with a non-zero weight in some column are gathered (at most S * K per image).
    """
    used = indicators.detach().abs().sum(-1) > 0  # (B, N)
    count = int(used.sum(-1).max())
    # used regions first; the padding beyond each image's own count gets weight zero below
    order = torch.argsort(used.to(torch.int8), dim=-1, descending=True, stable=True)[:, :count]
    valid = used.gather(1, order).to(indicators.dtype)
    weights = indicators.gather(1, order.unsqueeze(-1).expand(-1, -1, indicators.shape[-1]))
    weights = weights * valid.unsqueeze(-1)
    patches = gather_regions(images, order, grid, region_size)
    return torch.einsum("bmk,bmchw->bkchw", weights, patches.to(weights.dtype))


def region_boxes(
    indices: torch.Tensor, grid: tuple[int, int], region_size: int, scale_xy: tuple[float, float]
) -> torch.Tensor:
    """Boxes (B, K, 4) ``(x0, y0, x1, y1)`` of the regions, in input pixels (grid pixels * scale)."""
    rows = (indices // grid[1]).float()
    cols = (indices % grid[1]).float()
    sx, sy = scale_xy
    p = float(region_size)
    return torch.stack([cols * p * sx, rows * p * sy, (cols + 1) * p * sx, (rows + 1) * p * sy], dim=-1)

"""The scorer learns where to look: a task that only the selected high-resolution region can solve.

Each 256 x 256 image is a 2 x 2 grid of 128-pixel regions: three of real stroma, one of real carcinoma
(so the scorer can find it at 1/8 resolution). The class is written only inside the carcinoma region,
as a 1-pixel checkerboard or 1-pixel stripes that the 8x downscale averages away. With K = 1 the model
can only classify through the region it selects, so accuracy and the carcinoma region's probability
both rise only if the perturbed top-K gradient moves the scorer the right way.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from PIL import Image
from scorenet.model import build_model

P = 128


@functools.cache
def _pixels(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _crops(path, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    pixels = _pixels(path)
    corners = rng.integers(0, [pixels.shape[0] - P, pixels.shape[1] - P], size=(count, 2))
    return [pixels[y : y + P, x : x + P] for y, x in corners]


def _pattern(label: int) -> np.ndarray:
    """+-40 grey levels: a checkerboard (class 0) or vertical stripes (class 1), zero mean per 8 x 8."""
    yy, xx = np.mgrid[:P, :P]
    sign = np.where((yy + xx) % 2 == 0, 1, -1) if label == 0 else np.where(xx % 2 == 0, 1, -1)
    return (40 * sign)[..., None]


def _batch(tiles_dir, rng: np.random.Generator, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images (B, 3, 256, 256) uint8, labels (B,), index of the carcinoma region (B,)."""
    stroma = _crops(tiles_dir / "hgsc_stromal_he.jpg", 3 * size, rng)
    carcinoma = _crops(tiles_dir / "hgsc_nest.jpg", size, rng)
    images, labels, where = [], rng.integers(0, 2, size), rng.integers(0, 4, size)
    for b in range(size):
        regions = stroma[3 * b : 3 * b + 3]
        marked = np.clip(carcinoma[b].astype(np.int16) + _pattern(int(labels[b])), 0, 255).astype(np.uint8)
        regions.insert(int(where[b]), marked)
        image = np.block([[[regions[0]], [regions[1]]], [[regions[2]], [regions[3]]]])
        images.append(image.reshape(2 * P, 2 * P, 3))
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return batch, torch.from_numpy(labels), torch.from_numpy(where)


def test_two_by_two_grid_layout(tiles_dir):
    images, _, where = _batch(tiles_dir, np.random.default_rng(0), 4)
    for image, index in zip(images, where, strict=True):
        row, col = divmod(int(index), 2)
        region = image[:, row * P : (row + 1) * P, col * P : (col + 1) * P].float()
        # the marked region is the one with the 1-pixel pattern: the largest neighbour differences
        contrast = [
            (image[:, r * P : (r + 1) * P, c * P : (c + 1) * P].float().diff(dim=-1).abs().mean())
            for r in range(2)
            for c in range(2)
        ]
        assert int(np.argmax(contrast)) == int(index) and region.shape == (3, P, P)


# the paper's widths with half the depth: the same mechanism, four times faster
SMALL = {"depth": 4, "num_cls_tokens": 2, "scorer_cls_in_head": 2, "global_depth": 2}


@pytest.fixture
def one_thread():
    # a small model: one intra-op thread is as fast, and far faster when the other core is busy
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("scaling", ["uniform", "minmax"])
def test_scorer_learns_the_informative_region(tiles_dir, scaling, one_thread):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = build_model(
        "scorenet_4_1", num_classes=2, top_k=1, num_samples=100, score_scaling=scaling, **SMALL
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.05)
    test_images, test_labels, test_where = _batch(tiles_dir, np.random.default_rng(99), 32)
    model.eval()
    with torch.no_grad():
        before = model(test_images).distribution.flatten(1)[torch.arange(32), test_where].mean()
    model.train()
    for _ in range(150):
        images, labels, _ = _batch(tiles_dir, rng, 8)
        loss = torch.nn.functional.cross_entropy(model(images).logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        out = model(test_images)
    after = out.distribution.flatten(1)[torch.arange(32), test_where].mean()
    selected = (out.indices[:, 0] == test_where).float().mean()
    accuracy = (out.logits.argmax(1) == test_labels).float().mean()
    assert before < 0.4  # about 1/4 at initialisation
    message = f"probability {before:.2f} -> {after:.2f}, selected in {selected:.0%}, accuracy {accuracy:.0%}"
    assert selected > 0.9, message
    assert accuracy > 0.9, message

"""Guards on the science: each test fails when one step of the method is wired wrongly.

Real H&E crops (carcinoma and stroma) through the real ScoreNet; no flat images, no stand-in scorer.
Each test checks the method against a computation of its own, not against the code's other paths.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from real_crops import CROP_CORNERS
from scorenet.demo_data import DEMO_MODEL_OVERRIDES, make_tile_folder
from scorenet.mixing import MixBatchTransform
from scorenet.model import ScoreNet, build_model
from scorenet.train import TrainConfig, train

# (tile, top, left) of non-overlapping 384 x 512 crops: three carcinoma, three stroma
CROPS = CROP_CORNERS
CROP_HW = (384, 512)


@pytest.fixture(scope="module")
def crops(tiles_dir: Path) -> torch.Tensor:
    """(6, 3, 384, 512) uint8 crops of the real tiles; each one's pixels occur in no other crop."""
    images = []
    for name, top, left in CROPS:
        with Image.open(tiles_dir / name) as im:
            rgb = np.asarray(im.convert("RGB"))[top : top + CROP_HW[0], left : left + CROP_HW[1]]
        images.append(torch.from_numpy(rgb.copy()).permute(2, 0, 1))
    return torch.stack(images)


def _model(num_classes: int = 2, **overrides: Any) -> ScoreNet:
    torch.manual_seed(0)
    return build_model("scorenet_4_1", num_classes, **{**DEMO_MODEL_OVERRIDES, **overrides}).eval()


# -- 1. ScoreMix in the batch transform: each image is cut and pasted by its own distribution --


def _locate(content: torch.Tensor, image: torch.Tensor) -> list[tuple[int, int]]:
    """Every (y, x) where ``content`` (C, h, w) occurs exactly in ``image`` (C, H, W)."""
    h, w = content.shape[-2:]
    rows, cols = image.shape[-2] - h + 1, image.shape[-1] - w + 1
    hits = torch.ones(rows, cols, dtype=torch.bool)
    # a few probe pixels narrow the candidates before the full comparison
    for dy, dx in ((0, 0), (h - 1, w - 1), (h // 2, w // 2), (0, w - 1), (h - 1, 0)):
        hits &= (image[:, dy : dy + rows, dx : dx + cols] == content[:, dy : dy + 1, dx : dx + 1]).all(0)
    return [
        (y, x) for y, x in hits.nonzero().tolist() if torch.equal(image[:, y : y + h, x : x + w], content)
    ]


def _covers(box: tuple[int, int, int, int], patch: tuple[int, int, int, int]) -> bool:
    """Whether ``box`` contains ``patch``, both (y0, x0, y1, x1)."""
    return box[0] <= patch[0] and box[1] <= patch[1] and box[2] >= patch[2] and box[3] >= patch[3]


def test_scoremix_cuts_and_pastes_by_each_images_own_distribution(crops: torch.Tensor) -> None:
    batch = crops.shape[0]
    model = _model(num_classes=batch)  # label b marks image b, so a mixed label names the source
    with torch.no_grad():
        model.head_weights.fill_(1e5)  # a sharp softmax: all the mass on each image's top patch
        dist = model.semantic_distribution(crops)
    grid = dist.shape[1:]
    patch = CROP_HW[0] // grid[0]
    peaks = dist.flatten(1).argmax(1).tolist()
    assert dist.flatten(1).max(1).values.min() > 0.999
    assert len(set(peaks)) == batch  # the crops' peaks differ, so a mis-pairing has somewhere to show
    peak_boxes = [(p // grid[1] * patch, p % grid[1] * patch) for p in peaks]
    peak_boxes = [(y, x, y + patch, x + patch) for y, x in peak_boxes]

    checked_cuts = checked_pastes = 0
    for seed in range(4):
        transform = MixBatchTransform("scoremix", model=model, generator=torch.Generator().manual_seed(seed))
        mixed, labels = transform(crops, torch.arange(batch))
        for b in range(batch):
            others = labels[b].clone()
            others[b] = 0
            source = int(others.argmax())
            if others[source] == 0:
                continue  # mixed with itself
            # the paste box: where the image changed; its area is the source's share of the label
            changed = (mixed[b] != crops[b]).any(0).nonzero()
            (y0, x0), (y1, x1) = changed.min(0).values.tolist(), (changed.max(0).values + 1).tolist()
            assert abs((y1 - y0) * (x1 - x0) - float(others[source]) * CROP_HW[0] * CROP_HW[1]) < 1
            found = _locate(mixed[b, :, y0:y1, x0:x1], crops[source])
            assert len(found) == 1, found
            cy, cx = found[0]
            # the cut box holds the source's own semantic peak
            assert _covers((cy, cx, cy + y1 - y0, cx + x1 - x0), peak_boxes[source]), (seed, b, source)
            checked_cuts += 1
            # the paste box spares the target's own peak whenever a box of its size can
            row, col = divmod(peaks[b], grid[1])
            rows_free, cols_free = max(row, grid[0] - 1 - row), max(col, grid[1] - 1 - col)
            if (y1 - y0) // patch <= rows_free or (x1 - x0) // patch <= cols_free:
                py0, px0, py1, px1 = peak_boxes[b]
                assert torch.equal(mixed[b, :, py0:py1, px0:px1], crops[b, :, py0:py1, px0:px1]), (seed, b)
                checked_pastes += 1
    assert checked_cuts >= 12 and checked_pastes >= 12


# -- 2. The semantic distribution: learnable weights on the heads' logits, then one softmax (Eq. 3) --


def test_distribution_is_the_softmax_of_the_weighted_head_logits(crops: torch.Tensor) -> None:
    model = _model(num_heads=4)
    images = crops[[0, 3]]
    weights = torch.tensor([300.0, -120.0, 40.0, 0.0])  # untrained logits are small: spread them out
    with torch.no_grad():
        model.head_weights.copy_(weights)
        low = F.avg_pool2d(images.float() / 255, model.config.downscale)
        normalised = (low - model.mean) / model.std
        _, logits = model.scorer(normalised, return_cls_logits=True)  # (B, heads, N)
        expected = torch.einsum("bhn,h->bn", logits, weights).softmax(-1)
        got = model.semantic_distribution(images).flatten(1)
        out = model(images)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(out.distribution.flatten(1), expected, atol=1e-6, rtol=1e-4)
    # controls: the distribution is far from flat, and combining after the softmax would be seen
    assert expected.max() > 3 * expected.min()
    per_head = logits.softmax(-1)
    for wrong in (per_head.mean(1), torch.einsum("bhn,h->bn", per_head, weights / weights.sum())):
        assert not torch.allclose(wrong, expected, atol=1e-4, rtol=1e-3)


# -- 3. The head reads the last [CLS] states of the global encoder (and of the scorer) --


@pytest.mark.parametrize("global_cls_in_head", [1, 3])
def test_head_reads_the_last_cls_states(crops: torch.Tensor, global_cls_in_head: int) -> None:
    model = _model(depth=2, num_cls_tokens=2, scorer_cls_in_head=1, global_depth=4,
                   global_cls_in_head=global_cls_in_head)  # fmt: skip
    seen: dict[str, torch.Tensor] = {}

    def keep_scorer_cls(_module: torch.nn.Module, _args: tuple, out: tuple) -> None:
        seen["scorer"] = out[0]

    def keep_region_tokens(_module: torch.nn.Module, args: tuple) -> None:
        seen["tokens"] = args[0]

    hooks = [
        model.scorer.register_forward_hook(keep_scorer_cls),
        model.global_encoder.register_forward_pre_hook(keep_region_tokens),
    ]
    with torch.no_grad():
        features = model(crops[[1, 4]]).features
        for hook in hooks:
            hook.remove()
        # the global encoder by hand: every block on every token, [CLS] state after each block
        encoder = model.global_encoder
        x = torch.cat([encoder.cls_token.expand(2, -1, -1), seen["tokens"]], dim=1)
        states = []
        for block in encoder.blocks:
            x = block(x)
            states.append(encoder.norm(x[:, 0]))
    dim = model.config.embed_dim
    expected_global = torch.cat(states[-global_cls_in_head:], dim=1)
    torch.testing.assert_close(features[:, -global_cls_in_head * dim :], expected_global)
    torch.testing.assert_close(features[:, :dim], seen["scorer"][:, -1])  # x = 1 of m = 2: the last
    # control: the first layers' [CLS] states are not the last ones
    assert not torch.allclose(states[0], states[-1], atol=1e-3)
    assert not torch.allclose(seen["scorer"][:, 0], seen["scorer"][:, -1], atol=1e-3)


# -- 4 and 5. A training run: the mixed batch is what the model sees, at the paper's learning rate --


@pytest.fixture(scope="module")
def spied_run(tmp_path_factory: pytest.TempPathFactory, tiles_dir: Path) -> dict[str, Any]:
    """One epoch of ScoreMix training on 4 + 4 real crops at the default lr, recording the mixer's inputs
    and outputs, the images the model was trained on and the optimizer's lr at each step (the spies
    pass every call on, so the run is a real one)."""
    root = tmp_path_factory.mktemp("guards")
    data = make_tile_folder(root / "tiles", 4, seed=3, tiles_dir=tiles_dir)
    record: dict[str, Any] = {"mixed": [], "trained_on": [], "events": [], "step_lrs": []}
    real_mix, real_forward, real_step = MixBatchTransform.__call__, ScoreNet.forward, torch.optim.SGD.step

    def mix(self, images, labels):
        out = real_mix(self, images, labels)
        record["mixed"].append((images.clone(), out[0].clone()))
        return out

    def forward(self, images):
        if self.training:
            record["trained_on"].append(images.clone())
        return real_forward(self, images)

    def step(self, *args, **kwargs):
        record["step_lrs"].append([group["lr"] for group in self.param_groups])
        return real_step(self, *args, **kwargs)

    config = TrainConfig(data=data, out=root / "run", epochs=1, batch_size=4, mix="scoremix",
                         val_fraction=0.0, device="cpu", overrides=dict(DEMO_MODEL_OVERRIDES))  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MixBatchTransform, "__call__", mix)
        patch.setattr(ScoreNet, "forward", forward)
        patch.setattr(torch.optim.SGD, "step", step)
        train(config, progress=lambda e: record["events"].append(e.info))
    record["config"] = json.loads((root / "run" / "train_config.json").read_text())
    return record


def test_training_steps_see_the_mixed_batch(spied_run: dict[str, Any]) -> None:
    steps = [e for e in spied_run["events"] if "train_loss" not in e]
    mixed, trained_on = spied_run["mixed"], spied_run["trained_on"]
    assert len(steps) == 2 and len(mixed) == len(trained_on) == len(steps)
    for (_, after), seen in zip(mixed, trained_on, strict=True):
        assert torch.equal(seen, after)
    assert any(not torch.equal(before, after) for before, after in mixed)  # mixing changed the pixels


@pytest.mark.parametrize("batch_size", [1, 4, 8, 64, 256])
def test_default_learning_rate_is_the_paper_rule(tmp_path: Path, batch_size: int) -> None:
    config = TrainConfig(data=tmp_path, out=tmp_path, batch_size=batch_size)
    assert config.base_lr == pytest.approx(1e-2 * batch_size / 256, rel=1e-12)
    assert TrainConfig(data=tmp_path, out=tmp_path, batch_size=8).base_lr == pytest.approx(3.125e-4)
    assert TrainConfig(data=tmp_path, out=tmp_path, batch_size=batch_size, lr=0.05).base_lr == 0.05


def test_optimizer_starts_at_the_default_learning_rate(spied_run: dict[str, Any]) -> None:
    first_update = spied_run["step_lrs"][0]
    assert first_update == pytest.approx([1e-2 * 4 / 256] * len(first_update), rel=1e-9)
    first_step = next(e for e in spied_run["events"] if "train_loss" not in e)
    assert first_step["lr"] == pytest.approx(1e-2 * 4 / 256, rel=1e-9)
    assert spied_run["config"]["lr"] is None
    assert spied_run["config"]["base_lr"] == pytest.approx(1e-2 * 4 / 256, rel=1e-9)

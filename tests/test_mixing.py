"""ScoreMix, CutMix and SaliencyMix: pixels, labels, boxes and the sampling laws."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from real_crops import CROP_CORNERS
from scipy.stats import chisquare
from scorenet.checkpoint import load_checkpoint
from scorenet.demo_data import DEMO_MODEL_OVERRIDES
from scorenet.errors import ScoreNetInputError
from scorenet.mixing import (
    MixBatchTransform,
    box_mass,
    cutmix,
    saliency_map,
    saliency_peak,
    saliencymix,
    scoremix,
)
from scorenet.mixing.scoremix import site_probabilities
from scorenet.model import build_model
from torch import nn

DEMO_CHECKPOINT = (
    Path(__file__).resolve().parents[1] / "napari_scorenet" / "weights" / "scorenet_demo.safetensors"
)
METHODS = {"scoremix": scoremix, "cutmix": cutmix, "saliencymix": saliencymix}
# (source (H, W), source grid, target (H, W), target grid): equal, then different sizes and aspect ratios
SHAPES = [
    ((64, 64), (4, 4), (64, 64), (4, 4)),
    ((48, 80), (3, 5), (96, 64), (6, 4)),
    ((30, 200), (2, 8), (120, 90), (5, 3)),
]


def _one_hot(indices: list[int], num_classes: int = 4) -> torch.Tensor:
    return torch.eye(num_classes)[indices]


def _random_distribution(batch: int, grid: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    logits = 3 * torch.randn(batch, grid[0] * grid[1], generator=generator)
    return logits.softmax(dim=1).view(batch, *grid)


def _mix(method: str, shapes, batch: int = 8, seed: int = 0, lam=None, dtype=torch.float32):
    (source_hw, source_grid, target_hw, target_grid) = shapes
    g = torch.Generator().manual_seed(seed)
    source = (torch.rand(batch, 3, *source_hw, generator=g) * 255).to(dtype)
    target = (torch.rand(batch, 3, *target_hw, generator=g) * 255).to(dtype)
    source_dist = _random_distribution(batch, source_grid, g)
    target_dist = _random_distribution(batch, target_grid, g)
    source_labels = _one_hot([b % 4 for b in range(batch)])
    target_labels = _one_hot([(b + 1) % 4 for b in range(batch)])
    result = METHODS[method](
        source, target, source_dist, target_dist, source_labels, target_labels, lam=lam, generator=g
    )
    return source, target, source_labels, target_labels, result


@pytest.mark.parametrize("shapes", SHAPES)
@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8])
def test_mix_copies_source_box_and_keeps_the_rest_of_the_target(method, shapes, dtype):
    source, target, source_labels, target_labels, result = _mix(method, shapes, dtype=dtype)
    assert result.images.dtype == dtype
    assert result.images.shape == target.shape
    for b in range(target.shape[0]):
        cx0, cy0, cx1, cy1 = result.cut_boxes[b].tolist()
        px0, py0, px1, py1 = result.paste_boxes[b].tolist()
        # boxes inside their images, with the same pixel size in both
        assert 0 <= cx0 < cx1 <= source.shape[-1] and 0 <= cy0 < cy1 <= source.shape[-2]
        assert 0 <= px0 < px1 <= target.shape[-1] and 0 <= py0 < py1 <= target.shape[-2]
        assert (cx1 - cx0, cy1 - cy0) == (px1 - px0, py1 - py0)
        assert torch.equal(result.images[b, :, py0:py1, px0:px1], source[b, :, cy0:cy1, cx0:cx1])
        outside = torch.ones(target.shape[-2:], dtype=torch.bool)
        outside[py0:py1, px0:px1] = False
        assert torch.equal(result.images[b][:, outside], target[b][:, outside])
        kept = outside.sum().item() / outside.numel()
        assert result.lam[b].item() == pytest.approx(kept, abs=1e-6)
    expected = result.lam[:, None] * target_labels + (1 - result.lam[:, None]) * source_labels
    torch.testing.assert_close(result.labels, expected)
    torch.testing.assert_close(result.labels.sum(dim=1), torch.ones(target.shape[0]))


def test_box_size_follows_lam_in_target_patches():
    # 1 - lam = 0.25 of a 4 x 4 grid of 16-pixel patches: a 2 x 2-patch box of 32 x 32 pixels
    *_, result = _mix("scoremix", SHAPES[0], lam=0.75)
    sizes = result.paste_boxes[:, 2:] - result.paste_boxes[:, :2]
    assert (sizes == 32).all()
    torch.testing.assert_close(result.lam, torch.full((8,), 0.75))


def test_all_methods_draw_the_same_box_sizes():
    sizes = {}
    for method in METHODS:
        *_, result = _mix(method, SHAPES[1], batch=16, seed=3)
        sizes[method] = result.paste_boxes[:, 2:] - result.paste_boxes[:, :2]
    assert torch.equal(sizes["scoremix"], sizes["cutmix"])
    assert torch.equal(sizes["scoremix"], sizes["saliencymix"])
    assert len({tuple(s) for s in sizes["scoremix"].tolist()}) > 3  # sizes vary with lam


def test_same_seed_same_mix_and_other_seed_other_mix():
    first = _mix("scoremix", SHAPES[1], seed=5)[-1]
    again = _mix("scoremix", SHAPES[1], seed=5)[-1]
    assert torch.equal(first.images, again.images) and torch.equal(first.cut_boxes, again.cut_boxes)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    inputs = _mix("scoremix", SHAPES[1], seed=5)[:4]
    dist = torch.full((8, 3, 5), 1 / 15)
    tdist = torch.full((8, 6, 4), 1 / 24)
    a = scoremix(inputs[0], inputs[1], dist, tdist, inputs[2], inputs[3], generator=g1)
    b = scoremix(inputs[0], inputs[1], dist, tdist, inputs[2], inputs[3], generator=g2)
    assert not torch.equal(a.paste_boxes, b.paste_boxes)


def test_box_mass_is_the_sum_of_the_box():
    g = torch.Generator().manual_seed(0)
    dist = _random_distribution(2, (5, 7), g)
    mass = box_mass(dist, (2, 3))
    assert mass.shape == (2, 4, 5)
    for b, i, j in [(0, 0, 0), (1, 3, 4), (0, 2, 1)]:
        assert mass[b, i, j].item() == pytest.approx(dist[b, i : i + 2, j : j + 3].sum().item(), rel=1e-5)


def _expected_box_law(dist: np.ndarray, box: tuple[int, int]) -> np.ndarray:
    rows, cols = dist.shape[0] - box[0] + 1, dist.shape[1] - box[1] + 1
    return np.array([[dist[i : i + box[0], j : j + box[1]].sum() for j in range(cols)] for i in range(rows)])


def _site_laws(mass: np.ndarray) -> dict[str, np.ndarray]:
    """Unnormalised window laws from box masses: cut, paper paste rule, official paste rule."""
    return {"cut": mass, "paper": 1 - mass, "official": mass.max() - mass}


def _fit_pvalue(observed: np.ndarray, law: np.ndarray) -> float:
    """Chi-square p-value of draws against a law; 0 when a window of probability 0 was drawn."""
    possible = law > 0
    if observed[~possible].any():
        return 0.0
    expected = observed.sum() * law[possible] / law[possible].sum()
    return float(chisquare(observed[possible], expected).pvalue)


@pytest.mark.parametrize(("side", "rule"), [("cut", "paper"), ("paste", "paper"), ("paste", "official")])
def test_scoremix_locations_follow_the_box_distributions(side, rule):
    # 4 x 5 grid of 8-pixel patches, box of 2 x 2 patches (lam = 1 - 4 / 20): 3 x 4 = 12 positions
    draws = 2400
    g = torch.Generator().manual_seed(11)
    dist = _random_distribution(1, (4, 5), g)[0]
    images = torch.zeros(draws, 1, 32, 40)
    labels = _one_hot([0] * draws)
    dists = dist.expand(draws, 4, 5)
    result = scoremix(images, images, dists, dists, labels, labels, lam=0.8, generator=g, paste_rule=rule)
    boxes = result.cut_boxes if side == "cut" else result.paste_boxes
    assert ((boxes[:, 2:] - boxes[:, :2]) == 16).all()
    positions = (boxes[:, 1] // 8) * 4 + boxes[:, 0] // 8
    observed = np.bincount(positions.numpy(), minlength=12)
    laws = _site_laws(_expected_box_law(dist.double().numpy(), (2, 2)).ravel())
    law = laws.pop("cut" if side == "cut" else rule)
    assert _fit_pvalue(observed, law) > 1e-3
    # the test tells the law apart from the other laws and from the uniform one
    for other in [*laws.values(), np.ones(12)]:
        assert _fit_pvalue(observed, other) < 1e-6


@pytest.fixture(scope="module")
def demo_distribution(tiles_dir) -> torch.Tensor:
    """``P_patch`` (12, 12) of the bundled demo model on the real 1500 x 1500 carcinoma tile."""
    model, _ = load_checkpoint(DEMO_CHECKPOINT)
    rgb = cv2.imread(str(tiles_dir / "hgsc_nest.jpg"), cv2.IMREAD_COLOR)[:, :, ::-1].copy()
    with torch.no_grad():
        dist = model.semantic_distribution(torch.from_numpy(rgb).permute(2, 0, 1)[None])
    assert dist.shape == (1, 12, 12)
    return dist[0]


@pytest.mark.parametrize("rule", ["paper", "official"])
def test_paste_rules_on_a_real_distribution(demo_distribution, rule):
    box = (3, 3)  # 1 - lam = (3 / 12) ** 2
    dist = demo_distribution.double().numpy()
    mass = _expected_box_law(dist, box)  # each window's mass summed by hand
    law = _site_laws(mass)[rule]
    probabilities = site_probabilities(demo_distribution, box, cut=False, paste_rule=rule).numpy()
    np.testing.assert_allclose(probabilities, law / law.sum(), rtol=1e-6, atol=1e-12)
    if rule == "official":  # the window holding the most mass is never drawn
        assert probabilities.ravel()[mass.argmax()] == 0
    # scoremix draws its paste windows from these probabilities (10 x 10 windows, 3000 draws)
    draws = 3000
    images = torch.zeros(draws, 1, 48, 48)
    labels = _one_hot([0] * draws)
    dists = demo_distribution.expand(draws, 12, 12)
    g = torch.Generator().manual_seed(5)
    result = scoremix(images, images, dists, dists, labels, labels, lam=0.9375, generator=g, paste_rule=rule)
    boxes = result.paste_boxes
    assert ((boxes[:, 2:] - boxes[:, :2]) == 12).all()
    observed = np.bincount(((boxes[:, 1] // 4) * 10 + boxes[:, 0] // 4).numpy(), minlength=100)
    assert _fit_pvalue(observed, probabilities.ravel()) > 1e-3


def test_concentrated_distributions_steer_cut_and_paste():
    batch = 64
    g = torch.Generator().manual_seed(4)
    source = torch.rand(batch, 3, 48, 64, generator=g)
    target = torch.rand(batch, 3, 60, 60, generator=g)
    source_dist = torch.zeros(batch, 3, 4)
    source_dist[:, 1, 2] = 1.0  # pixels y 16..32, x 32..48
    target_dist = torch.zeros(batch, 5, 5)
    target_dist[:, 2, 2] = 1.0  # pixels y 24..36, x 24..36
    labels = _one_hot([0] * batch)
    lam = torch.linspace(0.3, 0.98, batch)
    result = scoremix(source, target, source_dist, target_dist, labels, labels, lam=lam, generator=g)
    for (cx0, cy0, cx1, cy1), (px0, py0, px1, py1) in zip(
        result.cut_boxes.tolist(), result.paste_boxes.tolist(), strict=True
    ):
        # the cut box covers the semantic patch along each side at least one patch (16 px) long
        assert (cx0 <= 32 and cx1 >= 48) if cx1 - cx0 >= 16 else (32 <= cx0 and cx1 <= 48)
        assert (cy0 <= 16 and cy1 >= 32) if cy1 - cy0 >= 16 else (16 <= cy0 and cy1 <= 32)
        overlaps = px0 < 36 and px1 > 24 and py0 < 36 and py1 > 24
        # a box can miss the centre patch only if it is at most 2 patches (24 px) high or wide
        if min(px1 - px0, py1 - py0) <= 24:
            assert not overlaps


def test_saliencymix_centres_the_box_on_a_planted_salient_blob():
    source = torch.full((2, 3, 96, 128), 0.8)
    source[0, :, 60:70, 20:30] = 0.0
    source[1, :, 10:18, 90:100] = 0.1
    target = torch.rand(2, 3, 96, 128)
    labels = _one_hot([0, 1])
    result = saliencymix(source, target, None, None, labels, labels, lam=0.9)
    for b, (blob_rows, blob_cols) in enumerate([((60, 70), (20, 30)), ((10, 18), (90, 100))]):
        row, col = saliency_peak(source[b])
        # the fine-grained map peaks on the blob or on the ring of centre-surround contrast around it
        assert blob_rows[0] - 8 <= row < blob_rows[1] + 8 and blob_cols[0] - 8 <= col < blob_cols[1] + 8
        x0, y0, x1, y1 = result.cut_boxes[b].tolist()
        # centred on the peak, moved down just enough to stay inside when the peak is near the top
        assert abs((x0 + x1) / 2 - col) <= 0.5
        assert abs((y0 + y1) / 2 - row) <= 0.5 or (y0 == 0 and (y0 + y1) / 2 > row)
    # the paste box sits where the cut box was, as in the original SaliencyMix
    assert torch.equal(result.cut_boxes, result.paste_boxes)


def _peak(saliency: np.ndarray) -> tuple[int, int]:
    row, col = np.unravel_index(np.argmax(saliency), saliency.shape)
    return int(row), int(col)


def test_saliencymix_uses_opencvs_fine_grained_detector_on_a_real_tile(tiles_dir):
    # reference computed as the original SaliencyMix code does, straight from OpenCV on BGR uint8
    bgr = cv2.imread(str(tiles_dir / "hgsc_nest.jpg"), cv2.IMREAD_COLOR)[600:856, 700:1084]
    _, reference = cv2.saliency.StaticSaliencyFineGrained_create().computeSaliency(bgr)
    expected_peak = _peak((reference * 255).astype("uint8"))
    # the check can tell the detector and the channel order apart on this crop
    _, spectral = cv2.saliency.StaticSaliencySpectralResidual_create().computeSaliency(bgr)
    _, from_rgb = cv2.saliency.StaticSaliencyFineGrained_create().computeSaliency(bgr[:, :, ::-1].copy())
    assert _peak(spectral) != expected_peak and _peak(from_rgb) != expected_peak

    rgb = torch.from_numpy(bgr[:, :, ::-1].copy()).permute(2, 0, 1)  # the project's (3, H, W) RGB input
    for image in (rgb, rgb.float() / 255):
        np.testing.assert_array_equal(saliency_map(image), reference)
        assert saliency_peak(image) == expected_peak
    labels = _one_hot([0])
    result = saliencymix(rgb[None], torch.zeros(1, 3, 256, 384), None, None, labels, labels, lam=0.9375)
    row, col = expected_peak  # an interior peak: the 64 x 96 box is centred on it, not moved
    assert result.cut_boxes[0].tolist() == [col - 48, row - 32, col + 48, row + 32]


def test_saliencymix_box_moves_inside_the_image_at_the_border():
    source = torch.full((1, 3, 64, 64), 0.8)
    source[0, :, 0:6, 58:64] = 0.0
    labels = _one_hot([0])
    result = saliencymix(source, torch.rand(1, 3, 64, 64), None, None, labels, labels, lam=0.75)
    x0, y0, x1, y1 = result.cut_boxes[0].tolist()
    assert (x1 - x0, y1 - y0) == (32, 32) and x1 == 64 and y0 == 0


def test_invalid_inputs_are_rejected():
    images = torch.rand(2, 3, 32, 32)
    labels = _one_hot([0, 1])
    with pytest.raises(ValueError, match="source_distribution"):
        scoremix(images, images, torch.rand(2, 4), torch.rand(2, 4, 4), labels, labels)
    with pytest.raises(ValueError, match="lam"):
        cutmix(images, images, None, None, labels, labels, lam=1.5)
    with pytest.raises(ValueError, match="target_labels"):
        cutmix(images, images, None, None, labels, labels[:1])
    with pytest.raises(ScoreNetInputError, match="unknown mixing method 'mixup'"):
        MixBatchTransform("mixup")
    with pytest.raises(ScoreNetInputError, match="needs the model"):
        MixBatchTransform("scoremix")
    dist = torch.full((2, 4, 4), 1 / 16)
    with pytest.raises(ValueError, match="paste rule 'max'"):
        scoremix(images, images, dist, dist, labels, labels, paste_rule="max")
    with pytest.raises(ScoreNetInputError, match="paste rule 'max'"):
        MixBatchTransform("scoremix", model=nn.Identity(), paste_rule="max")


def _flat_colour_batch(batch: int, size: tuple[int, int] = (64, 64)) -> torch.Tensor:
    # image b is a flat grey of level b / batch, so every pixel tells which image it came from
    return (torch.arange(batch, dtype=torch.float32) / batch).view(batch, 1, 1, 1).expand(batch, 3, *size)


# (tile, top, left) of non-overlapping 256 x 256 crops of the real tiles: three carcinoma, three stroma
REAL_CROPS = CROP_CORNERS
REAL_CROP_SIZE = 256  # a 4 x 4 grid of 64-pixel patches with the demo model's downscale 4 and patch 16


@pytest.fixture(scope="module")
def real_crops(tiles_dir) -> torch.Tensor:
    """(6, 3, 256, 256) uint8 RGB crops of real tissue; each one's pixels occur in no other crop."""
    size = REAL_CROP_SIZE
    crops = []
    for name, top, left in REAL_CROPS:
        rgb = cv2.imread(str(tiles_dir / name), cv2.IMREAD_COLOR)[top : top + size, left : left + size, ::-1]
        crops.append(torch.from_numpy(rgb.copy()).permute(2, 0, 1))
    return torch.stack(crops)


def _real_model(num_classes: int) -> nn.Module:
    torch.manual_seed(0)
    return build_model("scorenet_4_1", num_classes, **DEMO_MODEL_OVERRIDES).eval()


@pytest.fixture(scope="module")
def peaked_model(real_crops) -> nn.Module:
    """The real ScoreNet with its head weights at 1e5: each crop's distribution peaks on its own patch."""
    model = _real_model(num_classes=real_crops.shape[0])  # label b marks crop b
    with torch.no_grad():
        model.head_weights.fill_(1e5)  # a sharp softmax: all the mass on each image's top patch
    return model


def _locate(content: torch.Tensor, image: torch.Tensor) -> list[tuple[int, int]]:
    """Every (y, x) where ``content`` (C, h, w) occurs exactly in ``image`` (C, H, W)."""
    h, w = content.shape[-2:]
    rows, cols = image.shape[-2] - h + 1, image.shape[-1] - w + 1
    if rows < 1 or cols < 1:
        return []
    hits = torch.ones(rows, cols, dtype=torch.bool)
    # a few probe pixels narrow the candidates before the full comparison
    for dy, dx in ((0, 0), (h - 1, w - 1), (h // 2, w // 2), (0, w - 1), (h - 1, 0)):
        hits &= (image[:, dy : dy + rows, dx : dx + cols] == content[:, dy : dy + 1, dx : dx + 1]).all(0)
    return [
        (y, x) for y, x in hits.nonzero().tolist() if torch.equal(image[:, y : y + h, x : x + w], content)
    ]


def _pasted_boxes(mixed: torch.Tensor, crops: torch.Tensor) -> list[tuple[int, int, int, int, int] | None]:
    """Per image, ``(source, y0, x0, y1, x1)`` of the pasted box, or None where no pixel changed.

    The box is the bounding box of the pixels that differ from the image's own crop; its whole content
    must occur, exactly and only once, in one crop of the batch: the source of the pasted pixels.
    """
    boxes = []
    for b in range(crops.shape[0]):
        changed = (mixed[b] != crops[b]).any(0).nonzero()
        if len(changed) == 0:
            boxes.append(None)
            continue
        (y0, x0), (y1, x1) = changed.min(0).values.tolist(), (changed.max(0).values + 1).tolist()
        found = {s: _locate(mixed[b, :, y0:y1, x0:x1], crops[s]) for s in range(crops.shape[0])}
        sources = [s for s, hits in found.items() if hits]
        assert len(sources) == 1 and len(found[sources[0]]) == 1, (b, found)
        boxes.append((sources[0], y0, x0, y1, x1))
    return boxes


def _assert_labels_match_pixels(mixed: torch.Tensor, crops: torch.Tensor, labels: torch.Tensor) -> list:
    """Each label gives every crop the share of the image's pixels that came from it."""
    batch, _, height, width = crops.shape
    boxes = _pasted_boxes(mixed, crops)
    for b, box in enumerate(boxes):
        expected = torch.zeros(batch)
        expected[b] = 1.0  # pixels outside the box are the image's own (the box bounds every change)
        if box is not None:
            source, y0, x0, y1, x1 = box
            share = (y1 - y0) * (x1 - x0) / (height * width)
            expected = (1 - share) * expected
            expected[source] += share
        torch.testing.assert_close(labels[b], expected, msg=lambda m, b=b: f"image {b}: {m}")
    return boxes


@pytest.mark.parametrize("method", ["scoremix", "cutmix", "saliencymix"])
def test_batch_transform_labels_match_the_pixels(method, real_crops, peaked_model, monkeypatch):
    batch = real_crops.shape[0]
    with torch.no_grad():
        dist = peaked_model.semantic_distribution(real_crops)
    grid = dist.shape[1:]
    patch = REAL_CROP_SIZE // grid[0]
    peaks = dist.flatten(1).argmax(1).tolist()
    assert dist.flatten(1).max(1).values.min() > 0.999
    assert len(set(peaks)) == batch  # each crop peaks elsewhere, so a mis-pairing has somewhere to show
    grad_enabled = []
    semantic_distribution = peaked_model.semantic_distribution

    def spy(images: torch.Tensor) -> torch.Tensor:
        grad_enabled.append(torch.is_grad_enabled())
        return semantic_distribution(images)

    monkeypatch.setattr(peaked_model, "semantic_distribution", spy)
    spared = mixed_in = 0
    seeds = range(3)
    for seed in seeds:
        transform = MixBatchTransform(
            method, model=peaked_model, generator=torch.Generator().manual_seed(seed), num_classes=batch
        )
        mixed, labels = transform(real_crops, torch.arange(batch))
        assert labels.shape == (batch, batch) and labels.dtype == torch.float32
        boxes = _assert_labels_match_pixels(mixed, real_crops, labels)
        mixed_in += int((labels[torch.arange(batch), torch.arange(batch)] < 1).sum())
        if method != "scoremix":
            continue
        for b, box in enumerate(boxes):
            if box is None or box[0] == b:
                continue
            _, y0, x0, y1, x1 = box
            # a box that can avoid the target's own semantic patch (its peak) does avoid it
            row, col = divmod(peaks[b], grid[1])
            rows_free, cols_free = max(row, grid[0] - 1 - row), max(col, grid[1] - 1 - col)
            if (y1 - y0) // patch <= rows_free or (x1 - x0) // patch <= cols_free:
                py, px = row * patch, col * patch
                kept = mixed[b, :, py : py + patch, px : px + patch]
                assert torch.equal(kept, real_crops[b, :, py : py + patch, px : px + patch]), (seed, b)
                spared += 1
    assert mixed_in >= len(seeds) * batch // 2  # most images did get pixels of another crop
    # only ScoreMix asks the model, once a batch and without gradients
    assert grad_enabled == ([False] * len(seeds) if method == "scoremix" else [])
    if method == "scoremix":
        assert spared >= 8


class FixedScorer(nn.Module):
    """Stand-in scorer: the same (gh, gw) distribution for every image."""

    def __init__(self, distribution: torch.Tensor) -> None:
        super().__init__()
        self.distribution = distribution

    def semantic_distribution(self, images: torch.Tensor) -> torch.Tensor:
        return self.distribution.expand(images.shape[0], *self.distribution.shape)


def test_batch_transform_passes_the_paste_rule_to_scoremix(demo_distribution):
    batch = 8
    images = _flat_colour_batch(batch, (48, 48))
    scorer = FixedScorer(demo_distribution)
    mixed = {}
    for rule in ("paper", "official"):
        transform = MixBatchTransform(
            "scoremix",
            model=scorer,
            generator=torch.Generator().manual_seed(3),
            paste_rule=rule,
            num_classes=8,
        )
        mixed[rule], labels = transform(images, torch.arange(batch))
        # the same draws by hand: the permutation, then ScoreMix with that rule
        g = torch.Generator().manual_seed(3)
        order = torch.randperm(batch, generator=g)
        dists, soft = scorer.semantic_distribution(images), torch.eye(batch)
        expected = scoremix(
            images[order], images, dists[order], dists, soft[order], soft, generator=g, paste_rule=rule
        )
        assert torch.equal(mixed[rule], expected.images) and torch.equal(labels, expected.labels)
    assert MixBatchTransform("scoremix", model=scorer).paste_rule == "paper"  # the paper's law by default
    assert not torch.equal(mixed["paper"], mixed["official"])  # the rule reaches the boxes


def test_batch_transform_none_and_probability_zero_keep_the_batch(real_crops):
    images = real_crops[:4]
    soft = torch.tensor([[0.2, 0.8], [1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    for transform in (MixBatchTransform("none"), MixBatchTransform("cutmix", prob=0.0)):
        out, labels = transform(images, soft)
        assert torch.equal(out, images) and torch.equal(labels, soft)
    # control: with probability 1 the same CutMix does change these crops and their labels
    out, labels = MixBatchTransform("cutmix", generator=torch.Generator().manual_seed(0))(images, soft)
    assert not torch.equal(out, images) and not torch.equal(labels, soft)
    with pytest.raises(ValueError, match="num_classes"):
        MixBatchTransform("cutmix")(images, torch.tensor([0, 1, 0, 1]))


def test_batch_transform_with_a_real_scorenet(real_crops):
    batch = 5
    model = _real_model(num_classes=batch)  # untrained weights: the distribution is its own, not peaked
    images = real_crops[:batch]
    # num_classes comes from the model's config
    transform = MixBatchTransform("scoremix", model=model, generator=torch.Generator().manual_seed(1))
    mixed, labels = transform(images, torch.arange(batch))
    assert labels.shape == (batch, batch) and not labels.requires_grad
    assert mixed.dtype == images.dtype and mixed.shape == images.shape
    boxes = _assert_labels_match_pixels(mixed, images, labels)
    assert sum(box is not None and box[0] != b for b, box in enumerate(boxes)) >= 2  # crops were mixed

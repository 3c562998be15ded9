"""ScoreNet forward pass, region selection and gradients, on a real H&E tile."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from scorenet.config import ScoreNetConfig
from scorenet.layers import Attention, Block, ClsEncoder, CpvtGapViT
from scorenet.model import ScoreNet, build_model
from scorenet.regions import gather_regions, grid_size, soft_regions
from scorenet.topk import hard_topk, perturbed_topk


@pytest.fixture(scope="module")
def tile(tiles_dir) -> torch.Tensor:
    """The real 1500 x 1500 H&E tile as (1, 3, H, W) uint8."""
    rgb = np.asarray(Image.open(tiles_dir / "hgsc_nest.jpg").convert("RGB"))
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1).unsqueeze(0)


def _resized(tile: torch.Tensor, h: int, w: int) -> torch.Tensor:
    return F.interpolate(tile.float() / 255, size=(h, w), mode="bilinear", antialias=True).clamp(0, 1)


@pytest.fixture(scope="module")
def model() -> ScoreNet:
    torch.manual_seed(0)
    return build_model("scorenet_4_3", num_classes=7).eval()


@pytest.mark.parametrize(
    ("h", "w", "grid"), [(1536, 2048, (12, 16)), (1000, 1300, (8, 10)), (256, 256, (5, 5))]
)
def test_output_shapes_and_invariants(model, tile, h, w, grid):
    images = _resized(tile, h, w).expand(2, -1, -1, -1)
    with torch.inference_mode():
        out = model(images)
    k = model.config.top_k
    assert model.grid_size(h, w) == grid
    assert out.logits.shape == (2, 7)
    assert out.features.shape == (2, 96 * (4 + 3))
    assert out.distribution.shape == (2, *grid)
    torch.testing.assert_close(out.distribution.sum((1, 2)), torch.ones(2))
    assert out.indices.dtype == torch.long and out.indices.shape == (2, k)
    assert torch.all(out.indices[:, 1:] > out.indices[:, :-1])
    torch.testing.assert_close(out.scores, out.distribution.flatten(1).gather(1, out.indices))
    # the selected scores are the K largest of the distribution
    assert out.scores.min() >= out.distribution.flatten(1).topk(k).values.min()
    assert out.boxes.shape == (2, k, 4)
    assert out.boxes[..., 0].min() >= 0 and out.boxes[..., 1].min() >= 0
    assert out.boxes[..., 2].max() <= w + 1e-3 and out.boxes[..., 3].max() <= h + 1e-3
    torch.testing.assert_close(out.boxes[..., 2] - out.boxes[..., 0], torch.full((2, k), w / grid[1]))
    torch.testing.assert_close(out.boxes[..., 3] - out.boxes[..., 1], torch.full((2, k), h / grid[0]))


@pytest.mark.parametrize(("h", "w"), [(1, 1), (100, 3000), (129, 130), (777, 555), (4000, 64)])
def test_grid_has_at_least_k_regions_and_keeps_the_aspect(h, w):
    gh, gw = grid_size(h, w, 128, 20)
    assert gh * gw >= 20
    if min(h, w) >= 128:
        assert abs(np.log((gh / gw) / (h / w))) < 0.5


def test_hard_regions_are_crops_of_the_input(model, tile):
    images = _resized(tile, 1536, 2048)
    with torch.inference_mode():
        out = model(images)
    regions = gather_regions(images, out.indices, model.grid_size(1536, 2048), 128)
    for region, box in zip(regions[0], out.boxes[0].long(), strict=True):
        x0, y0, x1, y1 = box.tolist()
        assert torch.equal(region, images[0, :, y0:y1, x0:x1])


def _offset_by_one_byte(images: torch.Tensor) -> torch.Tensor:
    """A contiguous copy whose storage starts one byte in (not aligned to 8-byte words)."""
    out = torch.empty(1 + images.numel(), dtype=images.dtype)[1:].view(images.shape)
    return out.copy_(images)


@pytest.mark.parametrize("layout", ["uint8", "uint8-offset", "uint8-strided", "float"])
def test_gathered_regions_are_the_crops_in_every_layout(tile, layout):
    whole = tile[..., :384, :520]  # the real tile: 3 x 4 regions of 128 and a spare strip
    images = {
        "uint8": lambda: whole[..., :512].contiguous(),
        "uint8-offset": lambda: _offset_by_one_byte(whole[..., :512]),
        "uint8-strided": lambda: whole[..., 4:516],  # a view: rows 520 bytes apart
        "float": lambda: whole[..., :512].float(),
    }[layout]()
    indices = torch.tensor([[0, 5, 11]])
    regions = gather_regions(images, indices, (3, 4), 128)
    for region, index in zip(regions[0], indices[0].tolist(), strict=True):
        r, c = divmod(index, 4)
        assert torch.equal(region, images[0, :, r * 128 : (r + 1) * 128, c * 128 : (c + 1) * 128])


def test_soft_regions_equal_dense_product():
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 4 * 8, 5 * 8, generator=gen)
    indicators = torch.zeros(2, 20, 3)
    indicators[0, [1, 7, 19], [0, 1, 2]] = torch.tensor([0.5, 1.0, 0.25])
    indicators[0, 3, 0] = 0.5
    indicators[1, 2:17, :] = torch.rand(15, 3, generator=gen)  # many more used regions than image 0
    dense = images.view(2, 3, 4, 8, 5, 8).permute(0, 2, 4, 1, 3, 5).reshape(2, 20, 3, 8, 8)
    expected = torch.einsum("bnk,bnchw->bkchw", indicators, dense)
    torch.testing.assert_close(soft_regions(images, indicators, (4, 5), 8), expected)


def test_uint8_and_float_inputs_agree(model, tile):
    images = tile[..., :512, :640]
    with torch.inference_mode():
        a = model(images)
        b = model(images.float() / 255)
    torch.testing.assert_close(a.logits, b.logits)
    assert torch.equal(a.indices, b.indices)


def test_semantic_distribution_matches_forward(model, tile):
    images = _resized(tile, 1000, 1300)
    with torch.inference_mode():
        dist = model.semantic_distribution(images)
        out = model(images)
    torch.testing.assert_close(dist, out.distribution)


def test_classification_loss_trains_the_scorer_only_in_train_mode(tile):
    torch.manual_seed(0)
    small = {"depth": 2, "num_cls_tokens": 1, "scorer_cls_in_head": 1, "global_depth": 1, "top_k": 6}
    model = build_model("scorenet_4_1", num_classes=3, num_samples=50, **small)
    images = _resized(tile, 384, 512)  # 12 regions: K = 6 of them is a real choice
    target = torch.tensor([1])
    model.train()
    F.cross_entropy(model(images).logits, target).backward()
    # head_weights act only through the semantic distribution, so only the top-K gradient reaches them
    assert model.head_weights.grad is not None and model.head_weights.grad.abs().sum() > 0
    assert model.scorer.patch_embed.proj.weight.grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)
    model.eval()
    F.cross_entropy(model(images).logits, target).backward()
    assert model.head_weights.grad is None or model.head_weights.grad.abs().sum() == 0
    assert model.local_vit.patch_embed.proj.weight.grad.abs().sum() > 0


def _shuffle_patches(low: torch.Tensor, perm: torch.Tensor, grid: tuple[int, int], p: int) -> torch.Tensor:
    b, c = low.shape[:2]
    patches = low.view(b, c, grid[0], p, grid[1], p).permute(0, 2, 4, 1, 3, 5).reshape(b, -1, c, p, p)
    patches = patches[:, perm].view(b, *grid, c, p, p)
    return patches.permute(0, 3, 1, 4, 2, 5).reshape_as(low)


def test_scorer_cls_depends_on_token_order(model, tile):
    low = _resized(tile, 4 * 16, 5 * 16)
    perm = torch.randperm(20, generator=torch.Generator().manual_seed(0))
    shuffled = _shuffle_patches(low, perm, (4, 5), 16)
    with torch.inference_mode():
        assert not torch.allclose(model.scorer(low), model.scorer(shuffled), atol=1e-4)
        # control: without the PEG the scorer is blind to order, so the test can tell the difference
        no_peg = build_model("scorenet_4_3", num_classes=7).eval()
        no_peg.load_state_dict(model.state_dict())
        torch.nn.init.zeros_(no_peg.scorer.pos_conv.proj.weight)
        torch.nn.init.zeros_(no_peg.scorer.pos_conv.proj.bias)
        torch.testing.assert_close(no_peg.scorer(low), no_peg.scorer(shuffled), atol=1e-5, rtol=1e-5)


def test_config_round_trips_through_json():
    config = build_model("scorenet_4_3", num_classes=4, top_k=8, sigma=0.1).config
    again = ScoreNetConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    assert again.global_cls_in_head == 3 and again.top_k == 8


def test_build_model_rejects_unknown_names_and_fields():
    with pytest.raises(ValueError, match="unknown model"):
        build_model("scorenet_9_9", num_classes=2)
    with pytest.raises(TypeError):
        build_model("scorenet_4_1", num_classes=2, no_such_field=1)
    with pytest.raises(ValueError, match="scorer_cls_in_head"):
        build_model("scorenet_4_1", num_classes=2, num_cls_tokens=2)


def test_cls_row_attention_equals_the_full_attention_row():
    torch.manual_seed(0)
    attn = Attention(dim=32, num_heads=4).eval()
    x = torch.randn(2, 11, 32)
    q, k, _ = attn.qkv(x).reshape(2, 11, 3, 4, 8).permute(2, 0, 3, 1, 4)
    full = (q @ k.transpose(-2, -1)) * 8**-0.5  # (B, heads, 11, 11)
    out, logits = attn.forward_cls(x)
    torch.testing.assert_close(logits, full[:, :, 0, 1:])
    torch.testing.assert_close(out, attn(x)[:, :1])


def test_cls_only_last_block_matches_the_full_block_in_value_and_gradient():
    torch.manual_seed(0)
    block = Block(32, num_heads=4).eval()
    x = torch.randn(2, 11, 32, requires_grad=True)
    cls, _ = block.forward_cls(x)
    (grad_fast,) = torch.autograd.grad(cls.square().sum(), x)
    full = block(x)[:, :1]
    (grad_full,) = torch.autograd.grad(full.square().sum(), x)
    torch.testing.assert_close(cls, full)
    torch.testing.assert_close(grad_fast, grad_full)


def _all_tokens_reference(vit: CpvtGapViT, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The ViT's [CLS] states and logits with every block run on every token (no last-block shortcut)."""
    x = vit.patch_embed(images)
    grid = x.shape[1:3]
    x = x.flatten(1, 2)
    first = len(vit.blocks) - vit.num_cls_tokens
    states = []
    for i, block in enumerate(vit.blocks):
        if i == first:
            x = torch.cat([x.mean(dim=1, keepdim=True), x], dim=1)
        if i == len(vit.blocks) - 1:
            n = block.norm1(x)
            q, k, _ = block.attn.qkv(n).reshape(*n.shape[:2], 3, 4, 8).permute(2, 0, 3, 1, 4)
            logits = ((q @ k.transpose(-2, -1)) * 8**-0.5)[:, :, 0, 1:]
        x = block(x)
        if i == 0:
            x = vit._peg(x, grid, has_cls=i >= first)
        if i >= first:
            states.append(x[:, 0])
    return vit.norm(torch.stack(states, dim=1)), logits


@pytest.mark.parametrize("num_cls_tokens", [1, 3])
def test_networks_equal_their_all_tokens_reference(num_cls_tokens):
    torch.manual_seed(0)
    vit = CpvtGapViT(embed_dim=32, depth=4, num_heads=4, num_cls_tokens=num_cls_tokens).eval()
    images = torch.randn(2, 3, 48, 64)
    cls, logits = vit(images, return_cls_logits=True)
    ref_cls, ref_logits = _all_tokens_reference(vit, images)
    torch.testing.assert_close(cls, ref_cls)
    torch.testing.assert_close(logits, ref_logits)
    encoder = ClsEncoder(embed_dim=32, depth=3, num_heads=4).eval()
    tokens = torch.randn(2, 5, 32)
    x = torch.cat([encoder.cls_token.expand(2, -1, -1), tokens], dim=1)
    states = []
    for block in encoder.blocks:
        x = block(x)
        states.append(x[:, 0])
    torch.testing.assert_close(encoder(tokens), encoder.norm(torch.stack(states, dim=1)))


def test_documented_parameter_counts_are_real():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "model.md").read_text()
    for name in ("scorenet_4_1", "scorenet_4_3"):
        count = sum(p.numel() for p in build_model(name, num_classes=7).parameters())
        variant = name.replace("scorenet_", "ScoreNet/").replace("_", "/")
        assert f"total {variant}, 7 classes** | **{count:,}**" in doc


def test_perturbed_selection_learns_to_pick_the_informative_regions():
    # free scores over a 4 x 5 grid; the loss rewards bright regions, and only 3 of them are bright
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(1, 3, 32, 40, generator=gen) * 0.1
    bright = torch.tensor([2, 11, 17])
    regions = images.view(1, 3, 4, 8, 5, 8)
    for i in bright.tolist():
        regions[:, :, i // 5, :, i % 5, :] += 0.9
    scores = torch.zeros(1, 20, requires_grad=True)
    optimizer = torch.optim.Adam([scores], lr=0.1)
    for _ in range(60):
        indicators = perturbed_topk(scores, 3, 0.5, 100, generator=gen)
        loss = -soft_regions(images, indicators, (4, 5), 8).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert torch.equal(hard_topk(scores.detach(), 3)[0], bright)


@pytest.mark.parametrize("band_bytes", [None, 70_000])  # one band; several with a partial last one
@pytest.mark.parametrize("factor", [2, 8, 16, 128])
def test_uint8_downscale_equals_float_average_pooling(tile, factor, band_bytes, monkeypatch):
    from scorenet import regions
    from scorenet.regions import downscale

    if band_bytes is not None:
        monkeypatch.setattr(regions, "_BAND_BYTES", band_bytes)

    images = tile[..., :512, :768]  # a non-contiguous view of the real tile
    expected = F.avg_pool2d(images.double() / 255, kernel_size=factor).float()  # exact, then rounded
    torch.testing.assert_close(downscale(images, factor), expected, atol=1e-6, rtol=0)
    # channels last, as scoring passes an (H, W, 3) array: the interleaved path gives the same
    channels_last = images.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
    torch.testing.assert_close(downscale(channels_last, factor), expected, atol=1e-6, rtol=0)


_ONE_CLS = {"num_cls_tokens": 1, "scorer_cls_in_head": 1}


def test_uint8_and_float_inputs_agree_in_training_mode():
    torch.manual_seed(0)
    model = build_model(
        "scorenet_4_1", num_classes=2, depth=2, global_depth=1, top_k=4, num_samples=20, **_ONE_CLS
    ).train()
    images = torch.randint(0, 256, (2, 3, 256, 384), dtype=torch.uint8)
    torch.manual_seed(1)
    a = model(images).logits
    torch.manual_seed(1)  # same perturbation noise
    b = model(images.float() / 255).logits
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_head_on_the_regions_stream_only_when_x_is_zero():
    from scorenet.demo_data import DEMO_MODEL_OVERRIDES

    overrides = {**DEMO_MODEL_OVERRIDES, "scorer_cls_in_head": 0}
    model = build_model("scorenet_4_1", num_classes=2, **overrides).eval()
    assert model.config.feature_dim == model.config.embed_dim * model.config.global_cls_in_head
    images = torch.randint(0, 256, (2, 3, 256, 384), dtype=torch.uint8)
    with torch.no_grad():
        out = model(images)
        # the scorer's [CLS] states reach the head only through the regions it selects
        model.scorer.norm.weight.mul_(0)
        again = model(images)
    assert out.features.shape == (2, model.config.embed_dim)
    torch.testing.assert_close(out.features, again.features)


@pytest.mark.parametrize("as_bytes", [True, False])
def test_normalisation_folded_into_the_patch_embedding_equals_normalising_the_pixels(model, tile, as_bytes):
    regions = tile[..., 256:512, 512:1024].reshape(1, 3, 256, 4, 128).permute(0, 3, 1, 2, 4)[0]
    regions = regions.reshape(-1, 3, 128, 128)[:, :, :128]  # four real 128 x 128 regions, uint8
    pixels = regions if as_bytes else regions.float() / 255
    with torch.inference_mode():
        expected = model.local_vit(model.normalize(pixels))
        raw = pixels.float()  # uint8 values as floats, or [0, 1]: not normalised
        folded = model.local_vit(raw, pixel_affine=model.pixel_affine(pixels.dtype))
    torch.testing.assert_close(folded, expected, atol=2e-5, rtol=1e-4)

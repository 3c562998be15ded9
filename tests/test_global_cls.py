"""The global encoder's [CLS]: a learned token (default) or a GAP pseudo-[CLS] (paper App. C)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file
from scorenet.checkpoint import load_checkpoint, save_checkpoint
from scorenet.config import ScoreNetConfig
from scorenet.errors import CheckpointError
from scorenet.layers import ClsEncoder
from scorenet.model import build_model

DEMO_CHECKPOINT = (
    Path(__file__).resolve().parents[1] / "napari_scorenet" / "weights" / "scorenet_demo.safetensors"
)
# a small ScoreNet with a 3-layer global encoder, so that y = 3 (ScoreNet/4/3) fits
SMALL = {
    "downscale": 4,
    "top_k": 4,
    "embed_dim": 32,
    "depth": 2,
    "num_heads": 2,
    "num_cls_tokens": 1,
    "scorer_cls_in_head": 1,
    "global_depth": 3,
    "global_num_heads": 2,
    "num_samples": 8,
}


@pytest.fixture(scope="module")
def crop(tiles_dir) -> torch.Tensor:
    """A real 256 x 384 H&E crop as (1, 3, H, W) uint8."""
    rgb = np.asarray(Image.open(tiles_dir / "hgsc_nest.jpg").convert("RGB"))[200:456, 300:684]
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None]


def _tokens(batch: int = 2, k: int = 6, dim: int = 32) -> torch.Tensor:
    return torch.randn(batch, k, dim, generator=torch.Generator().manual_seed(0))


def _record_input(block: torch.nn.Module, seen: list[torch.Tensor]) -> None:
    """Make ``block`` record the tokens it is given, whether it runs whole or for [CLS] only."""
    for name in ("forward", "forward_cls"):
        original = getattr(block, name)

        def recording(x: torch.Tensor, _original=original):
            seen.append(x)
            return _original(x)

        setattr(block, name, recording)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_gap_encoder_prepends_the_token_mean_before_its_last_n_blocks(n):
    torch.manual_seed(0)
    encoder = ClsEncoder(embed_dim=32, depth=3, num_heads=4, pseudo_cls_layers=n).eval()
    assert not hasattr(encoder, "cls_token")
    assert "cls_token" not in dict(encoder.named_parameters())
    tokens = _tokens()
    first = 3 - n
    seen: list[torch.Tensor] = []
    _record_input(encoder.blocks[first], seen)
    with torch.no_grad():
        out = encoder(tokens)
        # what block `first` must see: the region tokens after the blocks before it, their mean in front
        x = tokens
        for block in encoder.blocks[:first]:
            x = block(x)
    assert out.shape == (2, n, 32)
    (entering,) = seen
    assert entering.shape == (2, 7, 32)
    torch.testing.assert_close(entering[:, 1:], x)
    torch.testing.assert_close(entering[:, 0], x.mean(dim=1))
    if first == 0:  # pseudo-[CLS] at the input: the plain mean of the input tokens
        torch.testing.assert_close(entering[:, 0], tokens.mean(dim=1))


@pytest.mark.parametrize("n", [1, 3])
def test_gap_encoder_equals_its_all_tokens_reference(n):
    torch.manual_seed(1)
    encoder = ClsEncoder(embed_dim=32, depth=3, num_heads=4, pseudo_cls_layers=n).eval()
    tokens = _tokens()
    with torch.no_grad():
        x, states = tokens, []
        for i, block in enumerate(encoder.blocks):
            if i == 3 - n:
                x = torch.cat([x.mean(dim=1, keepdim=True), x], dim=1)
            x = block(x)
            if i >= 3 - n:
                states.append(x[:, 0])
        expected = encoder.norm(torch.stack(states, dim=1))
        torch.testing.assert_close(encoder(tokens), expected, rtol=1e-5, atol=1e-5)


def test_learned_encoder_is_unchanged_and_gap_has_one_token_fewer_parameter():
    learned = ClsEncoder(embed_dim=32, depth=3, num_heads=4)
    gap = ClsEncoder(embed_dim=32, depth=3, num_heads=4, pseudo_cls_layers=1)
    assert learned.cls_token.shape == (1, 1, 32)
    assert learned(_tokens()).shape == (2, 3, 32)  # a [CLS] state from every layer
    count = sum(p.numel() for p in learned.parameters()) - sum(p.numel() for p in gap.parameters())
    assert count == 32
    with pytest.raises(ValueError, match="pseudo_cls_layers"):
        ClsEncoder(embed_dim=32, depth=3, num_heads=4, pseudo_cls_layers=4)
    assert ClsEncoder.pseudo_cls_layers_for("learned", 3) == 0
    assert ClsEncoder.pseudo_cls_layers_for("gap", 3) == 3
    with pytest.raises(ValueError, match="unknown global_cls 'mean'"):
        build_model("scorenet_4_1", num_classes=2, global_cls="mean", **SMALL)


@pytest.mark.parametrize("name", ["scorenet_4_1", "scorenet_4_3"])
def test_gap_scorenet_shapes_and_parameters(name, crop):
    torch.manual_seed(0)
    learned = build_model(name, num_classes=3, **SMALL).eval()
    torch.manual_seed(0)
    gap = build_model(name, num_classes=3, global_cls="gap", **SMALL).eval()
    y = gap.config.global_cls_in_head
    assert gap.global_encoder.pseudo_cls_layers == y
    assert "global_encoder.cls_token" in learned.state_dict()
    assert "global_encoder.cls_token" not in gap.state_dict()
    n_learned = sum(p.numel() for p in learned.parameters())
    assert sum(p.numel() for p in gap.parameters()) == n_learned - 32
    with torch.inference_mode():
        out = gap(crop)
        assert gap.global_encoder(torch.zeros(1, 4, 32)).shape == (1, y, 32)
    assert out.logits.shape == (1, 3)
    assert out.features.shape == (1, 32 * (1 + y))
    assert torch.isfinite(out.logits).all()


def test_gap_checkpoint_round_trip(tmp_path, crop):
    torch.manual_seed(0)
    model = build_model("scorenet_4_3", num_classes=2, global_cls="gap", **SMALL).eval()
    path = tmp_path / "gap.safetensors"
    save_checkpoint(model, path, ["carcinoma", "stroma"])
    loaded, info = load_checkpoint(path)
    assert info.config.global_cls == "gap" and info.config == model.config
    assert "global_encoder.cls_token" not in loaded.state_dict()
    with torch.inference_mode():
        assert torch.equal(model(crop).logits, loaded(crop).logits)
    # the header, not the weights, fixes the architecture: gap weights under a learned header are refused
    with safe_open(str(path), framework="pt") as f:
        header = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    config = json.loads(header["config"])
    config["global_cls"] = "learned"
    header["config"] = json.dumps(config)
    save_file(tensors, str(tmp_path / "mislabelled.safetensors"), metadata=header)
    with pytest.raises(CheckpointError, match="do not match the model its header describes"):
        load_checkpoint(tmp_path / "mislabelled.safetensors")


def test_an_old_config_without_the_field_loads_as_learned():
    # the bundled demo checkpoint was written before the field existed
    with safe_open(str(DEMO_CHECKPOINT), framework="pt") as f:
        config = json.loads(f.metadata()["config"])
    assert "global_cls" not in config
    assert ScoreNetConfig.from_dict(config).global_cls == "learned"
    model, info = load_checkpoint(DEMO_CHECKPOINT)
    assert info.config.global_cls == "learned"
    assert model.global_encoder.cls_token.shape == (1, 1, 96)

"""Does a trained ScoreNet use the regions it selects, and which way does its loss push the scorer?

    python benchmarks/diagnose_selection.py OUT.json TASK_DIR CHECKPOINT [CHECKPOINT ...]

For each checkpoint and each test image of the planted task (``scorenet.bench.planted``) with planted
carcinoma:

- ``loss``: the cross-entropy with the model's own K regions, with the K most planted regions
  (``oracle``) and with the K least planted (``anti``). A model whose regions' stream is used has
  oracle < own < anti; equal losses mean the head ignores the regions.
- ``push``: per class, the mean over images of (mean of -dL/ds over planted regions - mean over the
  others) / std(-dL/ds), where s are the scores the perturbed top-K perturbs (gradient from 1,000
  leave-one-out samples, the model in training mode): positive means the loss moves the scorer
  towards the carcinoma.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scorenet.atomic import atomic_write
from scorenet.bench import learning, planted
from scorenet.checkpoint import load_checkpoint
from scorenet.model import ScoreNet, selection_scores
from scorenet.regions import gather_regions, soft_regions
from scorenet.topk import perturbed_topk


def _head(model: ScoreNet, scorer_cls: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """Logits from the scorer's [CLS] states and K regions (B, K, 3, P, P) in [0, 1] or uint8."""
    return model.head(model.region_features(scorer_cls, regions))


def _images(task_dir: Path, class_names: list[str]):
    meta = json.loads((task_dir / "planted.json").read_text())
    for record in meta["images"]["test"]:
        if record["label"] == 0:
            continue
        with Image.open(task_dir / record["image"]) as im:
            image = torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1)[None]
        mask = planted.read_mask(task_dir / record["mask"])
        target = torch.tensor([class_names.index(meta["class_names"][record["label"]])])
        yield record["label"], image, mask, target


def selection_losses(model: ScoreNet, task_dir: Path, class_names: list[str]) -> dict[str, float]:
    """Mean loss with the model's own, the most planted and the least planted K regions."""
    model.eval()
    k, losses = model.config.top_k, {"own": [], "oracle": [], "anti": []}
    order_rng = np.random.default_rng(0)
    for _, image, mask, target in _images(task_dir, class_names):
        with torch.no_grad():
            fitted, grid = model.fit_images(image)
            scorer_cls, dist = model.score(fitted)
            planted_share = learning.region_planted_fraction(mask, grid).ravel()
            order = np.argsort(-planted_share + 1e-9 * order_rng.random(planted_share.size))
            choices = {
                "own": dist.topk(k).indices.sort().values,
                "oracle": torch.from_numpy(np.sort(order[:k]))[None],
                "anti": torch.from_numpy(np.sort(order[-k:]))[None],
            }
            for name, indices in choices.items():
                logits = _head(
                    model, scorer_cls, gather_regions(fitted, indices, grid, model.config.region_size)
                )
                losses[name].append(F.cross_entropy(logits, target).item())
    return {name: float(np.mean(values)) for name, values in losses.items()}


def scorer_push(model: ScoreNet, task_dir: Path, class_names: list[str]) -> dict[str, dict[str, float]]:
    """Per class: how strongly the loss pushes the scores towards planted regions (see module doc)."""
    model.train()
    cfg, pushes = model.config, {}
    for label, image, mask, target in _images(task_dir, class_names):
        fitted, grid = model.fit_images(image)
        scorer_cls, dist = model.score(fitted)
        scores = selection_scores(dist, cfg.score_scaling).detach().requires_grad_(True)
        generator = torch.Generator().manual_seed(0)
        indicators = perturbed_topk(scores, cfg.top_k, model.sigma, 1000, generator=generator)
        regions = soft_regions(fitted, indicators, grid, cfg.region_size) / 255
        F.cross_entropy(_head(model, scorer_cls.detach(), regions), target).backward()
        downhill = -scores.grad[0].numpy()
        positive = (learning.region_planted_fraction(mask, grid) >= learning.REGION_PLANTED_FRACTION).ravel()
        if positive.any() and not positive.all():
            push = (downhill[positive].mean() - downhill[~positive].mean()) / (downhill.std() + 1e-12)
            pushes.setdefault(label, []).append(float(push))
    return {
        str(label): {"mean": float(np.mean(v)), "sem": float(np.std(v) / np.sqrt(len(v))), "images": len(v)}
        for label, v in sorted(pushes.items())
    }


def main(argv: list[str]) -> int:
    out, task_dir, checkpoints = Path(argv[0]), Path(argv[1]), argv[2:]
    torch.manual_seed(0)
    report = {"task_dir": str(task_dir), "checkpoints": {}}
    for checkpoint in checkpoints:
        model, info = load_checkpoint(checkpoint)
        entry = {
            "loss": selection_losses(model, task_dir, info.class_names),
            "push": scorer_push(model, task_dir, info.class_names),
        }
        report["checkpoints"][checkpoint] = entry
        print(checkpoint, json.dumps(entry), flush=True)
    atomic_write(out, json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""How far from uniform ScoreMix's paste site is, on real 1536 x 2048 RoIs (a 12 x 16 region grid).

For each RoI the scorer's ``P_patch`` is computed by the bundled demo model
(``napari_scorenet/weights/scorenet_demo.safetensors``) and by an untrained ``scorenet_4_1`` (seed 0).
For several box sizes, the law of the paste window under the paper's rule ``(1 - P_bbox) / Z`` and
the published code's rule ``(max P_bbox - P_bbox) / Z`` is compared with the uniform law over the
windows by the total-variation distance ``TV = 1/2 sum |p - 1/n|`` (0: uniform, 1: disjoint). "mean"
averages TV over ScoreMix's own box sizes (``1 - lambda ~ U(0, 1)``, sides rounded to whole patches).
A last row puts all the mass on one central patch: the most any distribution can move the paper's law.

``python benchmarks/scoremix_paste_tv.py [OUT_JSON]`` (data from ``$SCORENET_DATA``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from scorenet.atomic import atomic_write
from scorenet.checkpoint import load_checkpoint
from scorenet.mixing import box_pixel_size
from scorenet.mixing.scoremix import PASTE_RULES, site_probabilities
from scorenet.model import ScoreNet, build_model
from scorenet.paths import data_dir
from scorenet.slide import read_roi

ROI_HW = (1536, 2048)
GRID = (12, 16)
DEMO = Path(__file__).resolve().parents[1] / "napari_scorenet" / "weights" / "scorenet_demo.safetensors"
# level-0 (x, y) of the 2048 x 1536 window with the most tissue by the slide's reference tissue mask
SLIDE_ROIS = {
    "TCGA-CR-7395 frozen section": ("tcga-cr-7395-01a-01-ts1.svs", 1408, 640),
    "CMU-1 small region (skin)": ("cmu_small_region.svs", 0, 1024),
}
TILE_ROIS = {
    "hgsc_nest.jpg (carcinoma), resized": "hgsc_nest.jpg",
    "hgsc_stromal_he.jpg (stroma), resized": "hgsc_stromal_he.jpg",
}
BOXES = [(1, 1), (2, 2), (3, 4), (6, 8), (9, 12)]  # patches; (6, 8) is a quarter of the RoI
AREA_STEPS = 1000  # midpoints of 1 - lambda in (0, 1) for the mean over ScoreMix's box sizes


def load_rois() -> dict[str, torch.Tensor]:
    """Real 1536 x 2048 RGB RoIs as (3, H, W) uint8: two slide windows and two tiles resized."""
    rois = {}
    for name, (file, x, y) in SLIDE_ROIS.items():
        read = read_roi(data_dir() / "slides" / file, x, y, ROI_HW[1], ROI_HW[0])
        rois[name] = torch.from_numpy(np.ascontiguousarray(read.image)).permute(2, 0, 1)
    for name, file in TILE_ROIS.items():
        with Image.open(data_dir() / "tiles" / file) as im:
            resized = im.convert("RGB").resize(ROI_HW[::-1], Image.Resampling.BICUBIC)
        rois[name] = torch.from_numpy(np.asarray(resized).copy()).permute(2, 0, 1)
    return rois


def tv_from_uniform(probabilities: torch.Tensor) -> float:
    """Total-variation distance between a law and the uniform law over the same windows."""
    p = probabilities.flatten().double()
    return float(0.5 * (p - 1.0 / p.numel()).abs().sum())


def box_size_weights() -> dict[tuple[int, int], float]:
    """Share of ScoreMix's draws that get each box size (in patches) on the 12 x 16 grid."""
    ratios = (torch.arange(AREA_STEPS, dtype=torch.float64) + 0.5) / AREA_STEPS
    pixels = box_pixel_size(ratios, ROI_HW, GRID, ROI_HW)
    patch = ROI_HW[0] // GRID[0]
    counts: dict[tuple[int, int], float] = {}
    for h, w in (pixels // patch).tolist():
        counts[(h, w)] = counts.get((h, w), 0.0) + 1.0 / AREA_STEPS
    return counts


def measure(dist: torch.Tensor, sizes: dict[tuple[int, int], float]) -> dict[str, Any]:
    """TV of both paste rules for the listed boxes and averaged over ScoreMix's box sizes."""
    out: dict[str, Any] = {"n_times_max_p": float(dist.max() * dist.numel())}
    out["n_times_min_p"] = float(dist.min() * dist.numel())
    for rule in PASTE_RULES:
        law = {}
        for box in sizes:
            law[box] = tv_from_uniform(site_probabilities(dist, box, cut=False, paste_rule=rule))
        out[rule] = {f"{h}x{w}": law[(h, w)] for h, w in BOXES}
        out[rule]["mean"] = sum(weight * law[box] for box, weight in sizes.items())
    return out


def models() -> dict[str, ScoreNet]:
    demo, _ = load_checkpoint(DEMO)
    torch.manual_seed(0)
    return {"demo model": demo, "untrained": build_model("scorenet_4_1", num_classes=2).eval()}


def main(out_json: str | None) -> dict[str, Any]:
    rois = load_rois()
    sizes = box_size_weights()
    for box in BOXES:
        sizes.setdefault(box, 0.0)
    results: dict[str, Any] = {"roi_hw": list(ROI_HW), "grid": list(GRID), "models": {}}
    for model_name, model in models().items():
        results["models"][model_name] = {}
        for roi_name, roi in rois.items():
            with torch.no_grad():
                dist = model.semantic_distribution(roi[None])[0]
            assert tuple(dist.shape) == GRID
            results["models"][model_name][roi_name] = measure(dist, sizes)
    # reference, not a model: all the mass on one central patch, the most a distribution can steer
    peaked = torch.zeros(GRID, dtype=torch.float64)
    peaked[GRID[0] // 2, GRID[1] // 2] = 1.0
    results["models"]["reference"] = {"all mass on one central patch": measure(peaked, sizes)}
    print_table(results)
    if out_json:
        atomic_write(out_json, json.dumps(results, indent=2) + "\n")
    return results


def print_table(results: dict[str, Any]) -> None:
    columns = [*(f"{h}x{w}" for h, w in BOXES), "mean"]
    print(f"| model | RoI | N max P / N min P | rule | {' | '.join(columns)} |")
    print("|" + " --- |" * 4 + " ---: |" * len(columns))
    for model_name, per_roi in results["models"].items():
        for roi_name, row in per_roi.items():
            spread = f"{row['n_times_max_p']:.2f} / {row['n_times_min_p']:.2f}"
            for rule in PASTE_RULES:
                values = " | ".join(f"{row[rule][c]:.2g}" for c in columns)
                print(f"| {model_name} | {roi_name} | {spread} | {rule} | {values} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)

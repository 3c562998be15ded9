"""Render the pictures of docs/augmentations.md from the real tiles in the data folder.

Usage: ``python docs/make_mix_figures.py [OUTPUT_DIR]`` (default ``docs/images``). Source: carcinoma
``tiles/hgsc_nest.jpg`` (1500 x 1500); target: stroma ``tiles/hgsc_stromal_he.jpg`` cut to 1000 x 1500,
so that the two differ in size and aspect ratio. Mixing runs at full resolution; panels are downscaled.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from scorenet import build_model
from scorenet.mixing import MixResult, cutmix, saliency_map, saliencymix, scoremix
from scorenet.paths import data_dir

PANEL_HEIGHT = 240
CUT_COLOUR, PASTE_COLOUR = (255, 40, 40), (255, 220, 0)
CLASSES = ("carcinoma", "stroma")
LAM = 0.75  # fraction of the target kept: a box of a quarter of the target's area
LAM_SMALL = 0.9  # a smaller box, where the distribution has more room to choose
SEED = 7


def load_tile(name: str, rows: int | None = None) -> torch.Tensor:
    """(3, H, W) uint8 tensor of a tile, optionally keeping only its first ``rows`` rows."""
    array = np.asarray(Image.open(data_dir() / "tiles" / name).convert("RGB"))[:rows]
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def nucleus_distribution(grid: tuple[int, int]) -> torch.Tensor:
    """Share of nucleus pixels of the carcinoma tile in each patch of ``grid``, summing to 1: (1, gh, gw)."""
    raster = np.load(data_dir() / "tiles" / "hgsc_nest_type_mask.npz")["nuc_raster"]
    nuclei = torch.from_numpy(raster > 0).float()[None, None]
    density = F.adaptive_avg_pool2d(nuclei, grid)[0]
    return density / density.sum()


def panel(
    image: torch.Tensor, box, colour, heat: torch.Tensor | None = None, grid: bool = True
) -> Image.Image:
    """Downscaled picture of one image with its box and, when given, a heat map in red (min to max)."""
    picture = Image.fromarray(image.permute(1, 2, 0).numpy())
    scale = PANEL_HEIGHT / picture.height
    picture = picture.resize((round(picture.width * scale), PANEL_HEIGHT), Image.Resampling.LANCZOS)
    if heat is not None:
        spread = (heat.max() - heat.min()).clamp_min(1e-12)
        level = ((heat - heat.min()) / spread).numpy()
        alpha = Image.fromarray((level * 170).astype(np.uint8)).resize(picture.size, Image.Resampling.NEAREST)
        picture = Image.composite(Image.new("RGB", picture.size, (230, 0, 30)), picture, alpha)
    if heat is not None and grid:
        draw = ImageDraw.Draw(picture)
        gh, gw = heat.shape
        for i in range(1, gh):  # the patch grid
            y = round(i * picture.height / gh)
            draw.line([(0, y), (picture.width, y)], fill=(255, 255, 255), width=1)
        for j in range(1, gw):
            x = round(j * picture.width / gw)
            draw.line([(x, 0), (x, picture.height)], fill=(255, 255, 255), width=1)
    x0, y0, x1, y1 = (round(v * scale) for v in box.tolist())
    ImageDraw.Draw(picture).rectangle([x0, y0, x1 - 1, y1 - 1], outline=colour, width=4)
    return picture


def figure(title: str, panels: list[tuple[str, Image.Image]], footer: str) -> Image.Image:
    """Panels side by side, each with a caption, under a title and over a footer line."""
    font = ImageFont.load_default(size=18)
    margin, head, foot = 10, 34, 30
    width = sum(p.width for _, p in panels) + margin * (len(panels) + 1)
    canvas = Image.new("RGB", (width, PANEL_HEIGHT + 2 * head + foot), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    draw.text((margin, 8), title, fill=(0, 0, 0), font=font)
    x = margin
    for caption, picture in panels:
        draw.text((x, head + 6), caption, fill=(60, 60, 60), font=font)
        canvas.paste(picture, (x, 2 * head))
        x += picture.width + margin
    draw.text((margin, 2 * head + PANEL_HEIGHT + 6), footer, fill=(0, 0, 0), font=font)
    return canvas


def mixed_label(result: MixResult) -> str:
    weights = result.labels[0].tolist()
    return "mixed label: " + " + ".join(f"{w:.2f} {c}" for c, w in zip(CLASSES, weights, strict=True))


def save(picture: Image.Image, path: Path) -> None:
    """Write the PNG atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(suffix=".png", dir=path.parent)
    os.close(handle)
    try:
        # a 256-colour palette keeps the PNGs small; H&E has few distinct hues
        picture.quantize(256, method=Image.Quantize.MEDIANCUT).save(temp, optimize=True)
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise


def render(method: str, source, target, dists, lam: float, title: str, out: Path) -> MixResult:
    """Mix the two tiles with one method and write the figure."""
    labels_s, labels_t = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    mix = {"scoremix": scoremix, "cutmix": cutmix, "saliencymix": saliencymix}[method]
    generator = torch.Generator().manual_seed(SEED)
    result = mix(source[None], target[None], *dists, labels_s, labels_t, lam=lam, generator=generator)
    source_heat = None if dists[0] is None else dists[0][0]
    target_heat = None if method != "scoremix" else dists[1][0]
    if method == "saliencymix":  # the saliency map that places the box, above its median
        saliency = torch.from_numpy(saliency_map(source))
        source_heat = (saliency - saliency.median()).clamp_min(0)
    cut = panel(source, result.cut_boxes[0], CUT_COLOUR, source_heat, grid=method == "scoremix")
    panels = [
        ("source (carcinoma), cut box", cut),
        ("target (stroma), paste box", panel(target, result.paste_boxes[0], PASTE_COLOUR, target_heat)),
        ("mixed", panel(result.images[0], result.paste_boxes[0], PASTE_COLOUR)),
    ]
    save(figure(f"{title} (1 - lambda = {1 - lam:.2f})", panels, mixed_label(result)), out)
    return result


def main(out_dir: Path) -> None:
    source = load_tile("hgsc_nest.jpg")
    target = load_tile("hgsc_stromal_he.jpg", rows=1000)
    torch.manual_seed(0)
    model = build_model("scorenet_4_1", num_classes=len(CLASSES)).eval()
    with torch.no_grad():
        model_dists = (model.semantic_distribution(source[None]), model.semantic_distribution(target[None]))
    target_grid = tuple(model_dists[1].shape[1:])
    uniform_target = torch.full((1, *target_grid), 1.0 / (target_grid[0] * target_grid[1]))
    nuclei_dists = (nucleus_distribution(tuple(model_dists[0].shape[1:])), uniform_target)
    grid_only = (None, model_dists[1])  # CutMix and SaliencyMix only take the grid, for the box size
    jobs = [
        ("scoremix", model_dists, LAM, "ScoreMix, distributions of an untrained ScoreNet", "mix-scoremix"),
        (
            "scoremix",
            nuclei_dists,
            LAM_SMALL,
            "ScoreMix, source = nucleus density, target uniform",
            "mix-scoremix-nuclei",
        ),
        ("cutmix", grid_only, LAM, "CutMix", "mix-cutmix"),
        ("saliencymix", grid_only, LAM, "SaliencyMix", "mix-saliencymix"),
    ]
    for method, dists, lam, title, name in jobs:
        result = render(method, source, target, dists, lam, title, out_dir / f"{name}.png")
        print(f"{name}: cut {result.cut_boxes[0].tolist()} paste {result.paste_boxes[0].tolist()}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "images")

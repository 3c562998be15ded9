"""Re-run the scoring example of docs/scoring.md and write its five output files.

Usage: ``python docs/make_scoring_example.py OUT_DIR [CHECKPOINT]``. Without a checkpoint the default
``scorenet_4_1`` architecture is used with weights initialised from seed 0 (the file formats are real,
the predictions are not). ``docs/images/scoring-overlay.png`` is ``overlay.png`` at half size.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from PIL import Image
from scorenet import build_model, load_checkpoint, open_slide
from scorenet.export import write_score_outputs
from scorenet.inference import score_rois
from scorenet.paths import data_dir

SLIDE = "slides/cmu_small_region.svs"
ROI = (100, 300, 2048, 2560)  # level 0: 8 x 10 regions of 128 pixels at twice the slide's um/px
MPP = 0.998


def main(out_dir: Path, checkpoint: Path | None = None) -> None:
    if checkpoint is None:
        torch.manual_seed(0)
        model, class_names, mpp = build_model("scorenet_4_1", 2), ["class 0", "class 1"], MPP
    else:
        model, info = load_checkpoint(checkpoint)
        class_names, mpp = info.class_names, info.metadata.get("mpp", MPP)
    with open_slide(data_dir() / SLIDE) as slide:
        start = time.perf_counter()
        (score,) = score_rois(model, slide, [ROI], mpp=mpp, device="cpu", class_names=class_names)
        scored = time.perf_counter()
        paths = write_score_outputs(out_dir, score)
        written = time.perf_counter()
    print(f"scored in {scored - start:.2f} s, wrote {len(paths)} files in {written - scored:.2f} s")
    overlay = Image.open(paths["overlay.png"])
    overlay.resize((overlay.width // 2, overlay.height // 2), Image.LANCZOS).save(
        out_dir / "overlay-half.png", optimize=True
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else None)

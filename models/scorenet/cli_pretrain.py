"""``scorenet pretrain``: self-supervised pre-training on unlabelled slides and images."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

PRETRAIN_HELP = (
    "Pre-train ScoreNet without labels on slides (any format the reader opens) and folders of images. "
    "Images are sampled at random inside tissue (detected on a thumbnail). --mode modular (default): "
    "DINO for the scorer on s-times downscaled images and for the local ViT on high-resolution regions "
    "(--part); --mode unbiased: the paper's end-to-end pretext (pixel-value augmentations only; the "
    "student sees its top-K regions, the teacher all regions). Writes OUT/pretrained.safetensors (for "
    "scorenet train --init), OUT/pretrain_state.pt (resume), OUT/log.csv, OUT/log.json, "
    "OUT/pretrain_config.json. Exit 1 when the teacher collapses."
)
EXIT_COLLAPSED = 1
MODES, PARTS = ("modular", "unbiased"), ("scorer", "local", "both")  # scorenet.pretrain's, torch-free
TISSUE_METHODS = ("saturation", "od")  # scorenet.tissue.TISSUE_METHODS


def add_pretrain(sub: argparse._SubParsersAction, override: Any) -> None:
    """Register the ``pretrain`` sub-command."""
    p = sub.add_parser(
        "pretrain", help="self-supervised pre-training on unlabelled slides", description=PRETRAIN_HELP
    )
    p.add_argument("sources", nargs="+", type=Path, help="slides, images or folders of them")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--mode", choices=MODES, default="modular")
    p.add_argument("--part", choices=PARTS, default="both", help="modular mode: what to pre-train")
    p.add_argument("--model", default="scorenet_4_1")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--samples-per-epoch", type=int, default=1024, help="random tissue crops per epoch")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=None, help="default 5e-4 * batch / 256 (DINO)")
    p.add_argument("--teacher-temp", type=float, default=0.07, help="after its warm-up from 0.04 (DINO)")
    p.add_argument("--teacher-momentum", type=float, default=0.996,
                   help="teacher EMA momentum at the start, raised to 1 on a cosine (DINO)")  # fmt: skip
    p.add_argument("--local-crops", type=int, default=8, help="DINO local views per image (modular)")
    p.add_argument("--image-size", type=int, nargs=2, default=(768, 1024), metavar=("H", "W"),
                   help="unbiased mode: ScoreNet input size in pixels")  # fmt: skip
    p.add_argument(
        "--mpp", type=float, default=None, help="µm/px of the high-resolution pixels (default: native)"
    )
    p.add_argument("--tissue-method", choices=TISSUE_METHODS, default=None, help="tissue detection channel")
    p.add_argument("--tissue-threshold", type=float, default=None, help="tissue threshold (default: Otsu)")
    p.add_argument("--min-tissue", type=float, default=0.5, help="least tissue share of a sampled image")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--no-amp", action="store_true", help="no bf16 autocast on CUDA")
    p.add_argument("--workers", type=int, default=0, help="data loader processes")
    p.add_argument("--resume", action="store_true", help="continue the run saved in OUT")
    p.add_argument("--init", type=Path, default=None, help="start from these weights (e.g. a modular run's)")
    p.add_argument("--set", dest="overrides", type=override, action="append", default=[], metavar="KEY=VALUE",
                   help="model config override, e.g. --set top_k=8 (repeatable)")  # fmt: skip
    p.set_defaults(func=run_pretrain)


def run_pretrain(args: argparse.Namespace) -> int:
    """Run ``scorenet pretrain``; prints a JSON summary on stdout."""
    from .cli import EXIT_OK, _EpochBars
    from .pretrain import PretrainConfig, pretrain

    tissue = {"method": args.tissue_method, "threshold": args.tissue_threshold}
    config = PretrainConfig(
        sources=[str(s) for s in args.sources], out=args.out, mode=args.mode, part=args.part,
        model=args.model, overrides=dict(args.overrides), epochs=args.epochs,
        samples_per_epoch=args.samples_per_epoch, batch_size=args.batch_size, lr=args.lr,
        local_crops=args.local_crops, image_size=tuple(args.image_size), mpp=args.mpp,
        tissue={k: v for k, v in tissue.items() if v is not None}, min_tissue=args.min_tissue,
        seed=args.seed, device=args.device, amp=not args.no_amp, num_workers=args.workers,
        resume=args.resume, init=args.init, teacher_temp=args.teacher_temp,
        momentum_teacher=args.teacher_momentum,
    )  # fmt: skip
    config.check()
    is_main = int(os.environ.get("RANK", "0")) == 0

    with _EpochBars(enabled=is_main) as bars:

        def relay(event: dict[str, Any]) -> None:
            # an epoch's row carries the teacher's temperature; the bars show it as the epoch's summary
            bars.update({**event, "train_loss": event["loss"]} if "teacher_temp" in event else event)

        result = pretrain(config, progress=relay)
    summary = {
        "weights": str(result.weights),
        "epochs_done": len(result.history),
        "stopped": result.stopped,
        "collapsed": result.collapsed,
        "loss": result.history[-1]["loss"] if result.history else None,
        "out": str(result.out),
    }
    if is_main:
        print(json.dumps(summary, indent=2))
    if result.collapsed is not None:
        print(f"scorenet pretrain: {result.collapsed}", file=sys.stderr)
        return EXIT_COLLAPSED
    return EXIT_OK

"""``scorenet pretrain``: self-supervised pre-training on unlabelled slides and images."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from .choices import PRETRAIN, Model, values
from .cli_options import add_device

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
    # defaults: scorenet.choices.PRETRAIN, equal to PretrainConfig's (tests/test_choices.py)
    d = PRETRAIN
    p.add_argument("--mode", choices=MODES, default=d.mode, help="default: %(default)s")
    p.add_argument("--part", choices=PARTS, default=d.part,
                   help="modular mode: what to pre-train (default: %(default)s)")  # fmt: skip
    p.add_argument("--model", default=d.model, choices=values(Model), help="default: %(default)s")
    p.add_argument("--epochs", type=int, default=d.epochs, help="default: %(default)s")
    p.add_argument("--samples-per-epoch", type=int, default=d.samples_per_epoch,
                   help="random tissue crops per epoch (default: %(default)s)")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="default: %(default)s")
    p.add_argument("--lr", type=float, default=None, help="default 5e-4 * batch / 256 (DINO)")
    warm = f"after a warm-up from {d.warmup_teacher_temp} (DINO; default: %(default)s)"
    p.add_argument("--teacher-temp", type=float, default=d.teacher_temp, help=warm)
    p.add_argument("--teacher-momentum", type=float, default=d.momentum_teacher,
                   help="teacher EMA momentum at the start, raised to 1 on a cosine (DINO; default: "
                   "%(default)s)")  # fmt: skip
    p.add_argument("--local-crops", type=int, default=d.local_crops,
                   help="DINO local views per image (modular; default: %(default)s)")  # fmt: skip
    p.add_argument(
        "--image-size",
        type=int,
        nargs=2,
        default=d.image_size,
        metavar=("H", "W"),
        help="unbiased mode: ScoreNet input size in pixels (default: {} {})".format(*d.image_size),
    )
    p.add_argument(
        "--mpp", type=float, default=None, help="µm/px of the high-resolution pixels (default: native)"
    )
    p.add_argument("--tissue-method", choices=TISSUE_METHODS, default=None, help="tissue detection channel")
    p.add_argument("--tissue-threshold", type=float, default=None, help="tissue threshold (default: Otsu)")
    p.add_argument("--min-tissue", type=float, default=d.min_tissue,
                   help="least tissue share of a sampled image (default: %(default)s)")  # fmt: skip
    p.add_argument("--seed", type=int, default=d.seed, help="default: %(default)s")
    add_device(p, d.device)
    p.add_argument("--no-amp", action="store_true", help="no bf16 autocast on CUDA")
    p.add_argument("--workers", type=int, default=d.num_workers, help="data loader processes (%(default)s)")
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
        result = pretrain(config, progress=bars.update)
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

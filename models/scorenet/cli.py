"""The ``scorenet`` command: train, pretrain, eval, score, bench.

Exit codes: 0 success, 2 bad input (one line on stderr, no traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from .choices import DEFAULT_RECIPE, TRAIN, Mix, Model, values
from .cli_options import add_device, add_resolution, positive_int
from .cli_pretrain import add_pretrain
from .cli_slides import add_score_slides
from .errors import ScoreNetInputError
from .jobs import Progress
from .recipes import OPTIMIZERS, RECIPES, SIGMA_SCHEDULES

EXIT_OK, EXIT_INPUT, EXIT_INTERRUPTED = 0, 2, 130


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (the usage is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parse_override(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with a JSON value (numbers, true/false) or a plain string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _percent(text: str) -> float:
    value = float(text)
    if not 0 < value <= 100:
        raise argparse.ArgumentTypeError(f"a percentage in (0, 100], got {text}")
    return value / 100


_TRAIN_HELP = (
    "Train ScoreNet with a named recipe: 'scratch' (for a randomly initialised model: the "
    "paper's SGD with min-max scaled top-K scores and a large top-K noise decayed to 0) or 'paper' (the "
    f"paper's finetuning: SGD momentum {TRAIN.momentum}, lr 1e-2 * batch / 256, cosine, fixed top-K noise); "
    f"default: {DEFAULT_RECIPE}. Options left unset come from the recipe. Writes OUT/last.safetensors, "
    "OUT/best.safetensors (best validation weighted F1), OUT/last_state.pt, OUT/log.csv, OUT/log.json."
)


def _by_recipe(text: str, name: str) -> str:
    """Help for an option a recipe may set: ``text`` and its default, per recipe where they differ."""
    chosen = {recipe: settings.get(name, getattr(TRAIN, name)) for recipe, settings in RECIPES.items()}
    if len(set(chosen.values())) == 1:
        default = f"default: {chosen[DEFAULT_RECIPE]}"
    else:
        default = "recipe " + ", ".join(f"{recipe}: {value}" for recipe, value in chosen.items())
    return f"{text} ({default})" if text else default


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="finetune ScoreNet on a labelled folder", description=_TRAIN_HELP)
    p.add_argument("data", type=Path, help="ROOT/<class>/*, ROOT/{train,val[,test]}/<class>/* or a CSV")
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, logs)")
    # defaults: scorenet.choices.TRAIN, which TrainConfig's fields take too; recipe options stay None
    # so that the recipe sets them (see _run_train)
    p.add_argument("--model", default=TRAIN.model, choices=values(Model), help="default: %(default)s")
    p.add_argument("--recipe", default=DEFAULT_RECIPE, choices=list(RECIPES), help="default: %(default)s")
    p.add_argument("--epochs", type=int, default=None, help=_by_recipe("", "epochs"))
    p.add_argument("--batch-size", type=int, default=TRAIN.batch_size, help="default: %(default)s")
    p.add_argument("--lr", type=float, default=None, help="default 1e-2 * batch size / 256")
    p.add_argument("--min-lr", type=float, default=TRAIN.min_lr, help="cosine's end (default: %(default)s)")
    p.add_argument("--weight-decay", type=float, default=None, help=_by_recipe("", "weight_decay"))
    optimizer = _by_recipe(f"sgd has momentum {TRAIN.momentum}", "optimizer")
    p.add_argument("--optimizer", default=None, choices=list(OPTIMIZERS), help=optimizer)
    scorer_lr = _by_recipe("scorer lr relative to the rest", "scorer_lr_scale")
    p.add_argument("--scorer-lr-scale", type=float, default=None, help=scorer_lr)
    warmup = _by_recipe("linear lr warm-up", "warmup_epochs")
    p.add_argument("--warmup-epochs", type=float, default=None, help=warmup)
    freeze = _by_recipe("epochs before the scorer learns", "scorer_freeze_epochs")
    p.add_argument("--scorer-freeze-epochs", type=float, default=None, help=freeze)
    sigma = _by_recipe("top-K noise", "sigma_schedule")
    p.add_argument("--sigma-schedule", default=None, choices=list(SIGMA_SCHEDULES), help=sigma)
    p.add_argument("--mix", default=TRAIN.mix, choices=values(Mix), help="default: %(default)s")
    p.add_argument("--mix-prob", type=float, default=TRAIN.mix_prob,
                   help="chance that a batch is mixed (default: %(default)s)")  # fmt: skip
    p.add_argument("--fraction", type=_percent, default=TRAIN.fraction, metavar="PCT",
                   help=f"percent of training data (default: {TRAIN.fraction * 100:g})")  # fmt: skip
    p.add_argument("--val-fraction", type=float, default=TRAIN.val_fraction,
                   help="validation share of a plain folder (default: %(default)s)")  # fmt: skip
    p.add_argument("--split-csv", type=Path, default=None, help="CSV path,label,split")
    p.add_argument("--seed", type=int, default=TRAIN.seed, help="default: %(default)s")
    add_device(p, TRAIN.device)
    p.add_argument("--no-amp", action="store_true", help="float32 on CUDA too")
    p.add_argument("--workers", type=int, default=TRAIN.num_workers,
                   help="data-loading processes (default: %(default)s)")  # fmt: skip
    p.add_argument("--mpp", type=float, default=None, help="um/px of the images (stored in checkpoints)")
    p.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    p.add_argument(
        "--init",
        type=Path,
        default=None,
        metavar="PRETRAINED",
        help="start from pre-trained weights (from 'scorenet pretrain', or any ScoreNet checkpoint); "
        "the classification head is always fresh",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        type=parse_override,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model config override, e.g. --set top_k=8 (repeatable)",
    )
    p.set_defaults(func=_run_train)


class _EpochBars:
    """One tqdm bar per epoch on stderr: loss and lr per step, then the epoch's summary."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.bar = None

    def update(self, event: Progress) -> None:
        """Show a training or pre-training ``Progress`` event."""
        if not self.enabled:
            return
        from tqdm.auto import tqdm

        info = event.info
        desc = f"epoch {info['epoch']}/{info['epochs']}"
        if self.bar is None or self.bar.desc != desc:
            self.close()
            self.bar = tqdm(total=info["steps"], desc=desc, file=sys.stderr)
        if info.get("epoch_end"):
            val_f1 = info.get("val_weighted_f1")
            summary = {"loss": f"{info['loss']:.3f}"}
            if event.job == "train":
                summary["val_f1"] = "-" if val_f1 is None else f"{val_f1:.3f}"
            self.bar.set_postfix(summary)
        else:
            self.bar.set_postfix(loss=f"{info['loss']:.3f}", lr=f"{info['lr']:.2e}", refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> _EpochBars:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _run_train(args: argparse.Namespace) -> int:
    from .train import TrainConfig, train

    recipe_fields = ("epochs", "lr", "weight_decay", "optimizer", "scorer_lr_scale", "warmup_epochs",
                     "sigma_schedule", "scorer_freeze_epochs")  # fmt: skip
    chosen = {name: getattr(args, name) for name in recipe_fields if getattr(args, name) is not None}
    config = TrainConfig.from_recipe(
        args.recipe, data=args.data, out=args.out, model=args.model, batch_size=args.batch_size,
        min_lr=args.min_lr, mix=args.mix, mix_prob=args.mix_prob,
        fraction=args.fraction, val_fraction=args.val_fraction, split_csv=args.split_csv, seed=args.seed,
        device=args.device, amp=not args.no_amp, num_workers=args.workers, resume=args.resume, mpp=args.mpp,
        overrides=dict(args.overrides), init=args.init, **chosen,
    )  # fmt: skip
    is_main = int(os.environ.get("RANK", "0")) == 0  # under torchrun only rank 0 reports
    config.check()  # bad options and a bad --init file: a one-line error before any data is read
    init = config.check_init()
    if init is not None and is_main:
        print(init.summary(), file=sys.stderr)  # stdout stays the JSON summary
    with _EpochBars(enabled=is_main) as bars:
        result = train(config, progress=bars.update)
    last = result.history[-1] if result.history else {}
    summary = {
        "best_checkpoint": str(result.best_checkpoint),
        "last_checkpoint": str(result.last_checkpoint),
        "epochs_done": len(result.history),
        "stopped": result.stopped,
        "val_weighted_f1": last.get("val_weighted_f1"),
    }
    if is_main:
        print(json.dumps(summary, indent=2))
    return EXIT_INTERRUPTED if result.stopped else EXIT_OK


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="metrics of a checkpoint on a labelled folder",
        description="Writes OUT/metrics.json (weighted_f1, per_class_f1, accuracy, confusion_matrix, "
        "class_names; with several checkpoints their means, *_std and each run) and, with --probe, "
        "OUT/probe.json (linear and k-NN probes of the frozen features).",
    )
    p.add_argument("data", type=Path, help="labelled folder or CSV (as for train)")
    p.add_argument(
        "--checkpoint", type=Path, nargs="+", required=True, help="several: mean and std over the runs"
    )
    p.add_argument("--out", type=Path, required=True)
    p.add_argument(
        "--split",
        choices=["train", "val", "test"],
        default=None,
        help="default: test, else val, else all images",
    )
    p.add_argument("--split-csv", type=Path, default=None)
    # evaluate_checkpoint's and probe_checkpoint's defaults (tests/test_choices.py holds them equal)
    p.add_argument("--batch-size", type=int, default=8, help="default: %(default)s")
    add_device(p)
    p.add_argument("--probe", action="store_true", help="also cross-validate probes on frozen features")
    p.add_argument("--folds", type=int, default=5, help="folds of the probes' stratified CV (%(default)s)")
    p.set_defaults(func=_run_eval)


def _run_eval(args: argparse.Namespace) -> int:
    from .atomic import atomic_write
    from .evaluate import evaluate_checkpoint, is_pretrained_file, probe_checkpoint, summarize_runs

    options = {"device": args.device, "split": args.split, "split_csv": args.split_csv}
    # pre-trained weights have no classifier: they can only be probed
    full = [c for c in args.checkpoint if not is_pretrained_file(c)]
    if len(full) < len(args.checkpoint) and not args.probe:
        raise ScoreNetInputError("pre-trained weights have no classifier head; evaluate them with --probe")
    summary: dict[str, Any] = {}
    if full:
        runs = [evaluate_checkpoint(args.data, c, batch_size=args.batch_size, **options) for c in full]
        metrics = runs[0] if len(runs) == 1 else summarize_runs(runs)
        atomic_write(args.out / "metrics.json", json.dumps(metrics, indent=2))
        summary = {k: metrics[k] for k in ("weighted_f1", "accuracy", "per_class_f1") if k in metrics}
        spread = ("weighted_f1_std", "accuracy_std", "num_runs")
        summary.update({k: metrics[k] for k in spread if k in metrics})
        summary.update(split=runs[0]["split"], num_images=runs[0]["num_images"])
    if args.probe:
        probes = [probe_checkpoint(args.data, c, folds=args.folds, **options) for c in args.checkpoint]
        atomic_write(args.out / "probe.json", json.dumps(probes[0] if len(probes) == 1 else probes, indent=2))
        summary["probe"] = [{name: p["weighted_f1"] for name, p in r["probes"].items()} for r in probes]
    print(json.dumps(summary, indent=2))
    return EXIT_OK


def _add_score(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "score",
        help="score an image or slide region with a checkpoint",
        description="Writes prediction.json, distribution.npy, regions.geojson (K boxes, level-0 "
        "coordinates), regions.csv and overlay.png into OUT (OUT/roi_N/ for several --roi).",
    )
    p.add_argument("image", type=Path, help="slide (any OpenSlide format) or plain image")
    p.add_argument("--roi", type=int, nargs=4, action="append", metavar=("X", "Y", "W", "H"),
                   help="level-0 region (repeatable); default: the whole image")  # fmt: skip
    add_resolution(p)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    add_device(p)
    p.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="CPU threads of the model (default: the cores found free when scoring starts)",
    )
    p.set_defaults(func=_run_score)


def _run_score(args: argparse.Namespace) -> int:
    from .atomic import writable_folder
    from .checkpoint import load_checkpoint
    from .export import write_score_outputs
    from .inference import padding_note, score_rois
    from .resolution import resolve_resolution
    from .slide import open_slide

    writable_folder(args.out)  # before the scoring, not after it
    model, info = load_checkpoint(args.checkpoint)
    with open_slide(args.image) as slide:
        resolution = resolve_resolution(
            slide, mpp=args.mpp, magnification=args.magnification, checkpoint_mpp=info.metadata.get("mpp")
        )
        if resolution.note:
            logging.warning("%s", resolution.note)
        rois = args.roi or [(0, 0, *slide.level_dimensions[0])]
        scores = score_rois(
            model,
            slide,
            rois,
            resolution=resolution,
            device=args.device,
            class_names=info.class_names,
            threads=args.threads,
        )
    for score in scores:
        if score.padded_fraction > 0:
            logging.warning("%s", padding_note(args.image, score))
    outputs = []
    for i, score in enumerate(scores, start=1):
        out_dir = args.out if len(scores) == 1 else args.out / f"roi_{i}"
        write_score_outputs(out_dir, score)
        outputs.append({
            "roi": list(score.roi),
            "predicted": score.predicted,
            "probabilities": dict(zip(score.class_names, map(float, score.probabilities), strict=True)),
            "out": str(out_dir),
        })  # fmt: skip
    print(json.dumps(outputs, indent=2))
    return EXIT_OK


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks (throughput, end to end, learning)", add_help=False)
    try:
        from .bench import add_arguments
    except ImportError as err:
        reason = str(err)
        p.add_argument("-h", "--help", action="help")
        p.set_defaults(func=lambda _args: _missing_bench(reason))
        return
    p.add_argument("-h", "--help", action="help", help="show this help message and exit")
    add_arguments(p)
    p.set_defaults(func=_run_bench)


def _missing_bench(reason: str) -> int:
    raise ScoreNetInputError(f"benchmarks are not available in this installation ({reason})")


def _run_bench(args: argparse.Namespace) -> int:
    from .bench import run

    return int(run(args) or EXIT_OK)


def build_parser() -> argparse.ArgumentParser:
    """The full ``scorenet`` parser (bench options come from ``scorenet.bench``)."""
    parser = _Parser(prog="scorenet", description="ScoreNet: finetune, evaluate and score histology images.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log data counts and progress details")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")
    _add_train(sub)
    add_pretrain(sub, parse_override)
    _add_eval(sub)
    _add_score(sub)
    add_score_slides(sub)
    _add_bench(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``scorenet``; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return args.func(args)
    except ScoreNetInputError as err:
        print(f"scorenet {args.command}: error: {err}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print(f"scorenet {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())

"""Benchmarks: throughput, end-to-end latency, learning with mixing augmentations, planted task.

``scorenet bench`` (and ``python -m scorenet.bench``) call :func:`add_arguments` and :func:`run`.
Each suite writes ``<out>/<suite>.json`` with the command, the machine, versions and date, and prints a
table. ``slide-read`` and ``latency`` run ``benchmarks/bench_slide_read.py`` and
``benchmarks/bench_score_roi_latency.py`` from a source checkout (their ``run(out_json)``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ScoreNetInputError

SUITES = ("throughput", "end-to-end", "learning", "slide-read", "latency", "model-speed")
# suites implemented by scripts in the repository's benchmarks/ folder
SCRIPT_SUITES = {
    "slide-read": "bench_slide_read.py",
    "latency": "bench_score_roi_latency.py",
    "model-speed": "bench_model_speed.py",
}
BENCHMARKS_DIR = Path(__file__).resolve().parents[3] / "benchmarks"


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 1536x2048, got {text!r}") from None
    if h < 16 or w < 16:
        raise argparse.ArgumentTypeError(f"image size {text!r} is too small (at least 16x16)")
    return h, w


def _ints(text: str, minimum: int = 1) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < minimum:
        raise argparse.ArgumentTypeError(f"values must be >= {minimum}, got {text!r}")
    return values


def _seeds(text: str) -> list[int]:
    return _ints(text, minimum=0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``scorenet bench``."""
    parser.add_argument("--suite", choices=[*SUITES, "all"], default="all", help="which benchmark to run")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="folder for JSON")
    parser.add_argument("--quick", action="store_true", help="reduced grid: small batches, few repeats")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps (default cpu)")
    throughput = parser.add_argument_group("throughput")
    throughput.add_argument("--batch-sizes", type=_ints, help="e.g. 1,2,4 (default 1..64, quick 1,2)")
    throughput.add_argument("--image-size", type=_size, help="HxW (default 1536x2048)")
    throughput.add_argument(
        "--models", type=lambda s: s.split(","), help="comma-separated subset of scorenet,swin,vit"
    )
    throughput.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    throughput.add_argument("--float-input", action="store_true", help="send float images (default uint8)")
    throughput.add_argument("--compile", action="store_true", help="torch.compile the models")
    throughput.add_argument("--cuda-graphs", action="store_true", help="torch.compile mode reduce-overhead")
    throughput.add_argument(
        "--paired-rounds", type=int, default=5, help="ScoreNet and Swin alternated N times after the sweep"
    )
    learning = parser.add_argument_group("learning")
    learning.add_argument("--seeds", type=_seeds, help="training seeds (default 0,1,2; quick 0)")
    learning.add_argument("--fractions", type=_ints, help="percent of the training set, e.g. 10,100")
    learning.add_argument("--mixes", type=lambda s: s.split(","), help="none,cutmix,saliencymix,scoremix")
    learning.add_argument("--epochs", type=int, help="training epochs per run")
    learning.add_argument("--work-dir", type=Path, help="where the planted task and checkpoints go")
    learning.add_argument("--recipe", choices=["scratch", "paper"], help="training recipe (default scratch)")
    learning.add_argument("--task", choices=["kind", "amount"], help="planted task (default kind)")
    learning.add_argument("--init", type=Path, help="start every run from these weights (scorenet pretrain)")
    learning.add_argument(
        "--resume", action="store_true", help="reuse runs finished earlier with the same settings"
    )
    learning.add_argument(
        "--collect", action="store_true", help="train nothing: report the finished runs, list the missing"
    )


def _throughput(args: argparse.Namespace) -> dict[str, Any]:
    from . import throughput

    options = throughput.Options(
        device=args.device,
        bf16=args.bf16,
        uint8_input=not args.float_input,
        compile=args.compile,
        cuda_graphs=args.cuda_graphs,
        paired_rounds=args.paired_rounds,
    )
    if args.quick:
        # on 2 CPU cores the full-image ViT needs seconds per image: small batches, short timing
        options.batch_sizes, options.min_seconds, options.max_iterations = (1, 2), 0.5, 3
        options.paired_rounds = min(options.paired_rounds, 1)
    elif args.device == "cpu":
        # CPU cap: batches up to 8, and stop growing a model's batch once one batch exceeds 30 s
        options.batch_sizes = (1, 2, 4, 8)
    if args.batch_sizes:
        options.batch_sizes = tuple(args.batch_sizes)
    if args.image_size:
        options.image_size = args.image_size
    if args.models:
        unknown = sorted(set(args.models) - set(throughput.MODELS))
        if unknown:
            raise ScoreNetInputError(f"unknown model(s) {', '.join(unknown)}; choose from scorenet,swin,vit")
        options.models = tuple(args.models)
    return throughput.run_suite(options)


def _end_to_end(args: argparse.Namespace) -> dict[str, Any]:
    from . import end_to_end

    return end_to_end.run_suite(device=args.device, repeats=2 if args.quick else 10)


def _learning(args: argparse.Namespace) -> dict[str, Any]:
    from . import learning

    return learning.run_suite(learning.options_from_args(args))


def _script(name: str) -> Callable[[argparse.Namespace], dict[str, Any]]:
    def run_script(args: argparse.Namespace) -> dict[str, Any]:
        path = BENCHMARKS_DIR / SCRIPT_SUITES[name]
        if not path.is_file():
            raise ScoreNetInputError("benchmark script not found (needs a source checkout)", path)
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        out_json = args.out / f"{name}.json"
        returned = module.run(out_json)
        if isinstance(returned, dict):
            return returned
        return json.loads(out_json.read_text())

    return run_script


RUNNERS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "throughput": _throughput,
    "end-to-end": _end_to_end,
    "learning": _learning,
    **{name: _script(name) for name in SCRIPT_SUITES},
}
TABLE_COLUMNS = {
    "throughput": ["model", "batch_size", "images_per_s", "seconds_per_batch", "peak_memory_mb"],
    "end-to-end": ["stage", "median_ms", "share"],
    "learning": ["mix", "fraction", "runs", "weighted_f1", "weighted_f1_std", "topk_in_planted", "auc"],
}


def run(args: argparse.Namespace) -> int:
    """Run the chosen suite(s); write ``<out>/<suite>.json`` and print a table. Returns the exit code."""
    from ..inference import resolve_device
    from .report import command_line, environment, format_table, other_busy_processes, write_result

    try:
        args.device = str(resolve_device(args.device))  # a clear message, not a CUDA traceback mid-run
    except ScoreNetInputError as exc:
        print(f"scorenet bench: {exc}", file=sys.stderr)
        return 2
    suites = SUITES if args.suite == "all" else (args.suite,)
    failed = []
    for suite in suites:
        missing_script = suite in SCRIPT_SUITES and not (BENCHMARKS_DIR / SCRIPT_SUITES[suite]).is_file()
        if missing_script and args.suite == "all":
            print(f"[{suite}] skipped: benchmarks/{SCRIPT_SUITES[suite]} not found")
            continue
        print(f"[{suite}] running ...", flush=True)
        env = environment(args.device)
        try:
            result = RUNNERS[suite](args)
        except ScoreNetInputError as exc:
            print(f"[{suite}] error: {exc}", file=sys.stderr)
            failed.append(suite)
            continue
        # other processes seen at the start or at the end mean the timings were taken on a shared machine
        busy_after = other_busy_processes()
        env["other_busy_processes"] = sorted(set(env["other_busy_processes"]) | set(busy_after))
        env["machine_shared"] = bool(env["other_busy_processes"])
        env["load_average_1min_end"] = round(os.getloadavg()[0], 2)
        command = getattr(args, "command_line", None) or command_line()
        result = {"command": command, "quick": bool(args.quick), "environment": env, **result}
        path = write_result(args.out / f"{suite}.json", result)
        rows = result.get("results")
        if suite in TABLE_COLUMNS and isinstance(rows, list):
            print(format_table(rows, TABLE_COLUMNS[suite]))
        print(f"[{suite}] wrote {path}")
    return 2 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """``python -m scorenet.bench``: the same options as ``scorenet bench``."""
    parser = argparse.ArgumentParser(prog="python -m scorenet.bench", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    if argv is not None:
        args.command_line = " ".join(["python -m scorenet.bench", *argv])
    return run(args)

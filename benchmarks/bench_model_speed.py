"""Model speed table of docs/model.md: ScoreNet/4/3 forward times on this machine's CPU.

    python benchmarks/bench_model_speed.py benchmarks/results/model-speed.json
    scorenet bench --suite model-speed --out benchmarks/results

Median of repeated runs under ``torch.inference_mode()`` (the training step in train mode).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from scorenet.atomic import atomic_write
from scorenet.bench.report import environment
from scorenet.model import build_model


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: allocations, oneDNN primitive caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(out_json: Path) -> dict:
    torch.manual_seed(0)
    model = build_model("scorenet_4_3", num_classes=4).eval()
    one = torch.randint(0, 256, (1, 3, 1536, 2048), dtype=torch.uint8)
    eight = torch.randint(0, 256, (8, 3, 1536, 2048), dtype=torch.uint8)
    one_float, eight_float = one.float() / 255, eight.float() / 255  # converted before timing
    odd = torch.rand(1, 3, 1000, 1300)
    rows = []

    def timed(name: str, fn: Callable[[], object], repeats: int = 10) -> None:
        rows.append({"input": name, "seconds": _median_seconds(fn, repeats)})
        print(f"{name:<60} {rows[-1]['seconds']:.3f} s", flush=True)

    with torch.inference_mode():
        timed("1 x 1536 x 2048, float", lambda: model(one_float))
        timed("1 x 1536 x 2048, uint8", lambda: model(one))
        timed("8 x 1536 x 2048, float", lambda: model(eight_float), 5)
        timed("8 x 1536 x 2048, uint8", lambda: model(eight), 5)
        timed("1 x 1000 x 1300 (resized to 1024 x 1280), float", lambda: model(odd))
        timed("semantic_distribution, 1 x 1536 x 2048", lambda: model.semantic_distribution(one))
    train_model = build_model("scorenet_4_3", num_classes=4, num_samples=500).train()

    def step() -> None:
        train_model(eight).logits.sum().backward()

    timed("training step (train mode, 500 samples, forward + backward), 8 x 1536 x 2048", step, 3)
    result = {
        "command": "python benchmarks/bench_model_speed.py " + str(out_json),
        "environment": environment("cpu"),
        "model": "scorenet_4_3",
        "results": rows,
    }
    atomic_write(out_json, json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    run(Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/model-speed.json"))

"""ScoreNet throughput on a quiet and on a busy CPU: the thread policy against torch's default.

One run, same model and input: ScoreNet/4/1 (the bundled size) on a 1536 x 2048 RoI of the TCGA
slide, batch 1, in eval mode under ``torch.inference_mode``. Each setting runs for ``SECONDS`` after a
warm-up and reports images/s:

- quiet: nothing else running; threads from the policy (``scorenet.threads.choose_threads``), 2 (torch's
  default on a 2-core machine) and 1;
- busy: another process spins on one core the whole time; threads from the policy (measured afresh
  with the spinner running) and 2.

Settings alternate over ``ROUNDS`` rounds and the median is kept. Target (issue "one set of rules"):
busy with the policy >= 0.8x quiet with the policy.

``python benchmarks/bench_threads.py [OUT_JSON]`` (default ``benchmarks/results/threads.json``).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scorenet.atomic import atomic_write
from scorenet.model import build_model
from scorenet.paths import data_dir
from scorenet.slide import read_roi
from scorenet.threads import choose_threads, intra_op_threads, usable_cores

RESULT = Path(__file__).parent / "results" / "threads.json"
ROI = (1200, 1000, 2048, 1536)
SECONDS = 4.0
ROUNDS = 3
SPIN = "import time\nwhile True: pass\n"


def images_per_second(model: torch.nn.Module, image: torch.Tensor, threads: int) -> float:
    """Forward passes per second with ``threads`` intra-op threads, over ``SECONDS``."""
    with torch.inference_mode(), intra_op_threads(threads):
        model(image)  # warm-up
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < SECONDS:
            model(image)
            count += 1
    return count / (time.perf_counter() - start)


def run(out_json: str | Path = RESULT) -> dict:
    """Measure, write ``out_json`` atomically and return the numbers."""
    torch.manual_seed(0)
    model = build_model("scorenet_4_1", 2).eval()
    pixels = read_roi(data_dir() / "slides" / "tcga-cr-7395-01a-01-ts1.svs", *ROI).image
    image = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)[None]
    samples: dict[str, list[float]] = {}
    chosen: dict[str, list[int]] = {"quiet": [], "busy": []}
    for _ in range(ROUNDS):
        policy = choose_threads(max_age=0)
        chosen["quiet"].append(policy)
        for name, threads in (("quiet, policy", policy), ("quiet, 2 threads", 2), ("quiet, 1 thread", 1)):
            samples.setdefault(name, []).append(images_per_second(model, image, threads))
        spinner = subprocess.Popen([sys.executable, "-c", SPIN])
        try:
            time.sleep(0.5)
            policy = choose_threads(max_age=0)
            chosen["busy"].append(policy)
            for name, threads in (("busy, policy", policy), ("busy, 2 threads", 2)):
                samples.setdefault(name, []).append(images_per_second(model, image, threads))
        finally:
            spinner.kill()
            spinner.wait()
        time.sleep(0.5)
    medians = {name: round(statistics.median(values), 2) for name, values in samples.items()}
    result = {
        "command": "python benchmarks/bench_threads.py",
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {usable_cores()} usable CPUs, no GPU",
        "load_average_at_start": os.getloadavg()[0],
        "torch": torch.__version__,
        "model": "scorenet_4_1 (random weights; speed does not depend on them)",
        "input": [1, 3, 1536, 2048],
        "seconds_per_setting": SECONDS,
        "rounds": ROUNDS,
        "threads_chosen": chosen,
        "images_per_s": medians,
        "samples": {name: [round(v, 2) for v in values] for name, values in samples.items()},
        "busy_over_quiet_policy": round(medians["busy, policy"] / medians["quiet, policy"], 3),
        "busy_over_quiet_2_threads": round(medians["busy, 2 threads"] / medians["quiet, 2 threads"], 3),
    }
    atomic_write(out_json, json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1] if len(sys.argv) > 1 else RESULT), indent=2))

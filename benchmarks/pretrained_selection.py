"""Where pre-trained scorers look before any labelled training: top-K in planted and AUC on the test
split of the learning benchmark's planted task, for a random initialisation and pre-trained files.

    python benchmarks/pretrained_selection.py OUT.json LABEL=FILE [LABEL=FILE ...]

The head is untrained (its F1 means nothing); only the selection is read. One CPU thread.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import torch
from scorenet.bench.learning import LearningOptions, evaluate_run
from scorenet.bench.probe_tasks import planted_task_dir
from scorenet.bench.report import environment
from scorenet.checkpoint import save_checkpoint
from scorenet.model import build_model
from scorenet.pretrained import load_init


def main(argv: list[str]) -> None:
    torch.set_num_threads(1)
    out, files = Path(argv[0]), dict(arg.split("=", 1) for arg in argv[1:])
    options = LearningOptions()
    task_dir = planted_task_dir(options.work_dir, options.counts, options.task_seed, options.task)
    results = {}
    for label, path in {"random initialisation (seed 0)": None, **files}.items():
        torch.manual_seed(0)
        model = build_model("scorenet_4_1", 3, **options.model_overrides)
        if path is not None:
            load_init(model, path)
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = Path(tmp) / "model.safetensors"
            save_checkpoint(model, checkpoint, ["stroma", "serous_carcinoma", "other_carcinoma"])
            run = evaluate_run(checkpoint, task_dir)
        results[label] = {k: run[k] for k in ("topk_in_planted", "auc", "max_over_min")} | {"file": path}
        print(f"{label:<36} top-K in planted {run['topk_in_planted']:.3f}  AUC {run['auc']:.3f}")
    report = {"environment": environment("cpu"), "task_dir": str(task_dir), "results": results}
    out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])

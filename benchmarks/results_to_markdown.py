"""Print the tables of docs/benchmarks.md from the JSON results of ``scorenet bench``.

Usage: python benchmarks/results_to_markdown.py [benchmarks/results]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    """A markdown table of ``rows``; ``columns`` are (key, header) pairs."""
    lines = ["| " + " | ".join(h for _, h in columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(_fmt(row.get(k)) for k, _ in columns) + " |" for row in rows]
    return "\n".join(lines)


def environment(result: dict[str, Any]) -> str:
    env = result["environment"]
    shared = "yes (" + ", ".join(env["other_busy_processes"]) + ")" if env["machine_shared"] else "no"
    return (
        f"`{result['command']}` on {env['date']}: device {env['device']}, CPU {env['cpu_model']} "
        f"({env['cpu_count']} cores, {env['torch_threads']} torch threads), Python {env['python']}, "
        f"torch {env['torch']}, timm {env['timm']}; other processes busy at the start or end: {shared}."
    )


def main(results_dir: Path) -> None:
    tp = results_dir / "throughput.json"
    if tp.is_file():
        result = json.loads(tp.read_text())
        print("### Throughput\n\n" + environment(result) + "\n")
        print(
            table(
                result["results"],
                [
                    ("model", "model"),
                    ("parameters", "parameters"),
                    ("batch_size", "batch"),
                    ("images_per_s", "images/s"),
                    ("seconds_per_batch", "s/batch"),
                    ("peak_memory_mb", "peak memory (MiB)"),
                ],
            )
        )
        r = result["ratios"]
        print(
            f"\nScoreNet / Swin: {_fmt(r['measured'].get('scorenet_over_swin'))} here, "
            f"{_fmt(r['paper']['scorenet_over_swin'])} in the paper; ScoreNet / ViT: "
            f"{_fmt(r['measured'].get('scorenet_over_vit'))} here, {_fmt(r['paper']['scorenet_over_vit'])} "
            "in the paper (sweep: each model's best batch).\n"
        )
        paired = result.get("paired_scorenet_over_swin")
        if paired:
            sizes = paired["batch_sizes"]
            batches = f"ScoreNet batch {sizes['scorenet']}, Swin batch {sizes['swin']}"
            print(f"Paired rounds ({batches}, back to back):\n")
            rows = [{"round": i + 1, **r} for i, r in enumerate(paired["rounds"])]
            print(
                table(
                    rows,
                    [
                        ("round", "round"),
                        ("scorenet_images_per_s", "ScoreNet images/s"),
                        ("swin_images_per_s", "Swin images/s"),
                        ("ratio", "ScoreNet / Swin"),
                    ],
                )
            )
            print(f"\nMedian ScoreNet / Swin over the rounds: {_fmt(paired['median_ratio'])}.\n")
    e2e = results_dir / "end-to-end.json"
    if e2e.is_file():
        result = json.loads(e2e.read_text())
        print("### End to end\n\n" + environment(result) + "\n")
        print(table(result["results"], [("stage", "stage"), ("median_ms", "median ms"), ("share", "share")]))
        print(f"\nTotal {_fmt(result['total_median_ms'])} ms; slowest stage: `{result['slowest_stage']}`.\n")
    learning = results_dir / "learning.json"
    if learning.is_file():
        result = json.loads(learning.read_text())
        print("### Learning\n\n" + environment(result) + "\n")
        columns = [("mix", "mix"), ("fraction", "% train"), ("runs", "seeds")]
        for metric, header in [
            ("weighted_f1", "weighted F1"),
            ("topk_in_planted", "top-K in planted"),
            ("auc", "AUC"),
        ]:
            columns += [(metric, header), (f"{metric}_std", "std")]
        columns += [
            ("max_over_min", "max/min cell"),
            ("topk_mass", "mass in top-K"),
            ("effective_regions", "exp(H)"),
        ]
        print(table(result["results"], columns))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("benchmarks/results"))

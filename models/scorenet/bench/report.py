"""What every benchmark result records: the command, the machine, versions, date; JSON and a table."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from .. import _compat  # noqa: F401  (must precede timm)
from ..atomic import atomic_write


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (platform's guess elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def other_busy_processes(interval: float = 0.5, threshold: float = 10.0) -> list[str]:
    """Names of other processes using more than ``threshold`` % of a core over ``interval`` seconds."""
    me = os.getpid()
    procs = [p for p in psutil.process_iter(["name"]) if p.pid != me]
    for p in procs:
        try:
            p.cpu_percent(None)
        except psutil.Error:
            pass
    time.sleep(interval)
    busy = []
    for p in procs:
        try:
            if p.cpu_percent(None) > threshold:
                busy.append(p.info["name"])
        except psutil.Error:
            pass
    return sorted(busy)


def environment(device: str) -> dict[str, Any]:
    """Device, versions, CPU, date, and whether other processes shared the machine at the start."""
    import timm  # noqa: I001  (after _compat)
    import torch

    busy = other_busy_processes()
    env = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "device": device,
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "platform": platform.platform(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "machine_shared": bool(busy),
        "other_busy_processes": busy,
    }
    if device.startswith("cuda"):
        env["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return env


def command_line() -> str:
    """The command that is running, as typed (module or console script)."""
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])


def write_result(path: str | Path, result: dict[str, Any]) -> Path:
    """Write one suite's result as indented JSON, atomically."""
    return atomic_write(path, json.dumps(result, indent=2) + "\n")


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A plain-text table of ``columns`` of ``rows`` (floats with 3 significant digits)."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3g}"
        return "" if value is None else str(value)

    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)

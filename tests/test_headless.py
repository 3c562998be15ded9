"""The library and the ``scorenet`` command run on a machine without napari, Qt or magicgui.

A fresh interpreter makes those packages unimportable (as on a headless install, where they are not
installed), imports every ``scorenet`` module and the plugin package's top level, and runs the
command's help and a real train, eval and score. Any attempt to import one of them is recorded, so
even an ``import`` guarded by ``try/except ImportError`` fails the test.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

GUI_MODULES = ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "vispy")

SCRIPT = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys
    from pathlib import Path

    BLOCKED = set(sys.argv[1].split(","))
    attempts = []

    class Block:
        # the GUI stack is absent on a headless install: importing it fails, and the attempt is logged
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                attempts.append(name)
                raise ModuleNotFoundError(f"No module named {name!r} (headless test)", name=name)
            return None

    sys.meta_path.insert(0, Block())

    import napari_scorenet  # napari's entry point names this package: it must import without napari
    import scorenet
    from scorenet.cli import build_parser, main
    from scorenet.demo_data import DEMO_MODEL_OVERRIDES, make_tile_folder

    build_parser()
    for command in ("train", "pretrain", "eval", "score", "bench"):
        try:
            main([command, "--help"])
        except SystemExit as done:
            assert done.code == 0, (command, done.code)
    modules = [m.name for m in pkgutil.walk_packages(scorenet.__path__, "scorenet.")]
    for name in modules:
        if not name.endswith(".__main__"):  # running the benchmarks is not importing them
            importlib.import_module(name)

    tiles, slide, tmp = (Path(a) for a in sys.argv[2:5])
    folder = make_tile_folder(tmp / "tiles", 3, seed=1, sizes=((256, 256),), tiles_dir=tiles)
    small = [a for k, v in DEMO_MODEL_OVERRIDES.items() for a in ("--set", f"{k}={v}")]
    run = tmp / "run"
    codes = [
        main(["train", str(folder), "--out", str(run), "--epochs", "1", "--batch-size", "2",
              "--device", "cpu", *small]),
        main(["eval", str(folder), "--checkpoint", str(run / "last.safetensors"), "--out", str(tmp / "eval"),
              "--device", "cpu"]),
        main(["score", str(slide), "--roi", "1000", "1200", "256", "256", "--checkpoint",
              str(run / "last.safetensors"), "--out", str(tmp / "score"), "--device", "cpu"]),
    ]
    loaded = sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED)
    print(json.dumps({"modules": len(modules), "codes": codes, "attempts": attempts, "loaded": loaded}))
    """
)


def test_library_and_cli_never_import_the_gui_stack(tiles_dir: Path, slides_dir: Path, tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, ",".join(GUI_MODULES), str(tiles_dir),
         str(slides_dir / "cmu_small_region.svs"), str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["modules"] > 30  # every module was walked, not just the package
    assert result["codes"] == [0, 0, 0]
    assert result["attempts"] == [] and result["loaded"] == []
    assert (tmp_path / "score" / "prediction.json").is_file()

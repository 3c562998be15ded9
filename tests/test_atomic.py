from pathlib import Path

import pytest
from scorenet.atomic import atomic_path, atomic_write


def test_atomic_write_text_and_bytes(tmp_path: Path):
    target = atomic_write(tmp_path / "sub" / "a.json", '{"a": 1}')
    assert target.read_text() == '{"a": 1}'
    atomic_write(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert [p.name for p in target.parent.iterdir()] == ["a.json"]


def test_failed_write_keeps_previous_content_and_leaves_no_temp(tmp_path: Path):
    target = atomic_write(tmp_path / "ckpt.bin", b"good")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.bin"]


def test_written_files_get_ordinary_permissions_not_private_temp_ones(tmp_path):
    import stat

    from scorenet.atomic import _FILE_MODE, atomic_write

    fresh = atomic_write(tmp_path / "new.json", "{}")
    assert stat.S_IMODE(fresh.stat().st_mode) == _FILE_MODE
    kept = tmp_path / "kept.txt"
    kept.write_text("x")
    kept.chmod(0o640)
    atomic_write(kept, "y")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640 and kept.read_text() == "y"


def test_checkpoints_get_the_same_permissions_as_every_other_file(tmp_path):
    """safetensors writes a file of its own in place of the temporary one: the mode must survive."""
    import stat

    from scorenet.atomic import _FILE_MODE
    from scorenet.checkpoint import save_checkpoint
    from scorenet.model import build_model
    from scorenet.pretrained import save_pretrained
    from small_model import SMALL

    model = build_model("scorenet_4_1", 2, **SMALL)
    save_checkpoint(model, tmp_path / "model.safetensors", ["a", "b"])
    save_pretrained(model, tmp_path / "pretrained.safetensors", ["scorer"])
    for name in ("model.safetensors", "pretrained.safetensors"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == _FILE_MODE, name


def test_no_module_shadows_the_standard_library() -> None:
    """A module named like a standard one (``scorenet/io.py``) is imported instead of it by scripts
    run from the package folder, and misleads readers of ``from .io import``."""
    import pkgutil
    import sys

    import scorenet

    names = {m.name.rsplit(".", 1)[-1] for m in pkgutil.walk_packages(scorenet.__path__, "scorenet.")}
    assert not names & set(sys.stdlib_module_names)

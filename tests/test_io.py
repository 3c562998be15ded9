from pathlib import Path

import pytest
from scorenet.io import atomic_path, atomic_write


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

    from scorenet.io import _FILE_MODE, atomic_write

    fresh = atomic_write(tmp_path / "new.json", "{}")
    assert stat.S_IMODE(fresh.stat().st_mode) == _FILE_MODE
    kept = tmp_path / "kept.txt"
    kept.write_text("x")
    kept.chmod(0o640)
    atomic_write(kept, "y")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640 and kept.read_text() == "y"

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

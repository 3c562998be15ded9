"""One resolution rule for every reader: the rule on real slides, the CLI's use of it, the docs' example."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from scorenet.checkpoint import save_checkpoint
from scorenet.cli import main
from scorenet.demo_data import DEMO_MODEL_OVERRIDES
from scorenet.errors import ScoreNetInputError
from scorenet.model import build_model
from scorenet.resolution import THUMBNAIL_PIXELS, resolve_resolution
from scorenet.slide import open_slide

ROOT = Path(__file__).resolve().parents[1]
TCGA = "tcga-cr-7395-01a-01-ts1.svs"  # records neither a pixel size nor an objective power
CMU = "cmu_small_region.svs"  # 0.499 µm/px, 20x, one level


@pytest.fixture(scope="module")
def tcga(slides_dir: Path):
    with open_slide(slides_dir / TCGA) as slide:
        yield slide


@pytest.fixture(scope="module")
def cmu(slides_dir: Path):
    with open_slide(slides_dir / CMU) as slide:
        yield slide


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("resolution") / "tiny.safetensors"
    model = build_model("scorenet_4_1", 2, **DEMO_MODEL_OVERRIDES).eval()
    save_checkpoint(model, path, ["carcinoma", "stroma"], metadata={"mpp": 0.5})
    return path


def test_explicit_requests_on_a_slide_that_records_them(cmu) -> None:
    assert resolve_resolution(cmu, mpp=1.0).scale == pytest.approx(cmu.mpp / 1.0)
    assert resolve_resolution(cmu, mpp=1.0, checkpoint_mpp=4.0).mpp == pytest.approx(1.0)  # asked wins
    assert resolve_resolution(cmu, magnification=10).scale == pytest.approx(10 / cmu.objective_power)
    assert resolve_resolution(cmu, checkpoint_mpp=2.0).mpp == pytest.approx(2.0)
    assert resolve_resolution(cmu).scale == 1.0 and resolve_resolution(cmu).note is None
    with pytest.raises(ScoreNetInputError, match="not both"):
        resolve_resolution(cmu, mpp=1.0, magnification=10)
    for bad in (0.0, -1.0, math.nan):
        with pytest.raises(ScoreNetInputError, match="positive"):
            resolve_resolution(cmu, mpp=bad)


def test_a_slide_without_pixel_size_refuses_explicit_requests_and_notes_the_fallback(tcga) -> None:
    with pytest.raises(ScoreNetInputError, match=r"tcga-cr-7395.*0.25 µm/px requested.*no pixel size"):
        resolve_resolution(tcga, mpp=0.25)
    with pytest.raises(ScoreNetInputError, match=r"tcga-cr-7395.*10x requested.*no objective power"):
        resolve_resolution(tcga, magnification=10)
    fallback = resolve_resolution(tcga, checkpoint_mpp=0.5)
    assert fallback.scale == 1.0 and fallback.mpp is None
    assert "tcga-cr-7395" in fallback.note and "level 0" in fallback.note and "0.5 µm/px" in fallback.note
    assert resolve_resolution(tcga).note is None  # nothing asked, nothing to warn about


def test_a_thumbnail_reads_a_coarse_level_with_or_without_pixel_size(tcga, cmu) -> None:
    # TCGA: level 1 at downsample 2.0005, no pixel size
    thumb = resolve_resolution(tcga, checkpoint_mpp=0.5, thumbnail=True)
    assert thumb.scale == pytest.approx(1 / tcga.level_downsamples[-1])
    assert "reading at 0.4999 x level 0, not at the checkpoint's" in thumb.note
    # a huge slide whose coarsest level is still large: capped at THUMBNAIL_PIXELS
    huge = SimpleNamespace(path="huge.tif", mpp=0.25, objective_power=40.0,
                           level_dimensions=((100_000, 80_000), (25_000, 20_000)),
                           level_downsamples=(1.0, 4.0))  # fmt: skip
    scale = resolve_resolution(huge, checkpoint_mpp=0.5, thumbnail=True).scale
    assert 100_000 * 80_000 * scale**2 == pytest.approx(THUMBNAIL_PIXELS)
    # never finer than asked: a coarser request stays
    assert resolve_resolution(cmu, mpp=50.0, thumbnail=True).mpp == pytest.approx(50.0)


def test_cli_refuses_what_the_rule_refuses_before_reading(
    slides_dir: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = ["score", str(slides_dir / TCGA), "--roi", "0", "0", "512", "512", "--checkpoint", str(checkpoint)]
    assert main([*args, "--mpp", "0.25", "--out", str(tmp_path / "a"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "0.25 µm/px requested" in err and TCGA in err
    assert main([*args, "--magnification", "10", "--out", str(tmp_path / "b"), "--device", "cpu"]) == 2
    assert "no objective power" in capsys.readouterr().err


def test_cli_reads_level_0_with_a_warning_when_the_checkpoint_mpp_cannot_be_met(
    slides_dir: Path, checkpoint: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "score"
    argv = ["score", str(slides_dir / TCGA), "--roi", "2000", "1500", "512", "512", "--checkpoint",
            str(checkpoint), "--out", str(out), "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    assert json.loads((out / "prediction.json").read_text())["scale"] == 1.0
    assert any("not at the checkpoint's 0.5 µm/px" in r.getMessage() for r in caplog.records)


def test_cli_refuses_an_unusable_out_before_scoring(
    slides_dir: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    a_file = tmp_path / "prediction.json"
    a_file.write_text("{}")
    base = ["score", str(slides_dir / CMU), "--checkpoint", str(checkpoint), "--device", "cpu"]
    assert main([*base, "--out", str(a_file)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "prediction.json: output path is a file" in err
    assert main([*base, "--out", str(a_file / "sub")]) == 2
    assert "cannot write in this folder" in capsys.readouterr().err
    assert a_file.read_text() == "{}"


def test_the_python_example_of_docs_scoring_runs(
    slides_dir: Path, checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    text = (ROOT / "docs" / "scoring.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    assert "resolve_resolution" in code
    code = code.replace('"model.safetensors"', repr(str(checkpoint)))
    code = code.replace('"slide.svs"', repr(str(slides_dir / TCGA)))
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs/scoring.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "records no pixel size" in printed and "score: 2/2 steps" in printed
    assert json.loads((tmp_path / "scores" / "roi-1" / "prediction.json").read_text())["roi"] == [
        100, 300, 2048, 2560,
    ]  # fmt: skip

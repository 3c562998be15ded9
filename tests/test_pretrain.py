"""Self-supervised pre-training end to end on the real slides and tiles, with the small test model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from scorenet.errors import ScoreNetInputError
from scorenet.model import build_model
from scorenet.pretrain import PretrainConfig, pretrain
from scorenet.pretrained import load_init, read_pretrained_info
from small_model import SMALL

TINY = {"epochs": 2, "samples_per_epoch": 4, "batch_size": 2, "local_crops": 1, "out_dim": 64,
        "hidden_dim": 64, "bottleneck_dim": 16, "overrides": SMALL}  # fmt: skip


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _config(slides_dir: Path, out: Path, **fields) -> PretrainConfig:
    sources = [str(slides_dir / "tcga-cr-7395-01a-01-ts1.svs"), str(slides_dir / "cmu_small_region.svs")]
    return PretrainConfig(sources=sources, out=out, **{**TINY, "image_size": (256, 256), **fields})


def _fresh(seed: int = 0):
    torch.manual_seed(seed)
    return build_model("scorenet_4_1", 1, **SMALL)


def _changed(state: dict[str, torch.Tensor], fresh: dict[str, torch.Tensor], prefix: str) -> bool:
    keys = [k for k in fresh if k.startswith(prefix)]
    return any(not torch.equal(state[k], fresh[k]) for k in keys)


def test_modular_pretraining_writes_loadable_weights_of_both_vits(slides_dir, tmp_path):
    result = pretrain(_config(slides_dir, tmp_path, part="both"))
    assert not result.stopped and result.collapsed is None and len(result.history) == 2
    info = read_pretrained_info(result.weights)
    assert sorted(info.parts) == ["local_vit", "scorer"]
    assert info.metadata["epoch"] == 2 and info.metadata["mode"] == "modular"
    for row in result.history:  # both branches logged, entropies in [0, log K]
        for branch in ("scorer", "local_vit"):
            assert 0 < row[f"{branch}_teacher_entropy"] <= torch.log(torch.tensor(64.0)) + 1e-4
    model = _fresh(1)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    report = load_init(model, result.weights)
    assert report.loaded == ["scorer", "local_vit"] and "global_encoder" in report.fresh
    state = model.state_dict()
    assert not _changed(state, fresh, "global_encoder.")  # the part the file lacks is left as built
    saved = load_file(str(result.weights))
    assert all(torch.equal(state[k], v) for k, v in saved.items())
    assert not any(k.startswith(("global_encoder.", "head.")) for k in saved)
    # the pre-trained weights are not the initialisation: the run learned something
    assert _changed(saved, _fresh(0).state_dict(), "scorer.")
    assert _changed(saved, _fresh(0).state_dict(), "local_vit.")
    rows = (tmp_path / "log.csv").read_text().splitlines()
    assert len(rows) == 3 and "scorer_teacher_entropy" in rows[0]
    assert json.loads((tmp_path / "pretrain_config.json").read_text())["parts"] == ["scorer", "local_vit"]


def test_unbiased_pretraining_moves_the_scorer_through_the_selection(slides_dir, tmp_path):
    """The scorer's only path to the loss is the perturbed top-K: its weights must move."""
    result = pretrain(_config(slides_dir, tmp_path, mode="unbiased", image_size=(384, 512)))
    # the untrained scorer explores as in the scratch recipe: min-max scores, sigma 0.5 decayed to 0
    assert result.model.config.score_scaling == "minmax" and result.model.config.sigma == 0.5
    sigmas = [row["sigma"] for row in result.history]
    assert sigmas == pytest.approx([0.375, 0.125])  # 4 steps: sigma * (1 - step / 4) at steps 1 and 3
    saved = load_file(str(result.weights))
    assert sorted(read_pretrained_info(result.weights).parts) == ["global_encoder", "local_vit", "scorer"]
    fresh = _fresh(0).state_dict()
    for prefix in ("scorer.", "local_vit.", "global_encoder."):
        assert _changed(saved, fresh, prefix), prefix


def test_resumed_run_ends_with_the_same_weights(slides_dir, tmp_path):
    whole = pretrain(_config(slides_dir, tmp_path / "whole", part="local"))
    calls = {"n": 0}

    def stop_in_second_epoch() -> bool:
        calls["n"] += 1
        return calls["n"] > 2  # two steps per epoch: stop before the third

    first = pretrain(_config(slides_dir, tmp_path / "split", part="local"), should_stop=stop_in_second_epoch)
    assert first.stopped and len(first.history) == 1
    resumed = pretrain(_config(slides_dir, tmp_path / "split", part="local", resume=True))
    assert len(resumed.history) == 2
    a, b = load_file(str(whole.weights)), load_file(str(resumed.weights))
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ScoreNetInputError, match="changed: epochs"):
        pretrain(_config(slides_dir, tmp_path / "split", part="local", resume=True, epochs=3))


def test_stop_in_the_first_epoch_writes_nothing(slides_dir, tmp_path):
    result = pretrain(_config(slides_dir, tmp_path, part="scorer"), should_stop=lambda: True)
    assert result.stopped and result.history == []
    assert not result.weights.exists()


def test_collapse_stops_the_run_with_a_message(slides_dir, tmp_path):
    # a very hot teacher gives uniform targets: the collapse DINO's sharpening exists to prevent
    config = _config(
        slides_dir, tmp_path, part="local", epochs=4, teacher_temp=100.0, warmup_teacher_temp=100.0
    )
    result = pretrain(config)
    assert result.collapsed is not None and "uniform" in result.collapsed
    assert len(result.history) == 2  # detected after two epochs in a row, not run to the end
    assert result.weights.exists()  # the last finished epoch is kept


def test_bad_sources_fail_before_training(tmp_path, tiles_dir, slides_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ScoreNetInputError, match="empty"):
        PretrainConfig(sources=[str(empty)], out=tmp_path / "o").check()
    with pytest.raises(ScoreNetInputError, match="not found|does not exist|no such"):
        PretrainConfig(sources=[str(tmp_path / "missing.svs")], out=tmp_path / "o").check()
    with pytest.raises(ScoreNetInputError, match="mode"):
        PretrainConfig(sources=[str(tiles_dir)], out=tmp_path / "o", mode="simclr").check()
    with pytest.raises(ScoreNetInputError, match="hgsc_nest.jpg.*microns per pixel"):
        pretrain(
            PretrainConfig(sources=[str(tiles_dir / "hgsc_nest.jpg")], out=tmp_path / "o", mpp=0.5, **TINY)
        )


def test_cli_pretrain_reports_and_exits_1_on_collapse(slides_dir, tmp_path, capsys):
    from scorenet.cli import main

    base = ["pretrain", str(slides_dir / "cmu_small_region.svs"), "--out", str(tmp_path / "ok"),
            "--part", "local", "--epochs", "1", "--samples-per-epoch", "2", "--batch-size", "2",
            "--local-crops", "1"]  # fmt: skip
    small = [f"--set={k}={json.dumps(v)}" for k, v in SMALL.items()]
    assert main([*base, *small]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["epochs_done"] == 1 and summary["collapsed"] is None
    assert Path(summary["weights"]).is_file()
    hot = [*base[:3], str(tmp_path / "hot"), *base[4:]]
    hot[hot.index("--epochs") + 1] = "3"
    assert main([*hot, *small, "--teacher-temp", "100"]) == 1
    assert "collapsed" in capsys.readouterr().err


def test_unbiased_representation_reaches_the_scorer_only_through_the_selection(slides_dir):
    from scorenet.pretrain import encode
    from scorenet.slide import read_roi

    # 512 x 512: 16 regions for K = 4 (with K = N every selection is the same and carries no gradient)
    tile = read_roi(slides_dir / "tcga-cr-7395-01a-01-ts1.svs", 1200, 1000, 512, 512).image
    views = torch.from_numpy(tile).permute(2, 0, 1)[None].contiguous()
    model = _fresh(0).train()
    encode(model, "unbiased", views).square().sum().backward()
    scorer_grad = sum(float(p.grad.abs().sum()) for p in model.scorer.parameters() if p.grad is not None)
    assert scorer_grad > 0  # the perturbed top-K carries the loss back to the scorer
    model.zero_grad()
    encode(model, "unbiased", views, teacher=True).square().sum().backward()
    assert all(p.grad is None or float(p.grad.abs().sum()) == 0 for p in model.scorer.parameters())


def test_torchrun_two_cpu_processes(slides_dir, tmp_path):
    """Each process draws its own crops; the teachers stay identical (synchronised students, centres)."""
    import os
    import subprocess
    import sys

    torchrun = Path(sys.executable).with_name("torchrun")
    config = _config(slides_dir, tmp_path / "ddp", part="local", epochs=1, samples_per_epoch=8)
    fields = {k: v for k, v in config.to_json().items() if k not in ("base_lr", "parts")}
    script = (
        "import json, torch, torch.distributed as dist\n"
        "from scorenet.pretrain import PretrainConfig, pretrain\n"
        f"r = pretrain(PretrainConfig(**{fields!r}))\n"
        "total = sum(float(p.double().sum()) for p in r.model.state_dict().values())\n"
        "report = {'rank': dist.get_rank(), 'world': dist.get_world_size(), 'teacher': total,"
        " 'loss': r.history[-1]['loss']}\n"
        f"open(f'{tmp_path}/rank{{dist.get_rank()}}.json', 'w').write(json.dumps(report))\n"
    )
    (tmp_path / "ddp.py").write_text(script)
    done = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node=2", str(tmp_path / "ddp.py")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    reports = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert {r["world"] for r in reports} == {2}
    assert reports[0]["loss"] != reports[1]["loss"]  # each process saw its own crops
    assert reports[0]["teacher"] == reports[1]["teacher"]
    assert read_pretrained_info(tmp_path / "ddp" / "pretrained.safetensors").metadata["epoch"] == 1


def test_the_cli_choices_are_the_library_choices():
    from scorenet import cli_pretrain, pretrain, tissue

    assert cli_pretrain.MODES == pretrain.PRETRAIN_MODES and cli_pretrain.PARTS == pretrain.PRETRAIN_PARTS
    assert cli_pretrain.TISSUE_METHODS == tissue.TISSUE_METHODS

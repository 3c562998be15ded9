"""The bench command runs tiny configurations end to end and writes valid JSON (no timing asserts)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scorenet.bench import end_to_end, main, throughput
from scorenet.bench.report import format_table


def test_throughput_quick_writes_json_with_all_models(tmp_path, data_root, capsys):
    argv = ["--suite", "throughput", "--quick", "--image-size", "256x384", "--batch-sizes", "1,2"]
    code = main([*argv, "--out", str(tmp_path)])
    assert code == 0
    result = json.loads((tmp_path / "throughput.json").read_text())
    assert result["suite"] == "throughput" and result["quick"] is True
    assert "--quick" in result["command"]
    env = result["environment"]
    assert env["device"] == "cpu" and env["torch"] and env["timm"] and env["cpu_model"]
    assert isinstance(env["machine_shared"], bool)
    rows = result["results"]
    expected = {(m, b) for m in throughput.MODELS for b in (1, 2)}
    assert {(r["model"], r["batch_size"]) for r in rows} == expected
    assert all(r["images_per_s"] > 0 and r["peak_memory_mb"] >= 0 for r in rows)
    measured = result["ratios"]["measured"]
    best = result["ratios"]["best_images_per_s"]
    assert measured["scorenet_over_vit"] == pytest.approx(best["scorenet"] / best["vit"])
    assert result["ratios"]["paper"]["scorenet_over_vit"] == pytest.approx(335 / 3.8)
    # the paired rounds time each model at its best batch of the sweep, back to back
    paired = result["paired_scorenet_over_swin"]
    best_batch = {
        m: max((r for r in rows if r["model"] == m), key=lambda r: r["images_per_s"])["batch_size"]
        for m in ("scorenet", "swin")
    }
    assert paired["batch_sizes"] == best_batch and len(paired["rounds"]) == 1
    (only,) = paired["rounds"]
    assert only["ratio"] == pytest.approx(only["scorenet_images_per_s"] / only["swin_images_per_s"])
    assert paired["median_ratio"] == only["ratio"]
    assert "images_per_s" in capsys.readouterr().out


def test_baselines_match_the_paper_configuration():
    # App. B.1: Swin about 1.77 M parameters; the ViT shares ScoreNet's 96 / 8 / 4 / 2 layout
    swin = throughput.build("swin", num_classes=4)
    assert sum(p.numel() for p in swin.parameters()) == pytest.approx(1.77e6, rel=0.01)
    vit = throughput.build("vit", num_classes=4).model
    assert vit.patch_embed.patch_size == (16, 16) and len(vit.blocks) == 8 and vit.embed_dim == 96


def test_end_to_end_times_every_stage_of_a_real_slide_roi(tmp_path, data_root):
    assert main(["--suite", "end-to-end", "--quick", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "end-to-end.json").read_text())
    assert [r["stage"] for r in result["results"]] == list(end_to_end.STAGES)
    assert all(r["median_ms"] >= 0 for r in result["results"])
    assert sum(r["median_ms"] for r in result["results"]) <= result["total_median_ms"] * 1.01
    assert result["slowest_stage"] in end_to_end.STAGES
    assert result["input_shape"] == [1, 3, 1536, 2048]


def test_bad_options_are_rejected(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--suite", "throughput", "--image-size", "big", "--out", str(tmp_path)])
    assert main(["--suite", "throughput", "--models", "resnet", "--out", str(tmp_path)]) == 2
    assert "resnet" in capsys.readouterr().err
    assert not (tmp_path / "throughput.json").exists()
    # a device this machine lacks is refused before anything runs, naming the device
    assert main(["--suite", "end-to-end", "--device", "cuda:99", "--out", str(tmp_path)]) == 2
    assert "cuda:99" in capsys.readouterr().err
    assert not (tmp_path / "end-to-end.json").exists()


def test_format_table_aligns_columns():
    table = format_table([{"a": 1, "b": 0.123456}, {"a": 100, "b": None}], ["a", "b"])
    lines = table.splitlines()
    assert lines[0].split() == ["a", "b"] and lines[2].split() == ["1", "0.123"]
    assert lines[3].split() == ["100"]
    assert len({line.index(line.split()[-1]) for line in lines[:3]}) == 1


def test_region_metrics_score_selection_against_the_planted_mask():
    from scorenet.bench.learning import region_metrics, region_planted_fraction

    mask = np.zeros((256, 512), dtype=bool)  # a 2 x 4 grid of 128-pixel regions
    mask[0:128, 128:256] = True  # region 1 fully planted
    mask[128:160, 384:512] = True  # region 7 a quarter planted
    mask[0:16, 0:16] = True  # region 0 barely touched
    fraction = region_planted_fraction(mask, (2, 4))
    assert fraction[0, 1] == 1.0 and fraction[1, 3] == 0.25 and 0 < fraction[0, 0] < 0.25
    distribution = np.full((2, 4), 0.1)
    distribution[0, 1], distribution[1, 3] = 0.3, 0.2
    in_planted, auc = region_metrics(distribution / distribution.sum(), np.array([1, 2, 7]), mask)
    assert in_planted == pytest.approx(2 / 3)
    assert auc == 1.0
    _, reversed_auc = region_metrics(-distribution, np.array([0]), mask)
    assert reversed_auc == 0.0
    assert region_metrics(distribution, np.array([0]), np.zeros_like(mask)) is None


def test_seed_zero_is_accepted_and_negative_values_are_not():
    import argparse

    from scorenet.bench import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args(["--seeds", "0,1", "--fractions", "20,100"]).seeds == [0, 1]
    with pytest.raises(SystemExit):
        parser.parse_args(["--seeds", "-1"])
    with pytest.raises(SystemExit):
        parser.parse_args(["--fractions", "0"])


def test_resume_reuses_finished_runs_only_when_their_settings_match(tmp_path, monkeypatch):
    from scorenet.bench import learning

    trained = []

    def fake_train(task_dir, run_dir, mix, fraction, seed, options):
        trained.append((mix, fraction, seed))
        run_dir.mkdir(parents=True)
        return run_dir / "best.safetensors"

    metrics = {"weighted_f1": 0.5, "topk_in_planted": 0.25, "auc": 0.75, "max_over_min": 1.5}
    # the planted task generator is exercised in test_planted; here only the grid bookkeeping
    task_dir = tmp_path / "planted-kind-train4-val2-test2-seed0"
    task_dir.mkdir()
    (task_dir / "planted.json").write_text("{}")
    monkeypatch.setattr(learning, "train_run", fake_train)
    monkeypatch.setattr(learning, "evaluate_run", lambda checkpoint, task, device: dict(metrics))
    monkeypatch.setattr(learning, "chance_topk_in_planted", lambda task, grid: 0.15)
    options = learning.LearningOptions(
        work_dir=tmp_path,
        mixes=("none", "cutmix"),
        fractions=(100,),
        seeds=(0,),
        resume=True,
        counts={"train": 4, "val": 2, "test": 2},
    )
    first = learning.run_suite(options)
    assert trained == [("none", 100, 0), ("cutmix", 100, 0)]
    second = learning.run_suite(options)
    assert trained == [("none", 100, 0), ("cutmix", 100, 0)]  # nothing trained again
    assert second["runs"] == first["runs"]
    options.epochs += 1  # other settings: the records no longer apply
    learning.run_suite(options)
    assert len(trained) == 4
    options.resume = False
    learning.run_suite(options)
    assert len(trained) == 6
    options.collect, options.seeds = True, (0, 1)  # report what is finished, train nothing
    collected = learning.run_suite(options)
    assert len(trained) == 6 and len(collected["runs"]) == 2
    assert collected["missing_runs"] == [
        {"mix": "none", "fraction": 100, "seed": 1},
        {"mix": "cutmix", "fraction": 100, "seed": 1},
    ]


def test_chance_level_is_what_random_selections_score(tmp_path, data_root):
    from scorenet.bench import learning, planted

    task = planted.write_image_folder(tmp_path / "task", {"test": 6}, seed=3, root=data_root)
    grid = (6, 8)
    chance = learning.chance_topk_in_planted(task, grid)
    meta = json.loads((task / "planted.json").read_text())
    rng = np.random.default_rng(0)
    scores = []
    for record in meta["images"]["test"]:
        mask = planted.read_mask(task / record["mask"])
        for _ in range(400):
            found = learning.region_metrics(rng.random(grid), rng.permutation(48)[:8], mask)
            if found is not None:
                scores.append(found[0])
    assert 0 < chance < 1
    assert np.mean(scores) == pytest.approx(chance, abs=0.01)

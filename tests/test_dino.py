"""DINO's pieces against their definitions (Caron et al. 2021)."""

from __future__ import annotations

import math

import pytest
import torch
from scorenet.dino import (
    DINOHead,
    cosine_schedule,
    detect_collapse,
    dino_loss,
    ema_update,
    entropy_stats,
    teacher_probabilities,
    teacher_temperature,
    updated_center,
)
from torch import nn


def test_loss_is_the_mean_cross_entropy_over_pairs_of_different_views():
    g = torch.Generator().manual_seed(0)
    students = [torch.randn(5, 16, generator=g) for _ in range(4)]
    teachers = [torch.randn(5, 16, generator=g).softmax(-1) for _ in range(2)]
    expected, pairs = 0.0, 0
    for t in range(2):
        for s in range(4):
            if s != t:
                log_p = students[s] / 0.1 - torch.logsumexp(students[s] / 0.1, dim=-1, keepdim=True)
                expected += float(-(teachers[t] * log_p).sum(-1).mean())
                pairs += 1
    assert pairs == 6
    assert float(dino_loss(students, teachers, 0.1)) == pytest.approx(expected / pairs, rel=1e-5)


def test_loss_pulls_the_student_towards_the_teacher():
    g = torch.Generator().manual_seed(1)
    student = torch.randn(3, 8, generator=g, requires_grad=True)
    target = torch.randn(3, 8, generator=g).softmax(-1)
    optimizer = torch.optim.SGD([student], lr=0.05)
    before = float(dino_loss([student, student], [target], 0.1).detach())
    for _ in range(50):
        optimizer.zero_grad()
        dino_loss([student, student], [target], 0.1).backward()
        optimizer.step()
    after = float(dino_loss([student, student], [target], 0.1).detach())
    entropy = float(-(target * target.log()).sum(-1).mean())  # the cross-entropy's lower bound
    assert after < before and after >= entropy - 1e-5


def test_teacher_targets_are_centred_and_sharpened():
    logits = torch.tensor([[2.0, 1.0, 0.0]])
    center = torch.tensor([[1.0, 0.0, 0.0]])
    probs = teacher_probabilities(logits, center, 0.5)
    assert torch.allclose(probs, torch.softmax(torch.tensor([[2.0, 2.0, 0.0]]), -1))
    assert float(entropy_stats(teacher_probabilities(logits, center, 0.04))["teacher_entropy"]) < float(
        entropy_stats(probs)["teacher_entropy"]
    )


def test_center_is_an_ema_of_the_batch_mean():
    center = torch.zeros(1, 2)
    logits = torch.tensor([[1.0, 3.0], [3.0, 5.0]])
    assert torch.allclose(updated_center(center, logits, 0.9), torch.tensor([[0.2, 0.4]]))


def test_schedules_follow_dino():
    values = cosine_schedule(1.0, 0.1, 100, warmup_steps=10)
    assert len(values) == 100
    assert values[0] == 0.0 and values[10] == pytest.approx(1.0)
    assert values[-1] == pytest.approx(0.1, abs=1e-3)
    assert all(a >= b for a, b in zip(values[10:], values[11:], strict=False))  # decreasing after warm-up
    momentum = cosine_schedule(0.996, 1.0, 50)
    assert momentum[0] == pytest.approx(0.996) and momentum[-1] == pytest.approx(1.0, abs=1e-5)
    temps = [teacher_temperature(e, 30, 0.04, 0.07) for e in range(40)]
    assert temps[0] == pytest.approx(0.04) and temps[29] == pytest.approx(0.07) and temps[39] == 0.07
    assert teacher_temperature(0, 0, 0.04, 0.07) == 0.07


def test_ema_update():
    student, teacher = nn.Linear(2, 2), nn.Linear(2, 2)
    before = teacher.weight.detach().clone()
    ema_update(teacher, student, 0.75)
    assert torch.allclose(teacher.weight, 0.75 * before + 0.25 * student.weight.detach())
    ema_update(teacher, student, 0.0)
    assert torch.equal(teacher.weight, student.weight)


def test_entropy_stats_tell_the_two_collapses_apart():
    k = 16
    uniform = entropy_stats(torch.full((8, k), 1 / k))
    assert uniform["teacher_entropy"] == pytest.approx(math.log(k)) and uniform["teacher_batch_entropy"] == (
        pytest.approx(math.log(k))
    )
    same = entropy_stats(torch.eye(k)[[3] * 8])
    assert same["teacher_entropy"] == pytest.approx(0, abs=1e-6) and same["teacher_batch_entropy"] < 1e-6
    spread = entropy_stats(torch.eye(k)[:8])
    assert spread["teacher_entropy"] == pytest.approx(0, abs=1e-6)
    assert spread["teacher_batch_entropy"] == pytest.approx(math.log(8))


def test_collapse_detection():
    top = math.log(1024)
    healthy = {"teacher_entropy": 0.5 * top, "teacher_batch_entropy": 0.9 * top}
    uniform = {"teacher_entropy": 0.995 * top, "teacher_batch_entropy": top}
    constant = {"teacher_entropy": 0.001, "teacher_batch_entropy": 0.001}
    assert detect_collapse([healthy] * 5, 1024) is None
    assert detect_collapse([healthy, uniform], 1024) is None  # one epoch is not yet a collapse
    assert "uniform" in detect_collapse([healthy, uniform, uniform], 1024)
    assert "same output" in detect_collapse([constant, constant], 1024)


def test_head_shapes_and_fixed_last_layer_norm():
    head = DINOHead(96)
    out = head(torch.randn(4, 96))
    assert out.shape == (4, 1024)
    assert head.mlp[-1].out_features == 128 and head.mlp[0].out_features == 1024
    g = head.last_layer.parametrizations.weight.original0
    assert not g.requires_grad and torch.all(g == 1)
    # the weight-normalised rows have unit norm, so every logit is a cosine in [-1, 1]
    assert out.abs().max() <= 1 + 1e-5

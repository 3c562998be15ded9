"""DINO self-distillation (Caron et al. 2021): projection head, loss, teacher updates and schedules.

The projection head follows ScoreNet's pre-training (paper App. B.2: hidden 1024, bottleneck 128,
out 1024, weight-normalised last layer); everything else keeps DINO's defaults. Pure tensor functions
apart from :class:`DINOHead`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .layers.init import init_linear


class DINOHead(nn.Module):
    """MLP projection (GELU) to an L2-normalised bottleneck, then a weight-normalised linear layer."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int = 1024,
        hidden_dim: int = 1024,
        bottleneck_dim: int = 128,
        num_layers: int = 3,
        norm_last_layer: bool = True,
    ) -> None:
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [bottleneck_dim]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            layers.append(nn.Linear(a, b))
            if i < len(dims) - 2:
                layers.append(nn.GELU())
        self.mlp = nn.Sequential(*layers)
        self.apply(init_linear)
        self.last_layer = nn.utils.parametrizations.weight_norm(
            nn.Linear(bottleneck_dim, out_dim, bias=False)
        )
        self.last_layer.parametrizations.weight.original0.data.fill_(1.0)
        # DINO fixes the weight norm's magnitude: it keeps the training stable for small batches
        self.last_layer.parametrizations.weight.original0.requires_grad = not norm_last_layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_layer(F.normalize(self.mlp(x), dim=-1, p=2))


def cosine_schedule(
    base: float, final: float, total_steps: int, warmup_steps: int = 0, warmup_start: float = 0.0
) -> list[float]:
    """Per-step values: linear from ``warmup_start`` to ``base`` over ``warmup_steps``, then a cosine
    from ``base`` to ``final`` (DINO's learning-rate, weight-decay and teacher-momentum schedules)."""
    warmup_steps = min(warmup_steps, total_steps)
    warm = [warmup_start + (base - warmup_start) * i / warmup_steps for i in range(warmup_steps)]
    rest = total_steps - warmup_steps
    cos = [final + 0.5 * (base - final) * (1 + math.cos(math.pi * i / max(1, rest))) for i in range(rest)]
    return warm + cos


def teacher_temperature(epoch: int, warmup_epochs: int, start: float, end: float) -> float:
    """DINO's teacher temperature: linear from ``start`` (first epoch) to ``end`` (last warm-up epoch)."""
    if epoch >= warmup_epochs - 1:
        return end
    return start + (end - start) * epoch / (warmup_epochs - 1)


def teacher_probabilities(logits: torch.Tensor, center: torch.Tensor, temperature: float) -> torch.Tensor:
    """Centred, sharpened teacher targets (no gradient)."""
    return F.softmax((logits.detach().float() - center) / temperature, dim=-1)


def dino_loss(
    student_logits: Sequence[torch.Tensor], teacher_probs: Sequence[torch.Tensor], student_temp: float
) -> torch.Tensor:
    """Mean cross-entropy between every teacher view and every student view of another crop.

    View i of the student and view i of the teacher are the same crop and are skipped, as in DINO;
    the teacher sees the global views only, so ``len(teacher_probs) <= len(student_logits)``.
    """
    total, pairs = student_logits[0].new_zeros(()), 0
    for t, q in enumerate(teacher_probs):
        for s, logits in enumerate(student_logits):
            if s == t:
                continue
            log_p = F.log_softmax(logits.float() / student_temp, dim=-1)
            total = total - (q * log_p).sum(dim=-1).mean()
            pairs += 1
    return total / max(1, pairs)


@torch.no_grad()
def updated_center(center: torch.Tensor, teacher_logits: torch.Tensor, momentum: float) -> torch.Tensor:
    """EMA of the teacher's mean output over the batch (all ranks under DDP)."""
    batch_sum = teacher_logits.detach().float().sum(dim=0, keepdim=True)
    count = torch.tensor(float(teacher_logits.shape[0]), device=teacher_logits.device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(batch_sum)
        dist.all_reduce(count)
    return center * momentum + batch_sum / count * (1 - momentum)


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """teacher <- momentum * teacher + (1 - momentum) * student, parameter by parameter."""
    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
        t.mul_(momentum).add_(s.detach(), alpha=1 - momentum)


def entropy_stats(probs: torch.Tensor) -> dict[str, float]:
    """Collapse indicators of teacher targets (B, K), in nats.

    ``teacher_entropy``: mean entropy of each sample's target (log K when every target is uniform);
    ``teacher_batch_entropy``: entropy of the batch-mean target (0 when every sample puts its mass on
    the same dimension).
    """
    p = probs.float().clamp_min(1e-12)
    mean = probs.float().mean(dim=0).clamp_min(1e-12)
    return {
        "teacher_entropy": float(-(p * p.log()).sum(dim=-1).mean()),
        "teacher_batch_entropy": float(-(mean * mean.log()).sum()),
    }


def detect_collapse(
    history: Sequence[dict[str, Any]],
    out_dim: int,
    patience: int = 2,
    uniform: float = 0.98,
    constant: float = 0.02,
) -> str | None:
    """A message when the teacher has collapsed for ``patience`` epochs in a row, else None.

    Uniform collapse: every target's entropy above ``uniform`` x log K (the teacher says nothing).
    Constant collapse: the batch-mean target's entropy below ``constant`` x log K (every image gets the
    same output). Both are the failure modes that DINO's centring and sharpening balance.
    """
    if len(history) < patience:
        return None
    top = math.log(out_dim)
    recent = history[-patience:]
    if all(row["teacher_entropy"] > uniform * top for row in recent):
        return (
            f"pre-training collapsed: the teacher's output has been uniform for {patience} epochs "
            f"(entropy {recent[-1]['teacher_entropy']:.3f} of at most {top:.3f} nats); "
            "try a lower teacher temperature or learning rate"
        )
    if all(row["teacher_batch_entropy"] < constant * top for row in recent):
        return (
            f"pre-training collapsed: the teacher gives every image the same output for {patience} epochs "
            f"(entropy of the mean output {recent[-1]['teacher_batch_entropy']:.3f} nats); "
            "try a higher centre momentum or a lower learning rate"
        )
    return None

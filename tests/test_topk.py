"""Perturbed top-K: values and gradients against closed forms and finite differences."""

from __future__ import annotations

import math

import pytest
import torch
from scorenet.topk import hard_topk, perturbed_topk


def _normal_pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _normal_cdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def test_hard_topk_returns_the_largest_scores_sorted_by_position():
    scores = torch.randn(4, 30, generator=torch.Generator().manual_seed(0))
    indices = hard_topk(scores, 7)
    assert indices.shape == (4, 7)
    assert torch.all(indices[:, 1:] > indices[:, :-1])
    expected = scores.topk(7, dim=-1).indices.sort(dim=-1).values
    assert torch.equal(indices, expected)


def test_soft_indicators_are_distributions_over_positions():
    scores = torch.randn(3, 12, generator=torch.Generator().manual_seed(1))
    y = perturbed_topk(scores, 4, 0.3, 200, generator=torch.Generator().manual_seed(2))
    assert y.shape == (3, 12, 4)
    torch.testing.assert_close(y.sum(1), torch.ones(3, 4))  # each column is one index per sample
    assert torch.all(y.sum(2) <= 1 + 1e-6)  # a position fills at most one slot per sample
    # tiny noise recovers the hard top-K
    y_hard = perturbed_topk(scores, 4, 1e-6, 5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(y_hard.argmax(1), hard_topk(scores, 4))


def test_same_generator_seed_gives_same_indicators():
    scores = torch.randn(2, 10)
    a = perturbed_topk(scores, 3, 0.5, 50, generator=torch.Generator().manual_seed(7))
    b = perturbed_topk(scores, 3, 0.5, 50, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


@pytest.mark.parametrize("published", [False, True])
def test_two_scores_top1_matches_the_closed_form(published):
    # Y_1 = P(s1 + sigma z1 > s2 + sigma z2) = Phi((s1 - s2) / (sigma sqrt 2))
    sigma, s1, s2 = 0.5, 0.3, 0.0
    scores = torch.tensor([[s1, s2]], dtype=torch.float64, requires_grad=True)
    y = perturbed_topk(
        scores, 1, sigma, 400_000, generator=torch.Generator().manual_seed(0), published_backward=published
    )
    c = (s1 - s2) / (sigma * math.sqrt(2))
    assert y[0, 0, 0].item() == pytest.approx(_normal_cdf(c), abs=3e-3)
    y[0, 0, 0].backward()
    slope = _normal_pdf(c) / (sigma * math.sqrt(2))
    assert scores.grad[0, 0].item() == pytest.approx(slope, abs=0.02)
    if published:
        # the published estimator ignores how s2 moves Y_1 (a cross term): its estimate is zero
        assert scores.grad[0, 1].item() == 0.0
    else:
        assert scores.grad[0, 1].item() == pytest.approx(-slope, abs=0.02)


def _smoothed_objective(scores, weights, k, sigma, num_samples, seed):
    # the same seed gives the same noise: common random numbers for finite differences
    y = perturbed_topk(scores, k, sigma, num_samples, generator=torch.Generator().manual_seed(seed))
    return (y * weights).sum()


def _gradient_relative_error(published: bool) -> float:
    n, k, sigma, num_samples, eps = 6, 3, 0.5, 300_000, 0.05
    gen = torch.Generator().manual_seed(11)
    scores = torch.randn(1, n, generator=gen, dtype=torch.float64)
    weights = torch.randn(1, n, k, generator=gen, dtype=torch.float64)
    leaf = scores.clone().requires_grad_(True)
    y = perturbed_topk(
        leaf, k, sigma, num_samples, generator=torch.Generator().manual_seed(5), published_backward=published
    )
    (y * weights).sum().backward()
    # finite differences along every basis direction: the full Jacobian-vector products with e_n
    fd = torch.zeros(n, dtype=torch.float64)
    for i in range(n):
        step = torch.zeros_like(scores)
        step[0, i] = eps
        up = _smoothed_objective(scores + step, weights, k, sigma, num_samples, seed=99)
        down = _smoothed_objective(scores - step, weights, k, sigma, num_samples, seed=99)
        fd[i] = (up - down) / (2 * eps)
    return float((leaf.grad[0] - fd).norm() / fd.norm())


def test_exact_backward_matches_finite_differences():
    assert _gradient_relative_error(published=False) < 0.08


def test_published_backward_fails_finite_differences():
    assert _gradient_relative_error(published=True) > 0.3


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="k = 5"):
        perturbed_topk(torch.zeros(1, 4), 5, 0.1, 10)
    with pytest.raises(ValueError, match="sigma"):
        perturbed_topk(torch.zeros(1, 4), 2, 0.0, 10)


def test_published_backward_equals_its_dense_formula():
    # grad[b, n] = sum_{s,k} G[b, n, k] Y_s[b, n, k] Z_s[b, n] / (S sigma), from dense one-hot samples
    b, n, k, num_samples, sigma = 2, 9, 3, 64, 0.3
    scores = torch.randn(b, n, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(b, n, k, dtype=torch.float64)
    y = perturbed_topk(
        scores, k, sigma, num_samples, generator=torch.Generator().manual_seed(4), published_backward=True
    )
    (y * upstream).sum().backward()
    noise = torch.randn((b, num_samples, n), generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    samples = torch.nn.functional.one_hot(hard_topk(scores.detach()[:, None] + sigma * noise, k), n)
    samples = samples.transpose(2, 3).double()  # (B, S, N, K)
    torch.testing.assert_close(samples.mean(1), y.detach())
    expected = torch.einsum("bnk,bsnk,bsn->bn", upstream, samples, noise) / (num_samples * sigma)
    torch.testing.assert_close(scores.grad, expected)

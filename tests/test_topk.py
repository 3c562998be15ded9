"""Perturbed top-K: values and gradients against closed forms and finite differences."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scorenet.topk import ESTIMATORS, hard_topk, perturbed_topk


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


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_two_scores_top1_matches_the_closed_form(estimator):
    # Y_1 = P(s1 + sigma z1 > s2 + sigma z2) = Phi((s1 - s2) / (sigma sqrt 2))
    sigma, s1, s2 = 0.5, 0.3, 0.0
    scores = torch.tensor([[s1, s2]], dtype=torch.float64, requires_grad=True)
    y = perturbed_topk(
        scores, 1, sigma, 400_000, generator=torch.Generator().manual_seed(0), estimator=estimator
    )
    c = (s1 - s2) / (sigma * math.sqrt(2))
    assert y[0, 0, 0].item() == pytest.approx(_normal_cdf(c), abs=3e-3)
    y[0, 0, 0].backward()
    slope = _normal_pdf(c) / (sigma * math.sqrt(2))
    assert scores.grad[0, 0].item() == pytest.approx(slope, abs=0.02)
    if estimator == "published":
        # the published estimator ignores how s2 moves Y_1 (a cross term): its estimate is zero
        assert scores.grad[0, 1].item() == 0.0
    else:
        assert scores.grad[0, 1].item() == pytest.approx(-slope, abs=0.02)


def _smoothed_objective(scores, weights, k, sigma, num_samples, seed):
    # the same seed gives the same noise: common random numbers for finite differences
    y = perturbed_topk(scores, k, sigma, num_samples, generator=torch.Generator().manual_seed(seed))
    return (y * weights).sum()


def _gradient_relative_error(estimator: str) -> float:
    n, k, sigma, num_samples, eps = 8, 3, 0.5, 300_000, 0.05
    gen = torch.Generator().manual_seed(11)
    scores = torch.randn(1, n, generator=gen, dtype=torch.float64)
    weights = torch.randn(1, n, k, generator=gen, dtype=torch.float64)
    leaf = scores.clone().requires_grad_(True)
    y = perturbed_topk(
        leaf, k, sigma, num_samples, generator=torch.Generator().manual_seed(5), estimator=estimator
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


@pytest.mark.parametrize("estimator", ["loo", "antithetic", "plain"])
def test_unbiased_estimators_match_finite_differences(estimator):
    assert _gradient_relative_error(estimator) < 0.08


def test_published_backward_fails_finite_differences():
    assert _gradient_relative_error("published") > 0.3


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
        scores, k, sigma, num_samples, generator=torch.Generator().manual_seed(4), estimator="published"
    )
    (y * upstream).sum().backward()
    noise = torch.randn((b, num_samples, n), generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    samples = torch.nn.functional.one_hot(hard_topk(scores.detach()[:, None] + sigma * noise, k), n)
    samples = samples.transpose(2, 3).double()  # (B, S, N, K)
    torch.testing.assert_close(samples.mean(1), y.detach())
    expected = torch.einsum("bnk,bsnk,bsn->bn", upstream, samples, noise) / (num_samples * sigma)
    torch.testing.assert_close(scores.grad, expected)


def _min_probabilities(scores: list[float], sigma: float) -> np.ndarray:
    """P(i is the smallest of s_j + sigma Z_j), j = 0..2, by quadrature (exact to ~1e-10)."""
    x = np.linspace(-12.0, 12.0, 48_001)
    out = []
    for i in range(3):
        density = np.exp(-0.5 * x**2) / np.sqrt(2 * np.pi)  # z_i = x
        value = scores[i] + sigma * x
        survive = np.prod([norm_sf((value - scores[j]) / sigma) for j in range(3) if j != i], axis=0)
        out.append(np.trapezoid(density * survive, x))
    return np.array(out)


def norm_sf(x: np.ndarray) -> np.ndarray:
    return 0.5 * np.vectorize(math.erfc)(x / math.sqrt(2))


def _quadrature_objective(scores: list[float], weights: np.ndarray, sigma: float) -> float:
    """<W, Y_sigma> for n = 3, k = 2: the pair is all but the minimum, slots in index order."""
    p = _min_probabilities(scores, sigma)
    y = np.zeros((3, 2))
    y[0, 0], y[1, 0] = 1 - p[0], p[0]  # slot 0 is index 0 unless 0 is the minimum
    y[1, 1], y[2, 1] = p[2], 1 - p[2]  # slot 1 is index 2 unless 2 is the minimum
    return float((weights * y).sum())


@pytest.mark.parametrize("estimator", ["loo", "antithetic"])
def test_n3_k2_value_and_gradient_match_quadrature(estimator):
    sigma, scores = 0.4, [0.2, -0.1, 0.05]
    weights = np.array([[0.7, -0.3], [0.2, 1.1], [-0.5, 0.4]])
    leaf = torch.tensor([scores], dtype=torch.float64, requires_grad=True)
    y = perturbed_topk(
        leaf, 2, sigma, 400_000, generator=torch.Generator().manual_seed(3), estimator=estimator
    )
    value = (y[0] * torch.from_numpy(weights)).sum()
    value.backward()
    assert value.item() == pytest.approx(_quadrature_objective(scores, weights, sigma), abs=3e-3)
    eps = 1e-4
    expected = [
        (_quadrature_objective([s + eps * (j == i) for j, s in enumerate(scores)], weights, sigma)
         - _quadrature_objective([s - eps * (j == i) for j, s in enumerate(scores)], weights, sigma))
        / (2 * eps)
        for i in range(3)
    ]  # fmt: skip
    np.testing.assert_allclose(leaf.grad[0].numpy(), expected, atol=0.02)


def _estimate(scores, upstream, estimator, num_samples, seed):
    leaf = scores.clone().requires_grad_(True)
    y = perturbed_topk(
        leaf, 20, 0.05, num_samples, generator=torch.Generator().manual_seed(seed), estimator=estimator
    )
    (y * upstream).sum().backward()
    return leaf.grad[0]


def _relative_errors(upstream_shape: tuple[int, int]) -> dict[str, float]:
    """Mean relative error over 3 seeds at N = 192, K = 20, S = 500, sigma = 0.05, against a
    200,000-sample leave-one-out reference; the upstream gradient 0.5 + 0.1 randn shares 0.5."""
    gen = torch.Generator().manual_seed(0)
    scores = torch.rand(1, 192, generator=gen, dtype=torch.float64)  # min-max scaled scores
    upstream = (0.5 + 0.1 * torch.randn(1, 192, *upstream_shape, generator=gen, dtype=torch.float64)).expand(
        1, 192, 20
    )
    reference = sum(_estimate(scores, upstream, "loo", 20_000, 100 + i) for i in range(10)) / 10
    errors = {}
    for name in ("plain", "loo", "antithetic"):
        estimates = [_estimate(scores, upstream, name, 500, seed) for seed in range(3)]
        errors[name] = float(np.mean([((e - reference).norm() / reference.norm()).item() for e in estimates]))
    return errors


def test_baselines_cut_the_variance_at_scorenet_size():
    # an upstream gradient that varies by region (the pixels of region n), the same in every slot
    errors = _relative_errors((1,))
    assert errors["loo"] < 1 and errors["antithetic"] < 1.2
    assert errors["plain"] > 10 * errors["loo"]
    # independent noise in every (region, slot) entry: harder, still at least 10 times below plain
    errors = _relative_errors((20,))
    assert errors["plain"] > 10 * errors["loo"]
    assert errors["plain"] > 10 * errors["antithetic"]


@pytest.mark.parametrize("estimator", ["loo", "antithetic"])
def test_gradient_sums_to_zero_over_the_scores(estimator):
    # moving every score by the same amount leaves the top-K unchanged
    scores = torch.randn(3, 40, dtype=torch.float64, requires_grad=True)
    y = perturbed_topk(scores, 5, 0.3, 64, generator=torch.Generator().manual_seed(1), estimator=estimator)
    (y * torch.randn(3, 40, 5, dtype=torch.float64)).sum().backward()
    torch.testing.assert_close(scores.grad.sum(-1), torch.zeros(3, dtype=torch.float64), atol=1e-12, rtol=0)


def test_antithetic_noise_comes_in_opposite_pairs():
    # with noise +Z and -Z around equal scores, each index is picked exactly as often as its mirror
    scores = torch.zeros(1, 2, dtype=torch.float64)
    y = perturbed_topk(scores, 1, 1.0, 10, generator=torch.Generator().manual_seed(0), estimator="antithetic")
    torch.testing.assert_close(y[0, :, 0], torch.tensor([0.5, 0.5], dtype=torch.float64))


def test_rejects_unknown_or_unusable_estimators():
    with pytest.raises(ValueError, match="unknown estimator"):
        perturbed_topk(torch.zeros(1, 4), 2, 0.1, 10, estimator="reinforce")
    with pytest.raises(ValueError, match="even"):
        perturbed_topk(torch.zeros(1, 4), 2, 0.1, 9, estimator="antithetic")
    with pytest.raises(ValueError, match="leave-one-out"):
        perturbed_topk(torch.zeros(1, 4), 2, 0.1, 1)

"""Hard and perturbed (differentiable) top-K selection of patch indices.

The perturbed top-K (Berthet et al. 2020, used for patch selection by Cordonnier et al. 2021) replaces
the one-hot top-K indicators ``Y(s)`` by their expectation under Gaussian noise,
``Y_sigma(s) = E_Z[Y(s + sigma Z)]``, which is smooth in the scores ``s``. Its exact gradient is
``dY_sigma / ds = E_Z[Y(s + sigma Z) Z^T] / sigma``, so for an upstream gradient ``G`` the plain
Monte-Carlo estimate is

    grad_s[b, n] = 1 / (sigma S) * sum_s <G[b], Y_s[b]> Z_s[b, n]

Every (region, slot) entry of ``G`` couples to the noise of every score. Estimators (``estimator=``):

- ``"loo"`` (default): each sample's ``<G, Y_s>`` minus the mean over the *other* samples (a
  leave-one-out control variate). Unbiased, because ``Z_s`` is independent of the other samples and
  ``E[Z] = 0``; it removes the part of ``<G, Y_s>`` shared by all samples (in ScoreNet, the pixels all
  regions have in common), which otherwise dominates the estimate.
- ``"antithetic"``: noise drawn in ``+Z / -Z`` pairs (forward and backward), so a shared component
  cancels within each pair.
- ``"plain"``: the formula above, for comparison.
- ``"published"``: the widely used implementation, which keeps only ``Z_s[b, n]`` for the entries of
  row ``n`` (``grad_s[b, n] = 1/(sigma S) sum_{s,k} G[b, n, k] Y_s[b, n, k] Z_s[b, n]``), dropping the
  cross terms: biased, kept to reproduce published results.

The top-K is unchanged when every score moves by the same amount, so the exact gradient sums to zero
over the N scores; ``"loo"`` and ``"antithetic"`` project their estimate onto that subspace (a linear
map, so they stay unbiased), which removes the variance along the all-ones direction.
"""

from __future__ import annotations

import torch

ESTIMATORS = ("loo", "antithetic", "plain", "published")


def hard_topk(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (B, K) of the k largest scores per row, sorted by position (not by score)."""
    return scores.topk(k, dim=-1, sorted=False).indices.sort(dim=-1).values


def _indicators(indices: torch.Tensor, n: int, dtype: torch.dtype) -> torch.Tensor:
    """Mean over samples of one-hot indicators: indices (B, S, K) -> (B, N, K), without (B, S, K, N)."""
    b, num_samples, k = indices.shape
    out = torch.zeros(b, k, n, dtype=dtype, device=indices.device)
    weight = torch.full((1, 1, 1), 1.0 / num_samples, dtype=dtype, device=indices.device)
    out.scatter_add_(-1, indices.permute(0, 2, 1), weight.expand(b, k, num_samples))
    return out.transpose(1, 2)


def _noise(scores: torch.Tensor, num_samples: int, generator: torch.Generator | None, antithetic: bool):
    """Standard Gaussian noise (B, S, N); ``antithetic`` stacks S/2 draws and their negatives."""
    b, n = scores.shape
    # drawn where the generator lives, so a CPU generator also reproduces GPU runs
    device = generator.device if generator is not None else scores.device
    draws = num_samples // 2 if antithetic else num_samples
    noise = torch.randn((b, draws, n), generator=generator, dtype=scores.dtype, device=device)
    if antithetic:
        noise = torch.cat([noise, -noise], dim=1)
    return noise.to(scores.device)


def _sample_weights(inner: torch.Tensor, estimator: str) -> torch.Tensor:
    """Per-sample weights (B, S) of the noise in the gradient, from ``<G, Y_s>`` (B, S)."""
    if estimator != "loo":
        return inner
    s = inner.shape[1]
    # <G, Y_s> minus the mean of the other S - 1 samples = S / (S - 1) * (<G, Y_s> - mean)
    return (inner - inner.mean(dim=1, keepdim=True)) * (s / (s - 1))


class _PerturbedTopK(torch.autograd.Function):
    @staticmethod
    def forward(ctx, scores, k, sigma, num_samples, generator, estimator):
        n = scores.shape[1]
        noise = _noise(scores, num_samples, generator, antithetic=estimator == "antithetic")
        indices = hard_topk(scores.detach().unsqueeze(1) + sigma * noise, k)  # (B, S, K)
        ctx.save_for_backward(noise, indices)
        ctx.sigma = sigma
        ctx.estimator = estimator
        return _indicators(indices, n, scores.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        noise, indices = ctx.saved_tensors
        num_samples = noise.shape[1]
        # grad_t[b, s, k] = G[b, idx[b, s, k], k]: the upstream gradient at each sample's one-hot entries
        grad_t = grad_output.transpose(1, 2).unsqueeze(1).expand(-1, num_samples, -1, -1)
        grad_at_hits = grad_t.gather(-1, indices.unsqueeze(-1)).squeeze(-1)  # (B, S, K)
        if ctx.estimator == "published":
            noise_at_hits = noise.gather(-1, indices)  # Z_s[b, idx[b, s, k]]
            grad = torch.zeros_like(noise[:, 0])
            grad.scatter_add_(-1, indices.flatten(1), (grad_at_hits * noise_at_hits).flatten(1))
        else:
            inner = grad_at_hits.sum(-1)  # <G[b], Y_s[b]>, (B, S)
            grad = torch.einsum("bs,bsn->bn", _sample_weights(inner, ctx.estimator), noise)
            if ctx.estimator != "plain":
                grad = grad - grad.mean(dim=-1, keepdim=True)  # shift invariance: sums to zero
        return grad / (num_samples * ctx.sigma), None, None, None, None, None


def perturbed_topk(
    scores: torch.Tensor,
    k: int,
    sigma: float,
    num_samples: int,
    *,
    generator: torch.Generator | None = None,
    estimator: str = "loo",
) -> torch.Tensor:
    """Soft top-K indicators Y_sigma (B, N, K): the mean over ``num_samples`` Gaussian perturbations
    ``scores + sigma Z`` of the one-hot top-K indicators, columns in increasing index order.

    Differentiable w.r.t. ``scores`` (B, N) with the gradient ``estimator`` chosen from
    :data:`ESTIMATORS` (see the module docstring).
    """
    if scores.ndim != 2:
        raise ValueError(f"scores must be (B, N), got shape {tuple(scores.shape)}")
    if not 1 <= k <= scores.shape[1]:
        raise ValueError(f"k = {k} must be in [1, N = {scores.shape[1]}]")
    if sigma <= 0 or num_samples < 1:
        raise ValueError("sigma must be > 0 and num_samples >= 1")
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}")
    if estimator == "loo" and num_samples < 2:
        raise ValueError("the leave-one-out estimator needs num_samples >= 2")
    if estimator == "antithetic" and (num_samples < 2 or num_samples % 2):
        raise ValueError(f"antithetic sampling needs an even num_samples >= 2, got {num_samples}")
    return _PerturbedTopK.apply(scores, k, float(sigma), int(num_samples), generator, estimator)

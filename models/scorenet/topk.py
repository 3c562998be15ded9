"""Hard and perturbed (differentiable) top-K selection of patch indices.

The perturbed top-K (Berthet et al. 2020, used for patch selection by Cordonnier et al. 2021) replaces
the one-hot top-K indicators ``Y(s)`` by their expectation under Gaussian noise,
``Y_sigma(s) = E_Z[Y(s + sigma Z)]``, which is smooth in the scores ``s``. Its exact gradient is
``dY_sigma / ds = E_Z[Y(s + sigma Z) Z^T] / sigma``, so for an upstream gradient ``G``:

    grad_s[b, n] = 1 / (sigma S) * sum_s <G[b], Y_s[b]> Z_s[b, n]

Every (region, slot) entry of ``G`` couples to the noise of every score. ``published_backward=True``
reproduces the widely used implementation, which keeps only ``Z_s[b, n]`` for the entries of row ``n``
(``grad_s[b, n] = 1/(sigma S) sum_{s,k} G[b, n, k] Y_s[b, n, k] Z_s[b, n]``), dropping the cross terms.
"""

from __future__ import annotations

import torch


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


class _PerturbedTopK(torch.autograd.Function):
    @staticmethod
    def forward(ctx, scores, k, sigma, num_samples, generator, published_backward):
        b, n = scores.shape
        # drawn where the generator lives, so a CPU generator also reproduces GPU runs
        device = generator.device if generator is not None else scores.device
        noise = torch.randn((b, num_samples, n), generator=generator, dtype=scores.dtype, device=device)
        noise = noise.to(scores.device)
        indices = hard_topk(scores.detach().unsqueeze(1) + sigma * noise, k)  # (B, S, K)
        ctx.save_for_backward(noise, indices)
        ctx.sigma = sigma
        ctx.published_backward = published_backward
        return _indicators(indices, n, scores.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        noise, indices = ctx.saved_tensors
        num_samples = noise.shape[1]
        # grad_t[b, s, k] = G[b, idx[b, s, k], k]: the upstream gradient at each sample's one-hot entries
        grad_t = grad_output.transpose(1, 2).unsqueeze(1).expand(-1, num_samples, -1, -1)
        grad_at_hits = grad_t.gather(-1, indices.unsqueeze(-1)).squeeze(-1)  # (B, S, K)
        if ctx.published_backward:
            noise_at_hits = noise.gather(-1, indices)  # Z_s[b, idx[b, s, k]]
            grad = torch.zeros_like(noise[:, 0])
            grad.scatter_add_(-1, indices.flatten(1), (grad_at_hits * noise_at_hits).flatten(1))
        else:
            inner = grad_at_hits.sum(-1)  # <G[b], Y_s[b]>, (B, S)
            grad = torch.einsum("bs,bsn->bn", inner, noise)
        return grad / (num_samples * ctx.sigma), None, None, None, None, None


def perturbed_topk(
    scores: torch.Tensor,
    k: int,
    sigma: float,
    num_samples: int,
    *,
    generator: torch.Generator | None = None,
    published_backward: bool = False,
) -> torch.Tensor:
    """Soft top-K indicators Y_sigma (B, N, K): the mean over ``num_samples`` Gaussian perturbations
    ``scores + sigma Z`` of the one-hot top-K indicators, columns in increasing index order.

    Differentiable w.r.t. ``scores`` (B, N) with the exact Monte-Carlo gradient of the smoothed map
    (or the published diagonal-only gradient with ``published_backward=True``).
    """
    if scores.ndim != 2:
        raise ValueError(f"scores must be (B, N), got shape {tuple(scores.shape)}")
    if not 1 <= k <= scores.shape[1]:
        raise ValueError(f"k = {k} must be in [1, N = {scores.shape[1]}]")
    if sigma <= 0 or num_samples < 1:
        raise ValueError("sigma must be > 0 and num_samples >= 1")
    return _PerturbedTopK.apply(scores, k, float(sigma), int(num_samples), generator, published_backward)

"""Frechet Inception Distance (Heusel et al. 2017), as pytorch-fid and the TF original compute it:

    FID = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))

in float64. The trace of the matrix square root is taken as the sum of the square roots of the
eigenvalues of S_1^(1/2) S_2 S_1^(1/2), a symmetric positive semi-definite matrix with the same
eigenvalues as S_1 S_2. Both symmetric eigendecompositions are real by construction, so the
result stays finite and real when the covariances are rank-deficient (fewer samples than 2048
features), where scipy.linalg.sqrtm returns complex or non-finite values and pytorch-fid has to
add an offset to the diagonal.

Where one set has at most half as many samples as features (a quick score of a few hundred
images, a test), the same trace comes from that set's features and the other's covariance: an
n x n eigendecomposition instead of two 2048 x 2048 ones, which take seconds on a CPU, and
memory that grows with the smaller set only.
"""

from __future__ import annotations

import torch

from genlab.metrics.registry import Values, register
from genlab.metrics.stats import FeatureStats


def _psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    """The square root of a symmetric positive semi-definite matrix; rounding's tiny negative
    eigenvalues are clipped to 0."""
    eigenvalues, eigenvectors = torch.linalg.eigh(matrix)
    root = eigenvalues.clamp(min=0).sqrt()
    return (eigenvectors * root) @ eigenvectors.T  # V diag(root) V^T


def trace_sqrt_product(sigma_1: torch.Tensor, sigma_2: torch.Tensor) -> torch.Tensor:
    """Tr((S_1 S_2)^(1/2)) for covariance matrices S_1, S_2."""
    root_1 = _psd_sqrt(sigma_1)
    middle = root_1 @ sigma_2 @ root_1
    middle = (middle + middle.T) / 2  # symmetric up to rounding; make it exactly so for eigh
    return torch.linalg.eigvalsh(middle).clamp(min=0).sqrt().sum()


def trace_sqrt_product_low_rank(centred_1: torch.Tensor, sigma_2: torch.Tensor) -> torch.Tensor:
    """Tr((S_1 S_2)^(1/2)) for the sample covariance S_1 = A^T A / (n - 1) of centred features
    A (n, d) and a covariance S_2: the non-zero eigenvalues of S_1 S_2 = A^T (A S_2) / (n - 1)
    are those of the (n, n) positive semi-definite matrix A S_2 A^T / (n - 1) (XY and YX share
    them), one small eigendecomposition instead of two d x d ones."""
    middle = centred_1 @ sigma_2 @ centred_1.T / (len(centred_1) - 1)
    middle = (middle + middle.T) / 2  # symmetric up to rounding; make it exactly so for eigh
    # A's rows sum to zero, so the smallest eigenvalue is exactly 0; left in, its rounding
    # (about 1e-16 of the largest) would add its square root, 1e-8 of the trace.
    return torch.linalg.eigvalsh(middle)[1:].clamp(min=0).sqrt().sum()


def frechet_distance(mu_1: torch.Tensor, sigma_1: torch.Tensor,
                     mu_2: torch.Tensor, sigma_2: torch.Tensor,
                     trace_sqrt: torch.Tensor | None = None) -> float:
    """The Frechet distance between N(mu_1, sigma_1) and N(mu_2, sigma_2), in float64;
    `trace_sqrt`: Tr((S_1 S_2)^(1/2)) when already known."""
    mu_1, mu_2 = mu_1.double(), mu_2.double()
    sigma_1, sigma_2 = sigma_1.double(), sigma_2.double()
    if mu_1.shape != mu_2.shape or sigma_1.shape != sigma_2.shape:
        raise ValueError(f"statistics of different sizes: {tuple(mu_1.shape)} and "
                         f"{tuple(mu_2.shape)}")
    if trace_sqrt is None:
        trace_sqrt = trace_sqrt_product(sigma_1, sigma_2)
    mean_term = (mu_1 - mu_2).square().sum()
    value = mean_term + sigma_1.trace() + sigma_2.trace() - 2 * trace_sqrt
    # Rounding can leave -1e-12 where the sets are identical; a distance is never negative.
    return max(float(value), 0.0)


def fid(stats_1: FeatureStats, stats_2: FeatureStats) -> float:
    trace_sqrt = None
    small, other = sorted((stats_1, stats_2), key=lambda stats: stats.count)
    if small.count <= small.num_features // 2:
        trace_sqrt = trace_sqrt_product_low_rank(small.features.double() - small.mean,
                                                 other.covariance.double())
    return frechet_distance(stats_1.mean, stats_1.covariance, stats_2.mean, stats_2.covariance,
                            trace_sqrt)


@register("fid", keys=("fid",), describe=lambda values: f"FID {values['fid']:.2f}")
def fid_metric(real: FeatureStats, generated: FeatureStats) -> Values:
    return {"fid": fid(real, generated)}

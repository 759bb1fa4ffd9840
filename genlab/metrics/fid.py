"""Frechet Inception Distance (Heusel et al. 2017), as pytorch-fid and the TF original compute it:

    FID = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))

in float64. The trace of the matrix square root is taken as the sum of the square roots of the
eigenvalues of S_1^(1/2) S_2 S_1^(1/2), a symmetric positive semi-definite matrix with the same
eigenvalues as S_1 S_2. Both symmetric eigendecompositions are real by construction, so the
result stays finite and real when the covariances are rank-deficient (fewer samples than 2048
features), where scipy.linalg.sqrtm returns complex or non-finite values and pytorch-fid has to
add an offset to the diagonal.
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


def frechet_distance(mu_1: torch.Tensor, sigma_1: torch.Tensor,
                     mu_2: torch.Tensor, sigma_2: torch.Tensor) -> float:
    """The Frechet distance between N(mu_1, sigma_1) and N(mu_2, sigma_2), in float64."""
    mu_1, mu_2 = mu_1.double(), mu_2.double()
    sigma_1, sigma_2 = sigma_1.double(), sigma_2.double()
    if mu_1.shape != mu_2.shape or sigma_1.shape != sigma_2.shape:
        raise ValueError(f"statistics of different sizes: {tuple(mu_1.shape)} and "
                         f"{tuple(mu_2.shape)}")
    mean_term = (mu_1 - mu_2).square().sum()
    value = mean_term + sigma_1.trace() + sigma_2.trace() - 2 * trace_sqrt_product(sigma_1, sigma_2)
    # Rounding can leave -1e-12 where the sets are identical; a distance is never negative.
    return max(float(value), 0.0)


def fid(stats_1: FeatureStats, stats_2: FeatureStats) -> float:
    return frechet_distance(stats_1.mean, stats_1.covariance, stats_2.mean, stats_2.covariance)


@register("fid", keys=("fid",), describe=lambda values: f"FID {values['fid']:.2f}")
def fid_metric(real: FeatureStats, generated: FeatureStats) -> Values:
    return {"fid": fid(real, generated)}

"""Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD GANs"): the unbiased
estimate of the squared MMD between two feature sets under the polynomial kernel
k(x, y) = (x . y / d + 1)^3, averaged over random subsets, as torch-fidelity, clean-fid and
torchmetrics compute it (mean and population standard deviation over `subsets` draws of
`subset_size` features from each side). Unlike FID it is unbiased at small sample counts.

When both sets are no larger than the subset size, every "subset" is a whole set (permuted): the
subsets are one, and there is no spread to report, so the record says 1 subset and no std.
"""

from __future__ import annotations

import torch

from genlab.metrics.registry import Values, register
from genlab.metrics.stats import FeatureStats

SUBSETS = 100
SUBSET_SIZE = 1000


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor, degree: int = 3,
                      coef: float = 1.0) -> torch.Tensor:
    """(n, d), (m, d) -> (n, m) kernel matrix with gamma = 1 / d."""
    return (x @ y.T / x.shape[1] + coef) ** degree


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor, degree: int = 3, coef: float = 1.0) -> torch.Tensor:
    """Unbiased squared MMD of two equal-size samples: the diagonals of k(x, x) and k(y, y)
    (each point with itself) are left out of the within-set means."""
    m = x.shape[0]
    k_xx = polynomial_kernel(x, x, degree, coef)
    k_yy = polynomial_kernel(y, y, degree, coef)
    k_xy = polynomial_kernel(x, y, degree, coef)
    within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return within - 2 * k_xy.sum() / (m * m)


def effective_subset_size(num_real: int, num_fake: int, subset_size: int = SUBSET_SIZE) -> int:
    """The subset size shrinks to the smaller set when either has fewer than `subset_size`."""
    return min(subset_size, num_real, num_fake)


def kid(real: torch.Tensor, fake: torch.Tensor, subsets: int = SUBSETS,
        subset_size: int = SUBSET_SIZE, seed: int = 0) -> tuple[float, float]:
    """(mean, std) of the unbiased MMD^2 over `subsets` random subsets of
    `effective_subset_size` features, in float64."""
    size = effective_subset_size(len(real), len(fake), subset_size)
    if size < 2:
        raise ValueError(f"KID needs at least 2 features on each side, got {len(real)} and "
                         f"{len(fake)}")
    real, fake = real.double(), fake.double()
    generator = torch.Generator().manual_seed(seed)
    scores = []
    for _ in range(subsets):
        # The same draws, in the same order, as torchmetrics' KernelInceptionDistance.
        real_subset = real[torch.randperm(len(real), generator=generator)[:size]]
        fake_subset = fake[torch.randperm(len(fake), generator=generator)[:size]]
        scores.append(mmd2_unbiased(real_subset, fake_subset))
    values = torch.stack(scores)
    return float(values.mean()), float(values.std(unbiased=False))


def distinct_subsets(num_real: int, num_fake: int, subsets: int = SUBSETS,
                     subset_size: int = SUBSET_SIZE) -> int:
    """How many different subsets the estimate averages: 1 when each subset is a whole set."""
    size = effective_subset_size(num_real, num_fake, subset_size)
    return 1 if size >= max(num_real, num_fake) else subsets


def _describe(values: Values) -> str:
    if values.get("kid_subsets", SUBSETS) > 1 and "kid_std" in values:
        return f"KID {values['kid']:.4f} +- {values['kid_std']:.4f}"
    return f"KID {values['kid']:.4f} (1 subset)"


# The subset count and size say how the estimate was made: kept in records, not shown in tables.
@register("kid", keys=("kid", "kid_std", "kid_subsets", "kid_subset_size"), describe=_describe,
          shown=("kid", "kid_std"), required=("kid",))  # no std from one subset
def kid_metric(real: FeatureStats, generated: FeatureStats) -> Values:
    mean, std = kid(real.features, generated.features)
    values = {"kid": mean, "kid_subsets": float(distinct_subsets(real.count, generated.count)),
              "kid_subset_size": float(effective_subset_size(real.count, generated.count))}
    if values["kid_subsets"] > 1:
        values["kid_std"] = std
    return values

"""Running feature statistics in float64: the mean and covariance FID needs, and the features
themselves, which KID needs (as stylegan2-ada's metric_utils.FeatureStats)."""

from __future__ import annotations

import torch

# Below this many samples the 2048 x 2048 covariance is rank-deficient: FID is still defined
# (genlab's square root stays real) but biased upwards, comparable only at the same count.
FULL_RANK_SAMPLES = 2048


class FeatureStats:
    """Streaming sums in float64, so that 50,000 x 2048 features lose no precision in the
    covariance; `update` takes any batch size and the result does not depend on it."""

    def __init__(self, num_features: int):
        self.num_features = num_features
        self.count = 0
        self._sum = torch.zeros(num_features, dtype=torch.float64)
        self._sum_outer = torch.zeros(num_features, num_features, dtype=torch.float64)
        self._batches: list[torch.Tensor] = []

    def update(self, features: torch.Tensor) -> None:
        """features: (n, num_features), any float dtype."""
        if features.dim() != 2 or features.shape[1] != self.num_features:
            raise ValueError(f"expected features (n, {self.num_features}), got "
                             f"{tuple(features.shape)}")
        f = features.detach().to("cpu", torch.float64)
        self.count += len(f)
        self._sum += f.sum(0)
        self._sum_outer.addmm_(f.T, f)  # += (d, n) @ (n, d), without a (d, d) temporary
        self._batches.append(features.detach().to("cpu", torch.float32))

    @classmethod
    def of(cls, features: torch.Tensor) -> "FeatureStats":
        stats = cls(features.shape[1])
        stats.update(features)
        return stats

    @property
    def features(self) -> torch.Tensor:
        """Every feature seen so far, (count, num_features) float32."""
        if len(self._batches) > 1:
            self._batches = [torch.cat(self._batches)]
        return self._batches[0] if self._batches else torch.empty(0, self.num_features)

    @property
    def mean(self) -> torch.Tensor:
        self._need(1)
        return self._sum / self.count

    @property
    def covariance(self) -> torch.Tensor:
        """The unbiased sample covariance (divides by count - 1), as numpy.cov in pytorch-fid."""
        self._need(2)
        mean = self.mean
        return (self._sum_outer - self.count * torch.outer(mean, mean)) / (self.count - 1)

    def _need(self, n: int) -> None:
        if self.count < n:
            raise ValueError(f"feature statistics need at least {n} samples, have {self.count}")


def mean_and_std(values: list[float]) -> tuple[float, float]:
    """The mean and the sample standard deviation (n - 1; nan for one value) of scores over
    seeds."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, float("nan")
    return mean, (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5


def over_seeds_text(values: list[float]) -> str:
    """Scores over seeds as tables write them: '231 +- 1.1e+02 (n=3)', or '12.3 (n=1)'."""
    mean, std = mean_and_std(values)
    return f"{mean:.4g} +- {std:.2g} (n={len(values)})" if len(values) > 1 else f"{mean:.4g} (n=1)"

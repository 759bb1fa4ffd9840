"""Improved precision and recall (Kynkaanniemi, Karras, Laine, Lehtinen and Aila 2019,
"Improved Precision and Recall Metric for Assessing Generative Models").

Each set of features is taken as a manifold: the union of balls around its points, each ball's
radius the distance to that point's k-th nearest *other* point of the same set (k = 3).
Precision is the share of generated samples inside the real manifold (how many samples look like
data); recall the share of real samples inside the generated manifold (how much of the data the
samples cover). A blurry VAE tends to low precision, a mode-dropping GAN to low recall.

As the reference (kynkaat/improved-precision-and-recall-metric, precision_recall.py), and
stylegan2-ada-pytorch's metrics/precision_recall.py: Euclidean distances, the radius the
(k+1)-th smallest distance counting the point itself, membership with <=. One difference: those
use VGG-16's 4096-d fc features and 50,000 samples a side; genlab uses the same 2048-d Inception
pool features its FID and KID use, at the run's FID sample count (3,000 under the homework's
protocol), so the three scores come from one feature extraction. Values are comparable with
each other, not with the paper's.
"""

from __future__ import annotations

import torch

from genlab.metrics.registry import Values, register
from genlab.metrics.stats import FeatureStats

NEIGHBOURHOOD = 3   # k
ROWS = 1024         # distances computed ROWS probes at a time: memory stays ROWS x N


def manifold_radii(features: torch.Tensor, k: int = NEIGHBOURHOOD) -> torch.Tensor:
    """Each point's distance to its k-th nearest other point, (N, d) -> (N,)."""
    if len(features) <= k:
        raise ValueError(f"precision and recall with k = {k} need more than {k} samples a side, "
                         f"got {len(features)}")
    # kthvalue(k + 1): the point itself is its own nearest neighbour, at distance 0.
    return torch.cat([torch.cdist(rows, features).kthvalue(k + 1, dim=1).values
                      for rows in features.split(ROWS)])


def inside(probes: torch.Tensor, manifold: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """Whether each probe lies in some manifold point's ball, (P,) bool."""
    return torch.cat([(torch.cdist(rows, manifold) <= radii[None, :]).any(dim=1)
                      for rows in probes.split(ROWS)])


def precision_recall(real: torch.Tensor, generated: torch.Tensor,
                     k: int = NEIGHBOURHOOD) -> tuple[float, float]:
    """(precision, recall) of generated features against real ones, in float64."""
    real, generated = real.double(), generated.double()
    precision = inside(generated, real, manifold_radii(real, k)).double().mean()
    recall = inside(real, generated, manifold_radii(generated, k)).double().mean()
    return float(precision), float(recall)


def _describe(values: Values) -> str:
    return f"precision {values['precision']:.3f}  recall {values['recall']:.3f}"


@register("pr", keys=("precision", "recall"), describe=_describe,
          min_samples=NEIGHBOURHOOD + 1)
def precision_recall_metric(real: FeatureStats, generated: FeatureStats) -> Values:
    precision, recall = precision_recall(real.features, generated.features)
    return {"precision": precision, "recall": recall}

"""Do prior draws land where the decoder has learnt to decode? The aggregate posterior against
N(0, I), for any run with an encoder (the VAE/GAN, the VAE).

A VAE's decoder learns from posterior draws z ~ q(z|x); its samples come from z_p ~ N(0, I). The
two agree only if the aggregate posterior q(z) = mean over x of q(z|x) fills N(0, I) (Hoffman and
Johnson 2016, "ELBO surgery": the KL term's part that matches q(z) to the prior). Where q(z)
covers a smaller or shifted region, prior draws fall where the decoder saw few or no latents, and
in a VAE/GAN only the GAN term teaches the decoder there. This measures the gap on held-out
faces, in eval mode, as samples are scored:

* q(z)'s Gaussian fit: its mean, and its covariance, Cov(mu) over the faces plus the mean of
  diag(sigma^2); the KL from N(0, I) to that Gaussian (0 when q(z) matches the prior's first two
  moments; a lower bound on how far apart they are);
* how Cov(mu) spreads over directions: its largest variances, their share of the total, and the
  participation ratio (sum of variances)^2 / sum of squares, the number of directions that carry
  it. A prior draw has variance 1 in every direction; faces whose means differ along a few
  directions with variances in the hundreds tell the decoder who they are there, and prior draws
  hardly move along them;
* three sets decoded side by side: prior draws, draws from the Gaussian fit (full covariance),
  and the faces' reconstructions Dec(mu(x)); each set's diversity, the mean distance between two
  of its images (pixel RMS in [0, 1]), against the real faces'. Diverse fitted draws beside
  narrow prior draws put the narrowness on the gap between q(z) and the prior, not on the
  decoder.

    .venv/bin/python experiments/prior_gap.py RUN [--step N] [--images 660] [-o grid.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from genlab.data import load_split
from genlab.data.transforms import to_model_range, to_unit_range
from genlab.grid import save_grid
from genlab.models.base import evaluating
from genlab.run import load_run


def gaussian_fit(mu: torch.Tensor, log_sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Posteriors (N, d) of N faces -> the mixture mean_x q(z|x)'s mean (d,), its centred means
    (N, d) and its mean posterior variance (d,): covariance = centred.T @ centred / N + diag."""
    mean = mu.mean(0)
    return mean, mu - mean, (2 * log_sigma).exp().mean(0)


def kl_from_prior(mean: torch.Tensor, centred: torch.Tensor, noise_variance: torch.Tensor) -> float:
    """KL(N(mean, Cov) || N(0, I)) in nats, Cov = centred.T @ centred / N + diag(noise_variance)."""
    covariance = centred.T @ centred / len(centred) + noise_variance.diag()  # (d, d)
    log_det = 2 * torch.linalg.cholesky(covariance).diagonal().log().sum()
    return 0.5 * (covariance.trace() + mean.square().sum() - len(mean) - log_det).item()


def diversity(images: torch.Tensor) -> float:
    """(N, C, H, W) in [0, 1] -> the mean RMS pixel distance between two different images."""
    flat = images.flatten(1).double()
    distances = torch.cdist(flat, flat) / flat.shape[1] ** 0.5  # (N, N)
    n = len(flat)
    return (distances.sum() / (n * (n - 1))).item()


@torch.no_grad()
def measure(run: Path, step: int | None, images: int, draws: int, seed: int = 1) -> dict:
    trained = load_run(run, torch.device("cpu"), warn=print, step=step)
    model, config = trained.model, trained.config
    if not model.can("encoder"):  # the spec says so (genlab.models.specs.CAPABILITIES)
        raise SystemExit(f"{run} is a {config.model} run, which has no encoder: prior_gap "
                         "measures runs that have one (vaegan, vae)")
    real = load_split(config.data, config.data.val_split).images[:images]  # (N, C, H, W) uint8
    with evaluating(model):
        posteriors = [model.encode(to_model_range(batch, model.data_range)) for batch in real.split(64)]
        mu = torch.cat([m for m, _ in posteriors]).double()          # (N, d)
        log_sigma = torch.cat([s for _, s in posteriors]).double()   # (N, d)
        mean, centred, noise_variance = gaussian_fit(mu, log_sigma)
        generator = torch.Generator().manual_seed(seed)
        prior = torch.randn(draws, mu.shape[1], generator=generator, dtype=torch.float64)
        # A draw from N(mean, Cov): the centred means weighted by N(0, 1)s / sqrt(N) have
        # covariance Cov(mu) exactly; the posterior noise adds the diagonal.
        weights = torch.randn(draws, len(mu), generator=generator, dtype=torch.float64)
        fitted = mean + weights @ centred / len(mu) ** 0.5 + noise_variance.sqrt() * prior

        def decoded(z: torch.Tensor) -> torch.Tensor:
            return torch.cat([to_unit_range(model.decode(b.float()), model.data_range)
                              for b in z.split(64)])

        sets = {"real": real.float() / 255, "reconstructions": decoded(mu[:draws]),
                "fitted draws": decoded(fitted), "prior draws": decoded(prior)}
    variances = torch.linalg.svdvals(centred).square() / len(mu)  # Cov(mu)'s, largest first
    return {"run": str(run), "model": config.model, "step": trained.step, "faces": len(real),
            "latent_dim": mu.shape[1],
            "kl_from_prior_nats": kl_from_prior(mean, centred, noise_variance),
            "mean_norm": mean.norm().item(),
            "mean_posterior_variance": noise_variance.mean().item(),
            "cov_mu_largest_variances": [round(v, 2) for v in variances[:5].tolist()],
            "cov_mu_total_variance": variances.sum().item(),
            "cov_mu_share_of_10_largest": (variances[:10].sum() / variances.sum()).item(),
            "cov_mu_participation_ratio": (variances.sum() ** 2 / variances.square().sum()).item(),
            "diversity": {name: diversity(images[:draws]) for name, images in sets.items()},
            "sets": sets}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--step", type=int, default=None, help="default: the latest checkpoint")
    parser.add_argument("--images", type=int, default=660, help="held-out faces encoded")
    parser.add_argument("--draws", type=int, default=64, help="images per decoded set")
    parser.add_argument("--columns", type=int, default=12)
    parser.add_argument("-o", "--out", type=Path, default=None,
                        help="a grid: real faces, reconstructions, fitted draws, prior draws")
    args = parser.parse_args()
    if args.draws < 2 or args.images < args.draws:
        raise SystemExit("--draws needs at least 2 and --images at least --draws")
    result = measure(args.run, args.step, args.images, args.draws)
    sets = result.pop("sets")
    print(json.dumps(result, indent=1))
    if args.out:
        k = args.columns
        save_grid(torch.cat([images[:k] for images in sets.values()]), args.out, nrow=k)
        print(f"grid: {args.out} (rows: {', '.join(sets)})")


if __name__ == "__main__":
    main()

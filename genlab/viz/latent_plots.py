"""Pictures of a small latent space (2 or 3 dimensions): where the validation images land, and,
for 2 dimensions, what the decoder draws across the plane.

* scatter: the posterior means mu(x) of validation images, coloured by label (for 3 dimensions,
  the three pairwise planes side by side);
* manifold: decoded images on a grid of z = (Phi^-1(u), Phi^-1(v)) for u, v evenly spaced in
  (0, 1), Phi the standard normal CDF: equal steps in probability under the prior, so the grid
  covers where the prior puts its mass (the figure of Kingma and Welling 2014).
"""

from __future__ import annotations

from pathlib import Path

import torch

from genlab.data.transforms import to_unit_range
from genlab.errors import GenlabError
from genlab.fsutil import atomic_save


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, path: Path) -> None:
    atomic_save(path, lambda handle: figure.savefig(handle, format="png", dpi=120,
                                                     bbox_inches="tight"))


def scatter(means: torch.Tensor, labels: torch.Tensor | None, path: Path, title: str) -> None:
    """A scatter of 2- or 3-d latent means, coloured by label (10 classes: tab10)."""
    dims = means.shape[1]
    if dims not in (2, 3):
        raise GenlabError(f"a scatter of the latent space needs latent size 2 or 3, not {dims}")
    plt = pyplot()
    pairs = [(0, 1)] if dims == 2 else [(0, 1), (0, 2), (1, 2)]
    figure, axes = plt.subplots(1, len(pairs), figsize=(6 * len(pairs), 5), squeeze=False,
                                constrained_layout=True)
    colours = None if labels is None else labels.numpy()
    for ax, (i, j) in zip(axes[0], pairs):
        points = ax.scatter(means[:, i].numpy(), means[:, j].numpy(), c=colours, cmap="tab10",
                            s=4, alpha=0.7, vmin=-0.5, vmax=9.5)
        ax.set_xlabel(f"z{i + 1} (posterior mean)")
        ax.set_ylabel(f"z{j + 1} (posterior mean)")
        ax.set_aspect("equal", adjustable="datalim")  # distances in z read the same both ways
        ax.locator_params(nbins=5)
        ax.ticklabel_format(useOffset=False)
        ax.grid(alpha=0.3)
    if colours is not None:
        bar = figure.colorbar(points, ax=list(axes[0]), ticks=range(10))
        bar.set_label("label")
    figure.suptitle(title)
    save_figure(figure, path)
    plt.close(figure)


@torch.no_grad()
def manifold(model, path: Path, n: int = 20) -> None:
    """Decoded images over an n x n grid of 2-d latents at evenly spaced prior quantiles."""
    from genlab.grid import save_grid

    if model.latent_dim != 2:
        raise GenlabError(f"the decoded manifold needs latent size 2, not {model.latent_dim}")
    quantiles = torch.special.ndtri(torch.linspace(0.5 / n, 1 - 0.5 / n, n))  # (n,)
    # Rows from high z2 (top) to low, columns from low z1 to high: a plot's orientation.
    z2, z1 = torch.meshgrid(quantiles.flip(0), quantiles, indexing="ij")     # (n, n) each
    z = torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=1)                  # (n * n, 2)
    device = next(model.parameters()).device
    images = to_unit_range(model.decode(z.to(device)), model.data_range).cpu()
    save_grid(images, path, nrow=n)


def latent_figures(model, config, step: int, images: torch.Tensor, labels: torch.Tensor | None,
                   out: Path, manifold_side: int) -> dict[str, Path]:
    """`genlab latents`: the scatter of the posterior means of `images` (and, for latent size 2,
    the decoded manifold) into `out`; the files by name."""
    from genlab.models.walks import latent_means

    latent = config.model_config.latent_dim
    if not model.can("encoder"):
        raise GenlabError(f"a {config.model} has no encoder, so it has no latent means to plot; "
                          "use a vae or vaegan run")
    if latent not in (2, 3):
        raise GenlabError(f"the run has latent size {latent}; the scatter and manifold are for "
                          "latent sizes 2 and 3 (train with --latent-dim 2 or 3)")
    written = {"scatter": out / f"latent-scatter-step-{step:08d}.png"}
    scatter(latent_means(model, images), labels, written["scatter"],
            f"{config.model} z{latent}: posterior means of {len(images)} "
            f"{config.data.dataset}/{config.data.val_split} images, step {step}")
    if latent == 2:
        written["manifold"] = out / f"latent-manifold-step-{step:08d}.png"
        manifold(model, written["manifold"], n=manifold_side)
    return written

"""Plots of a run's own logs (scalars.jsonl), readable without TensorBoard, and the GAN
equilibrium diagnostics computed from them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from genlab.viz.latent_plots import pyplot, save_figure

PROBABILITY_TAGS = ("D(x)", "D(G(z1))", "D(G(z2))", "D(x~)", "D(x_p)")
GENERATED_SCORE_TAGS = ("D(G(z1))", "D(x_p)")  # D on fresh samples, before D's step


def series(records: list[dict]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """tag -> (steps, values), in step order, from scalar records."""
    found: dict[str, list[tuple[int, float]]] = {}
    for record in records:
        for tag, value in record.items():
            if tag in ("step", "time") or not isinstance(value, (int, float)):
                continue
            found.setdefault(tag, []).append((int(record["step"]), float(value)))
    return {tag: (np.array([s for s, _ in points]), np.array([v for _, v in points]))
            for tag, points in sorted(found.items())}


def _unit(name: str) -> str:
    if name in PROBABILITY_TAGS:
        return "probability"
    if name.startswith("D(") or "ratio" in name:
        return "ratio"
    return "loss (nats, batch mean)"


def curves(records: list[dict], path: Path, title: str) -> list[str]:
    """Every train/ tag in its own panel, with its val/ twin where logged; returns the names."""
    data = series(records)
    names = [tag.removeprefix("train/") for tag in data if tag.startswith("train/")]
    names += [tag.removeprefix("val/") for tag in data
              if tag.startswith("val/") and tag.removeprefix("val/") not in names]
    if not names:
        return []
    plt = pyplot()
    columns = min(3, len(names))
    rows = math.ceil(len(names) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.4 * rows), squeeze=False,
                                constrained_layout=True)
    for ax, name in zip(axes.flat, names):
        for prefix, style in (("train/", dict(lw=1.2)), ("val/", dict(marker="o", ms=3, lw=1))):
            if prefix + name in data:
                steps, values = data[prefix + name]
                ax.plot(steps, values, label=prefix.rstrip("/"), **style)
        if name in PROBABILITY_TAGS:
            ax.axhline(0.5, color="grey", ls="--", lw=0.8, label="0.5 (equilibrium)")
            ax.set_ylim(-0.02, 1.02)
        else:
            values = np.concatenate([data[p + name][1] for p in ("train/", "val/")
                                     if p + name in data])
            if np.nanmin(values) > 0 and np.nanmax(values) / np.nanmin(values) > 100:
                ax.set_yscale("log")  # losses spanning orders of magnitude
        ax.set_title(name)
        ax.set_xlabel("training step")
        ax.set_ylabel(_unit(name))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    figure.suptitle(title)
    save_figure(figure, path)
    plt.close(figure)
    return names


def _tiles(grid_png: Path, tile: int, padding: int = 2) -> np.ndarray:
    """The images of a saved grid (genlab.grid layout), (N, H, W[, C]) floats in [0, 1]."""
    with Image.open(grid_png) as image:
        pixels = np.asarray(image, dtype=np.float32) / 255
    rows = (pixels.shape[0] - padding) // (tile + padding)
    cols = (pixels.shape[1] - padding) // (tile + padding)
    out = [pixels[padding + r * (tile + padding):padding + r * (tile + padding) + tile,
                  padding + c * (tile + padding):padding + c * (tile + padding) + tile]
           for r in range(rows) for c in range(cols)]
    return np.stack(out)


def sample_diversity(grids: list[tuple[int, Path]], tile: int, count: int,
                     features=None) -> list[tuple[int, float]]:
    """(step, mean pairwise distance) of the first `count` images of each saved sample grid: the
    fixed latents' samples drifting together means the generator is collapsing onto few outputs.
    Distances are between `features(uint8 images (N, C, H, W))` (FID's Inception features) when
    given, else RMS pixel distances."""
    import torch

    out = []
    for step, png in grids:
        tiles = _tiles(png, tile)[:count]                # (N, H, W) or (N, H, W, 3) in [0, 1]
        if features is not None:
            images = torch.from_numpy(np.rint(tiles * 255).astype(np.uint8))
            images = images[:, None] if images.ndim == 3 else images.permute(0, 3, 1, 2)
            vectors = features(images).double().numpy()  # (N, 2048)
        else:
            vectors = tiles.reshape(len(tiles), -1) / np.sqrt(tiles[0].size)  # RMS distances
        diffs = vectors[:, None, :] - vectors[None, :, :]
        distances = np.sqrt((diffs ** 2).sum(axis=2))
        n = len(vectors)
        out.append((step, float(distances.sum() / max(n * (n - 1), 1))))
    return out


def equilibrium(records: list[dict], diversity: list[tuple[int, float]],
                window: int = 10) -> dict:
    """Where a GAN's training ended relative to the Nash equilibrium D = 1/2, from its logs:
    the last `window` logged means of D(x) and D on fresh samples, the ratio of D's loss to the
    generator's, and a mode-collapse alert when sample diversity fell below half its peak."""
    data = series(records)
    fake_tag = next((f"train/{t}" for t in GENERATED_SCORE_TAGS if f"train/{t}" in data), None)
    if "train/D(x)" not in data or fake_tag is None:
        return {}
    d_real = float(np.mean(data["train/D(x)"][1][-window:]))
    d_fake = float(np.mean(data[fake_tag][1][-window:]))
    out = {"D(x)": d_real, fake_tag.removeprefix("train/"): d_fake,
           "distance_from_equilibrium": abs(d_real - 0.5) + abs(d_fake - 0.5)}
    if "train/discriminator_loss" in data and "train/generator_loss" in data:
        d_loss = np.mean(data["train/discriminator_loss"][1][-window:])
        g_loss = np.mean(data["train/generator_loss"][1][-window:])
        out["loss_ratio_D_over_G"] = float(d_loss / g_loss) if g_loss else float("inf")
    if diversity:
        peak = max(v for _, v in diversity)
        last = diversity[-1][1]
        out["sample_diversity_last_over_peak"] = last / peak if peak else 1.0
        out["mode_collapse_alert"] = bool(peak and last < 0.5 * peak)
    return out


def equilibrium_plot(records: list[dict], diversity: list[tuple[int, float]], path: Path,
                     title: str, diversity_unit: str = "mean pairwise RMS pixel distance") -> bool:
    """D(x) and D(fresh samples) against 1/2, the D/G loss ratio, and sample diversity."""
    data = series(records)
    fake_tag = next((f"train/{t}" for t in GENERATED_SCORE_TAGS if f"train/{t}" in data), None)
    if "train/D(x)" not in data or fake_tag is None:
        return False
    plt = pyplot()
    figure, axes = plt.subplots(1, 3, figsize=(15, 3.6), constrained_layout=True)
    for tag in ("train/D(x)", fake_tag):
        axes[0].plot(*data[tag], label=tag.removeprefix("train/"))
    axes[0].axhline(0.5, color="grey", ls="--", lw=0.8, label="0.5 (Nash equilibrium)")
    axes[0].set(title="discriminator outputs", xlabel="training step", ylabel="probability",
                ylim=(-0.02, 1.02))
    if "train/discriminator_loss" in data and "train/generator_loss" in data:
        steps, d_loss = data["train/discriminator_loss"]
        ratio = d_loss / np.where(data["train/generator_loss"][1] == 0, np.nan,
                                  data["train/generator_loss"][1])
        axes[1].plot(steps, ratio)
    axes[1].set(title="discriminator loss / generator loss", xlabel="training step",
                ylabel="ratio")
    if diversity:
        axes[2].plot([s for s, _ in diversity], [v for _, v in diversity], marker="o")
    axes[2].set(title="sample diversity (fixed latents)", xlabel="training step",
                ylabel=diversity_unit)
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    figure.suptitle(title)
    save_figure(figure, path)
    plt.close(figure)
    return True

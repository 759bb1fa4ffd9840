"""The sharpness measures of experiments/vaegan_comparison.py, on images the test draws: each
must tell blur, grain and a faithful copy apart the way README's VAE/GAN results read them."""

import pytest
import torch
import torch.nn.functional as F

from conftest import experiment


@pytest.fixture(scope="module")
def comparison():
    return experiment("vaegan_comparison")


@pytest.fixture(scope="module")
def rectangles() -> torch.Tensor:
    """(32, 1, 64, 64) in [0, 1]: dark images with a few flat bright rectangles (sharp edges)."""
    g = torch.Generator().manual_seed(0)
    images = torch.zeros(32, 1, 64, 64)
    for image in images:
        for _ in range(3):
            top, left = torch.randint(0, 48, (2,), generator=g).tolist()
            height, width = torch.randint(8, 16, (2,), generator=g).tolist()
            image[:, top:top + height, left:left + width] = torch.rand(1, generator=g) * 0.7 + 0.3
    return images


def box_blur(images: torch.Tensor, size: int = 5) -> torch.Tensor:
    padded = F.pad(images, (size // 2,) * 4, mode="replicate")
    return F.avg_pool2d(padded, size, stride=1)


def test_a_faithful_copy_scores_edge_contrast_one_and_no_detail_error(comparison, rectangles):
    assert comparison.edge_contrast(rectangles, rectangles) == pytest.approx(1.0)
    assert comparison.detail_error(rectangles, rectangles) == pytest.approx(0.0)


def test_blur_lowers_edge_contrast_and_scores_detail_error_near_one(comparison, rectangles):
    blurred = box_blur(rectangles)
    assert comparison.edge_contrast(blurred, rectangles) < 0.6
    assert 0.5 < comparison.detail_error(blurred, rectangles) < 1.1
    # more blur, flatter edges
    assert (comparison.edge_contrast(box_blur(rectangles, 9), rectangles)
            < comparison.edge_contrast(blurred, rectangles))


def test_grain_raises_detail_error_but_not_edge_contrast(comparison, rectangles):
    g = torch.Generator().manual_seed(1)
    grainy = rectangles + 0.05 * torch.randn(rectangles.shape, generator=g)
    assert comparison.edge_contrast(grainy, rectangles) == pytest.approx(1.0, abs=0.05)
    assert comparison.detail_error(grainy, rectangles) > 1.5
    # and grain on a blurred copy does not pass for sharpness
    blurred_grainy = box_blur(rectangles) + 0.05 * torch.randn(rectangles.shape, generator=g)
    assert comparison.edge_contrast(blurred_grainy, rectangles) < 0.6
    # grain with no edges at all scores ~0: the gradient counts only along the real one (its
    # magnitude alone would give 0.76 here)
    flat_grain = 0.5 + 0.3 * torch.randn(rectangles.shape, generator=g)
    assert comparison.edge_contrast(flat_grain, rectangles) == pytest.approx(0.0, abs=0.05)


def test_edge_contrast_reads_the_strongest_edges_not_faint_texture(comparison, rectangles):
    # Real images = the rectangles with a faint texture; a reconstruction that keeps every edge
    # but drops the texture is sharp where it counts. Measured over all pixels the lost texture
    # would pull the score to ~0.90; on the strongest 10% it stays near 1.
    g = torch.Generator().manual_seed(2)
    textured = rectangles + 0.02 * torch.randn(rectangles.shape, generator=g)
    assert comparison.edge_contrast(rectangles, textured) > 0.95


@pytest.fixture(scope="module")
def differences():
    return experiment("celeba_differences")


def test_the_power_spectrum_puts_a_stripe_pattern_at_its_own_frequency(differences):
    rows = torch.arange(64, dtype=torch.float64)
    stripes = 0.5 + 0.4 * torch.cos(2 * torch.pi * 5 * rows / 64)  # 5 cycles down the image
    images = stripes[None, None, :, None].expand(2, 3, 64, 64).float()
    spectrum = differences.radial_power_spectrum(images)
    assert spectrum.shape == (33,)
    assert spectrum.argmax().item() == 5
    assert spectrum[5] > 1e6 * spectrum[torch.arange(33) != 5].max()


def test_blur_lowers_the_high_frequency_power_and_grain_raises_it(differences, rectangles):
    real = differences.radial_power_spectrum(rectangles)
    assert differences.high_frequency_ratio(real, real) == pytest.approx(1.0)
    blurred = differences.radial_power_spectrum(box_blur(rectangles))
    assert differences.high_frequency_ratio(blurred, real) < 0.2
    g = torch.Generator().manual_seed(2)
    grainy = rectangles + 0.05 * torch.randn(rectangles.shape, generator=g)
    assert differences.high_frequency_ratio(differences.radial_power_spectrum(grainy), real) > 1.5


def test_the_edge_contrast_difference_is_paired_and_its_interval_covers_it(comparison, rectangles):
    blurred, more_blurred = box_blur(rectangles), box_blur(rectangles, 9)
    difference, low, high = comparison.edge_contrast_difference(blurred, more_blurred, rectangles,
                                                                resamples=500)
    assert difference == pytest.approx(comparison.edge_contrast(blurred, rectangles)
                                       - comparison.edge_contrast(more_blurred, rectangles))
    assert 0 < low < difference < high  # every image's edges are flatter under more blur
    # The same reconstructions on both sides differ by nothing, in every resample.
    assert comparison.edge_contrast_difference(blurred, blurred, rectangles, 100) == (0, 0, 0)


def test_a_run_is_measured_by_what_its_model_can_do(comparison, digit_runs):
    """The comparison's runs mix models: reconstructions only where there is an encoder (the
    DCGAN inherits a `reconstruct` from the base class that needs one), samples for all."""
    real = torch.randint(0, 256, (8, 1, 32, 32), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(0))
    vae = comparison.measure(digit_runs / "vae", real, samples=4, step=20)
    dcgan = comparison.measure(digit_runs / "dcgan", real, samples=4, step=20)
    assert vae["recon"].shape == (8, 1, 32, 32) and "edge_contrast" in vae
    assert "recon" not in dcgan and "edge_contrast" not in dcgan
    assert vae["samples"].shape == dcgan["samples"].shape == (4, 1, 32, 32)

"""FID, KID and their statistics on features, checked against closed forms and torchmetrics."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch

from genlab.metrics import cache
from genlab.metrics.fid import fid, frechet_distance
from genlab.metrics.kid import kid, mmd2_unbiased
from genlab.metrics.stats import FeatureStats


def inception_like(n: int, d: int = 2048, seed: int = 0, shift: float = 0.0) -> torch.Tensor:
    """Non-negative, skewed, correlated features like Inception's pool3 (post-ReLU averages)."""
    g = torch.Generator().manual_seed(seed)
    mixing = torch.rand(d, 32, generator=g) / 8
    latent = torch.randn(n, 32, generator=g)
    return (torch.relu(latent @ mixing.T + torch.rand(n, d, generator=g) * 0.3 + shift)).float()


def test_stats_match_numpy_and_do_not_depend_on_batching():
    features = inception_like(300, 64)
    whole = FeatureStats.of(features)
    chunked = FeatureStats(64)
    for part in features.split(7):
        chunked.update(part)
    expected_cov = np.cov(features.double().numpy(), rowvar=False)
    assert whole.count == chunked.count == 300
    np.testing.assert_allclose(whole.mean.numpy(), features.double().mean(0).numpy(), rtol=1e-12)
    np.testing.assert_allclose(whole.covariance.numpy(), expected_cov, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(chunked.covariance.numpy(), expected_cov, rtol=1e-9, atol=1e-12)
    assert torch.equal(chunked.features, features)
    with pytest.raises(ValueError, match="features"):
        whole.update(torch.zeros(3, 65))


def test_fid_of_a_set_against_itself_is_zero():
    stats = FeatureStats.of(inception_like(3000))
    assert abs(fid(stats, stats)) < 1e-6


def test_fid_is_symmetric():
    a = FeatureStats.of(inception_like(700, 512, seed=1))
    b = FeatureStats.of(inception_like(600, 512, seed=2, shift=0.05))
    ab, ba = fid(a, b), fid(b, a)
    assert ab > 1.0  # the shift is visible
    assert ab == pytest.approx(ba, rel=1e-7)  # equal up to the eigensolvers' rounding


def test_fid_matches_the_closed_form_for_known_gaussians():
    d = 10
    g = torch.Generator().manual_seed(0)
    mu_1, mu_2 = torch.randn(d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)
    # Commuting (diagonal) covariances: Tr(S1 + S2 - 2 sqrt(S1 S2)) = sum (sqrt(s1) - sqrt(s2))^2.
    s_1 = torch.rand(d, generator=g, dtype=torch.float64) + 0.1
    s_2 = torch.rand(d, generator=g, dtype=torch.float64) * 3 + 0.1
    closed = float((mu_1 - mu_2).square().sum() + (s_1.sqrt() - s_2.sqrt()).square().sum())
    assert frechet_distance(mu_1, torch.diag(s_1), mu_2, torch.diag(s_2)) == pytest.approx(closed, rel=1e-12)

    # General covariances: the textbook formula with scipy's sqrtm (well-conditioned here).
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    b = torch.randn(d, d, generator=g, dtype=torch.float64)
    sigma_1, sigma_2 = a @ a.T + 0.5 * torch.eye(d, dtype=torch.float64), b @ b.T + 0.5 * torch.eye(d, dtype=torch.float64)
    root = scipy.linalg.sqrtm(sigma_1.numpy() @ sigma_2.numpy()).real
    textbook = float((mu_1 - mu_2).square().sum()) + float(np.trace(sigma_1.numpy() + sigma_2.numpy() - 2 * root))
    assert frechet_distance(mu_1, sigma_1, mu_2, sigma_2) == pytest.approx(textbook, rel=1e-10)

    # And from samples of those Gaussians, through the streaming statistics.
    n = 200_000
    x = mu_1 + torch.randn(n, d, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(sigma_1).T
    y = mu_2 + torch.randn(n, d, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(sigma_2).T
    assert fid(FeatureStats.of(x), FeatureStats.of(y)) == pytest.approx(textbook, rel=0.02)


def test_fid_stays_finite_real_and_non_negative_on_rank_deficient_covariances():
    a = FeatureStats.of(inception_like(100, seed=3))
    b = FeatureStats.of(inception_like(100, seed=4))
    value = fid(a, b)
    assert isinstance(value, float) and math.isfinite(value) and value > 0
    assert fid(a, a) < 1e-6


def trace_sqrt_in_the_smaller_range(small: FeatureStats, other: FeatureStats) -> float:
    """Tr((S_1 S_2)^(1/2)) computed where S_small lives: with Q an orthonormal basis of its
    range (n - 1 dimensions), S_small = Q s Q^T, and the product's non-zero eigenvalues are those
    of s^(1/2) Q^T S_other Q s^(1/2), a small full-rank matrix eigh handles to rounding."""
    basis, _ = torch.linalg.qr((small.features.double() - small.mean).T)  # (d, n)
    s = basis.T @ small.covariance @ basis
    values, vectors = torch.linalg.eigh(s)
    root = (vectors * values.clamp(min=0).sqrt()) @ vectors.T
    middle = root @ basis.T @ other.covariance @ basis @ root
    return float(torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum())


@pytest.mark.parametrize("n_1, n_2", [(100, 100), (40, 3000), (1024, 60), (2, 50)])
def test_fid_of_few_samples_comes_from_the_features_and_is_exact(n_1, n_2):
    # fid() takes the smaller set's n x n path where it has at most 1,024 samples. Its
    # reference is the trace computed in the smaller set's range; the two 2048 x 2048
    # eigendecompositions of the general path carry the rounding of ~2,000 zero eigenvalues
    # (about 1e-5 of the score).
    a = FeatureStats.of(inception_like(n_1, seed=9))
    b = FeatureStats.of(inception_like(n_2, seed=10, shift=0.03))
    small, other = (a, b) if n_1 <= n_2 else (b, a)
    reference = frechet_distance(a.mean, a.covariance, b.mean, b.covariance,
                                 torch.tensor(trace_sqrt_in_the_smaller_range(small, other),
                                              dtype=torch.float64))
    assert fid(a, b) == pytest.approx(reference, rel=1e-10)
    assert fid(b, a) == pytest.approx(reference, rel=1e-10)
    if n_1 == n_2:  # the general path, once: seconds of eigendecomposition
        assert frechet_distance(a.mean, a.covariance, b.mean, b.covariance) == pytest.approx(
            reference, rel=2e-5)


class _Identity(torch.nn.Module):
    """torchmetrics' 'custom feature extractor': the inputs already are the features."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, x):
        return x


def test_fid_matches_torchmetrics_on_the_same_features():
    from torchmetrics.image.fid import FrechetInceptionDistance

    real, fake = inception_like(600, 256, seed=5), inception_like(500, 256, seed=6, shift=0.02)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metric = FrechetInceptionDistance(feature=_Identity(256), normalize=False).double()
        metric.update(real.double(), real=True)
        metric.update(fake.double(), real=False)
        reference = float(metric.compute())
    ours = fid(FeatureStats.of(real), FeatureStats.of(fake))
    assert ours == pytest.approx(reference, rel=1e-4)


def test_kid_matches_torchmetrics_on_the_same_features_and_draws():
    from torchmetrics.image.kid import KernelInceptionDistance

    real, fake = inception_like(400, 128, seed=7), inception_like(350, 128, seed=8, shift=0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metric = KernelInceptionDistance(feature=_Identity(128), subsets=20, subset_size=300)
        metric.update(real.double(), real=True)
        metric.update(fake.double(), real=False)
        torch.manual_seed(11)  # torchmetrics draws its subsets from the global generator
        ref_mean, ref_std = (float(v) for v in metric.compute())
    mean, std = kid(real, fake, subsets=20, subset_size=300, seed=11)
    assert mean == pytest.approx(ref_mean, rel=1e-9)
    assert std == pytest.approx(ref_std, rel=1e-6)
    assert mean > 0 and std > 0


def test_kid_is_unbiased_near_zero_for_one_distribution():
    # Two independent draws of the same distribution: the unbiased MMD^2 averages to about 0
    # (the biased estimate would be clearly positive).
    x = inception_like(2000, 64, seed=9)
    y = x[torch.randperm(2000, generator=torch.Generator().manual_seed(1))]  # same set, reordered
    assert abs(float(mmd2_unbiased(x[:1000].double(), y[:1000].double()))) < 1e-3
    mean, _ = kid(x, y, subsets=10, subset_size=500)
    assert abs(mean) < 1e-3
    shifted, _ = kid(x, inception_like(2000, 64, seed=10, shift=0.1), subsets=10, subset_size=500)
    assert shifted > 10 * abs(mean)


def test_kid_shrinks_its_subsets_to_the_smaller_set():
    x, y = inception_like(30, 16, seed=1), inception_like(20, 16, seed=2)
    mean, std = kid(x, y)  # subset_size 1000 > 20: uses 20
    assert math.isfinite(mean) and math.isfinite(std)
    assert (mean, std) == kid(x, y, subset_size=20)
    with pytest.raises(ValueError, match="at least 2"):
        kid(x, y[:1])


# --- the reference-feature cache ---------------------------------------------------------------

KEY = {"dataset": "mnist", "split": "test", "samples": 10, "selection": "randperm(seed=0)[:10]",
       "images_sha256": "ab" * 32, "weights_sha256": "cd" * 32, "preprocessing": "p",
       "precision": "fp32"}


@pytest.mark.parametrize("field", sorted(KEY))
def test_cache_key_changes_when_any_input_changes(field):
    changed = {**KEY, field: KEY[field] + 1 if isinstance(KEY[field], int) else KEY[field] + "x"}
    assert cache.cache_key(changed) != cache.cache_key(KEY)
    assert cache.cache_path(changed, "label") != cache.cache_path(KEY, "label")


def test_bf16_reference_features_are_keyed_by_device_and_fp32_ones_are_shared():
    from types import SimpleNamespace

    from genlab.metrics.evaluate import reference_cache_fields

    def fields(precision, device):
        extractor = SimpleNamespace(precision=precision, device=torch.device(device),
                                    settings={"resize": "pytorch-fid", "precision": precision})
        return cache.cache_key(reference_cache_fields({"dataset": "mnist"}, extractor))

    assert fields("fp32", "cpu") == fields("fp32", "cuda")
    assert fields("bf16", "cpu") != fields("bf16", "cuda")
    assert fields("bf16", "cpu") != fields("fp32", "cpu")


def test_cache_round_trip_and_never_for_other_inputs(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    warnings_seen: list[str] = []
    features = inception_like(10, 2048)
    path = cache.save_cached(KEY, "mnist-test", features, warnings_seen.append)
    assert path.parent == tmp_path and not list(tmp_path.glob("*.tmp*"))
    assert torch.equal(cache.load_cached(KEY, "mnist-test", warnings_seen.append), features)
    assert cache.load_cached({**KEY, "precision": "bf16"}, "mnist-test", warnings_seen.append) is None
    # A file copied under another key's name is caught by the key stored inside it.
    other = {**KEY, "samples": 11}
    cache.cache_path(other, "mnist-test").write_bytes(path.read_bytes())
    assert cache.load_cached(other, "mnist-test", warnings_seen.append) is None
    assert len(warnings_seen) == 1 and "recomputing" in warnings_seen[0]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "tamper"])
def test_a_corrupt_cache_file_is_recomputed_not_trusted(tmp_path, monkeypatch, damage):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    path = cache.save_cached(KEY, "mnist-test", inception_like(10, 2048), print)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:1000])
    elif damage == "garbage":
        path.write_bytes(b"not a cache file")
    else:  # features changed on disk, stored checksum unchanged
        payload = torch.load(path, weights_only=True)
        payload["features"][0, 0] += 1
        torch.save(payload, path)
    seen: list[str] = []
    assert cache.load_cached(KEY, "mnist-test", seen.append) is None
    assert seen and str(path) in seen[0]


def test_an_unwritable_cache_warns_and_the_score_goes_on(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(cache.CACHE_ENV, str(blocker / "cache"))
    seen: list[str] = []
    assert cache.save_cached(KEY, "mnist-test", inception_like(10, 2048), seen.append) is None
    assert len(seen) == 1 and "cannot cache the reference features" in seen[0]
    assert "GENLAB_FID_CACHE" in seen[0]


def test_a_record_that_cannot_be_written_stops_with_the_score_in_the_sentence(tmp_path):
    from genlab.errors import GenlabError
    from genlab.metrics.records import append_record, metrics_path

    checkpoint = tmp_path / "step-00000020.pt"
    metrics_path(checkpoint).mkdir()  # a folder where the JSONL file should be
    with pytest.raises(GenlabError, match=r"cannot write .*step-00000020-metrics.jsonl .*fid 12.34, kid 0.01"):
        append_record(checkpoint, {"fid": 12.34, "kid": 0.01})


def test_a_record_appended_after_a_torn_line_is_kept_whole(tmp_path):
    from genlab.metrics.records import append_record, metrics_path, read_records

    checkpoint = tmp_path / "step-00000020.pt"
    # a full disk tore line 2
    metrics_path(checkpoint).write_text('{"step": 20, "fid": 1.0}\n{"step": 20, "fid": 2.')
    append_record(checkpoint, {"step": 20, "fid": 3.0})
    assert [r["fid"] for r in read_records(checkpoint)] == [1.0, 3.0]


def test_a_scores_file_that_cannot_be_read_is_one_sentence(tmp_path):
    from genlab.errors import GenlabError
    from genlab.metrics.records import metrics_path, read_records

    checkpoint = tmp_path / "step-00000020.pt"
    metrics_path(checkpoint).symlink_to(tmp_path / "gone.jsonl")  # a link to nothing
    with pytest.raises(GenlabError, match=r"cannot read the scores file .*step-00000020-metrics"
                                          r"\.jsonl .*delete it to score the checkpoint again"):
        read_records(checkpoint)


# --- improved precision and recall ------------------------------------------------------------

def brute_force_precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3):
    """Kynkaanniemi et al.'s definitions written out point by point, in float64."""
    def radius(points, i):
        distances = sorted(float(np.linalg.norm(points[i] - p)) for j, p in enumerate(points) if j != i)
        return distances[k - 1]  # the k-th nearest other point

    def covered(probe, manifold):
        return any(np.linalg.norm(probe - m) <= radius(manifold, j) for j, m in enumerate(manifold))

    precision = np.mean([covered(f, real) for f in fake])
    recall = np.mean([covered(r, fake) for r in real])
    return precision, recall


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_precision_recall_equal_a_brute_force_computation(seed, monkeypatch):
    from genlab.metrics import precision_recall as pr

    monkeypatch.setattr(pr, "ROWS", 7)  # several row blocks, so the batching is exercised
    g = np.random.default_rng(seed)
    real = g.normal(size=(40, 6))
    fake = g.normal(loc=0.8, scale=0.7, size=(33, 6))  # narrower and shifted: recall < precision
    expected = brute_force_precision_recall(real, fake)
    got = pr.precision_recall(torch.from_numpy(real), torch.from_numpy(fake))
    assert got == pytest.approx(expected, abs=1e-12)
    assert 0 < got[0] < 1 and 0 < got[1] < 1  # neither extreme: the comparison means something


def test_precision_recall_extremes_and_the_registry_record():
    from genlab.metrics import registry
    from genlab.metrics.precision_recall import precision_recall

    g = torch.Generator().manual_seed(0)
    real = torch.randn(200, 16, generator=g)
    assert precision_recall(real, real.clone()) == (1.0, 1.0)          # identical sets
    assert precision_recall(real, real + 1000.0) == (0.0, 0.0)         # disjoint, far apart
    values = registry.compute(("pr",), FeatureStats.of(real), FeatureStats.of(real + 1000.0))
    assert values == {"precision": 0.0, "recall": 0.0}
    record = {**values, "metrics": ["pr"]}
    assert registry.describe(record) == "precision 0.000  recall 0.000"


def test_kid_of_one_subset_reports_no_spread():
    from genlab.metrics import registry

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1000, 8, generator=g), torch.randn(1000, 8, generator=g) + 0.1
    whole = registry.compute(("kid",), FeatureStats.of(a), FeatureStats.of(b))
    assert whole["kid_subsets"] == 1 and "kid_std" not in whole  # every subset is the whole set
    assert registry.describe({**whole, "metrics": ["kid"]}).endswith("(1 subset)")
    larger = registry.compute(("kid",), FeatureStats.of(torch.cat([a, a + 0.01])), FeatureStats.of(b))
    assert larger["kid_subsets"] == 100 and larger["kid_std"] > 0
    assert "+-" in registry.describe({**larger, "metrics": ["kid"]})


def test_metric_names_are_checked_and_old_records_still_read():
    from genlab.errors import GenlabError
    from genlab.metrics import registry

    assert registry.parse_metrics("fid, pr") == ("fid", "pr")
    assert registry.parse_metrics("all") == ("fid", "kid", "pr")
    for bad in ("fid,is", "", "fid,fid", "latent_paths"):  # a generator metric is not eval's
        with pytest.raises(GenlabError, match="--metrics"):
            registry.parse_metrics(bad)
    old = {"fid": 23.2, "kid": 0.0144, "kid_std": 0.0007, "step": 25000}  # before the registry
    assert registry.metrics_of(old) == ["fid", "kid"]
    assert registry.values_of(old) == {"fid": 23.2, "kid": 0.0144, "kid_std": 0.0007}

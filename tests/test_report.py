"""`genlab report`: a self-contained page and its Markdown twin about several runs."""

from __future__ import annotations

import re

import pytest

from conftest import _inception_installed, run_cli


@pytest.fixture(scope="module")
def runs(digit_runs):
    assert run_cli("latents", digit_runs / "vae").returncode == 0  # a figure the report picks up
    return digit_runs


def test_report_is_one_self_contained_page_with_every_section(runs, tmp_path):
    out = tmp_path / "report"
    result = run_cli("report", runs / "vae", runs / "dcgan", "-o", out)
    assert result.returncode == 0, result.stderr
    page = (out / "report.html").read_text()
    # No network reference: every image is embedded, no external script or style.
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    images = re.findall(r"<img src=\"([^\"]+)\"", page)
    assert images and all(src.startswith("data:image/png;base64,") for src in images)
    for text in ("Comparison", "Samples side by side", "Settings", "num_training_steps",
                 "generator loss", "nonsaturating", "genlab version", "GAN equilibrium",
                 "loss ratio D over G", "latent scatter", "interpolation between prior draws",
                 "reconstructions at step 20", "none stored (run `genlab eval`)"):
        assert text in page, text
    # Sample diversity is measured in FID's Inception features when the weights are installed.
    assert ("Inception-feature distance" if _inception_installed() else "RMS pixel distance") in page
    # vae: curves, val, reconstructions, samples, interpolation, scatter, manifold (7);
    # dcgan: curves, equilibrium, samples, interpolation (4); and 2 side by side.
    assert len(images) == 13
    markdown = (out / "report.md").read_text()
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert len(linked) == 13 and all((out / link).is_file() for link in linked)


def test_report_names_a_folder_that_is_not_a_run(tmp_path):
    result = run_cli("report", tmp_path, "-o", tmp_path / "out")
    assert result.returncode == 2 and "is not a genlab run folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_runs_that_differ_only_in_their_seed_get_mean_std_and_n(runs, tmp_path):
    import json
    import shutil

    from genlab.metrics.records import append_record
    from genlab.viz.report import build_report

    folders = []
    for seed, fid in ((0, 30.0), (1, 34.0)):
        folder = tmp_path / f"seed{seed}"
        shutil.copytree(runs / "vae", folder)
        config = json.loads((folder / "config.json").read_text())
        config["train"]["seed"] = seed
        (folder / "config.json").write_text(json.dumps(config))
        append_record(folder / "checkpoints" / "step-00000020.pt",
                      {"step": 20, "fid": fid, "metrics": ["fid"],
                       "settings": {"protocol": "16 vs 16", "precision": "fp32"}})
        folders.append(folder)
    _, md = build_report(folders, tmp_path / "report", interpolation=False, log=lambda m: None)
    text = md.read_text()
    assert "### Over seeds (runs that differ only in --seed)" in text
    assert "| seed0, seed1 | 0 1 | 32 +- 2.8 (n=2) |" in text


def test_latent_path_scores_appear_as_the_registry_describes_them(runs, tmp_path):
    import shutil

    from genlab.metrics.records import append_record
    from genlab.viz.report import build_report

    folder = tmp_path / "vae"
    shutil.copytree(runs / "vae", folder)
    append_record(folder / "checkpoints" / "step-00000020.pt",
                  {"metric": "latent_paths", "step": 20, "midpoint_fid": 41.25,
                   "midpoint_kid": 0.03, "smoothness": 2.5, "path_length_ratio": 1.75,
                   "settings": {"protocol": "2 paths of 3 frames"}})
    _, md = build_report([folder], tmp_path / "report", interpolation=False, log=lambda m: None)
    text = md.read_text()
    # the comparison's columns and the run's score rows: the shown values, in the registry's order
    assert "| midpoint_fid | smoothness | path_length_ratio |" in text
    assert "| 41.25 | 2.5 | 1.75 |" in text
    assert "| 20 | latent_paths | midpoint_fid 41.25, smoothness 2.5, path_length_ratio 1.75 |" in text

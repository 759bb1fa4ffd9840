"""`genlab sweep`: one run per combination, resumable, with a results table."""

from __future__ import annotations

import csv
import json

import pytest

from conftest import needs_inception, run_cli
from genlab.errors import GenlabError
from genlab.sweep import combinations, train_argv


def test_combinations_are_the_product_of_the_values_and_named_by_what_varies():
    runs = combinations({"latent_dim": [3, 10], "learning_rate": [1e-3, 1e-4], "dataset": ["digits"]})
    assert [r.name for r in runs] == ["latent-dim-3_learning-rate-0.001",
                                      "latent-dim-3_learning-rate-0.0001",
                                      "latent-dim-10_learning-rate-0.001",
                                      "latent-dim-10_learning-rate-0.0001"]
    assert runs[3].settings == {"latent_dim": 10, "learning_rate": 1e-4, "dataset": "digits"}
    assert runs[3].varied == {"latent_dim": 10, "learning_rate": 1e-4}
    assert combinations({"latent_dim": [5]})[0].name == "run"
    with pytest.raises(GenlabError, match="--latent-dim lists a value twice"):
        combinations({"latent_dim": [3, 3]})
    argv = train_argv("vae", runs[0], "out/x")
    assert argv[argv.index("--latent-dim") + 1] == "3" and argv[argv.index("--run-dir") + 1] == "out/x"


def test_sweep_trains_each_combination_resumes_and_tabulates(tmp_path):
    out = tmp_path / "sweep"
    args = ["sweep", "vae", "--dataset", "digits", "--latent-dim", "2", "4", "--steps", "10",
            "--saving-steps", "10", "--fid-samples", "0", "--out", out, "--parallel", "2"]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert "2 run(s) of vae varying latent_dim" in result.stderr
    for z in (2, 4):
        config = json.loads((out / f"latent-dim-{z}" / "config.json").read_text())
        assert config["model_config"]["latent_dim"] == z
        assert (out / f"latent-dim-{z}" / "checkpoints" / "step-00000010.pt").is_file()
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["run"], r["latent-dim"], r["status"]) for r in rows] == [
        ("latent-dim-2", "2", "ok"), ("latent-dim-4", "4", "ok")]
    assert "| run | latent-dim |" in (out / "results.md").read_text()
    again = run_cli(*args[:-2])  # one at a time: both runs are already trained
    assert again.returncode == 0, again.stderr
    assert "already trained to step 10" in (out / "latent-dim-2.log").read_text()


def test_a_failing_combination_is_named_and_the_others_still_run(tmp_path):
    out = tmp_path / "sweep"
    result = run_cli("sweep", "vae", "--dataset", "digits", "--arch", "mlp", "conv",
                     "--image-size", "30", "--steps", "2", "--fid-samples", "0", "--out", out)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "1 of 2 runs failed (arch-conv)" in result.stderr
    assert "divisible by 4" in (out / "arch-conv.log").read_text()
    assert (out / "arch-mlp" / "checkpoints" / "step-00000002.pt").is_file()


def test_conflicting_flags_stop_before_any_run(tmp_path):
    result = run_cli("sweep", "vaegan", "--epochs", "1", "--steps", "3", "5",
                     "--out", tmp_path / "s")
    assert result.returncode == 2 and "pass one of them" in result.stderr
    assert not (tmp_path / "s").exists()


@needs_inception
@pytest.mark.extended  # ~25 s; in `make test-extended` to keep the suite under 10 minutes
def test_the_table_has_each_runs_fid(tmp_path):
    out = tmp_path / "sweep"
    result = run_cli("sweep", "dcgan", "--dataset", "digits", "--steps", "4", "--seed", "0", "1",
                     "--fid-samples", "16", "--fid-precision", "bf16", "--out", out)
    assert result.returncode == 0, result.stderr
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["seed"] for r in rows] == ["0", "1"]
    assert all(float(r["fid"]) > 0 and r["step"] == "4" for r in rows)
    assert rows[0]["fid"] != rows[1]["fid"]
    assert "16 generated vs 16 real images" in rows[0]["protocol"]

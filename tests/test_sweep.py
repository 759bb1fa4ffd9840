"""`genlab sweep`: one run per combination, resumable, with a results table."""

from __future__ import annotations

import csv
import json

import pytest

from conftest import FAST_FID_PRECISION, needs_inception, run_cli
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


def test_a_sweep_passes_max_time_to_each_run_as_seconds():
    from genlab.cli import build_parser
    from genlab.cli.flags import config_settings

    args = build_parser().parse_args(["sweep", "vae", "--out", "o", "--max-time", "2h20m",
                                      "--latent-dim", "2", "4"])
    settings = {k: v if isinstance(v, list) else [v]
                for k, v in config_settings(args, "vae").items()}
    for run in combinations(settings):
        argv = train_argv("vae", run, "out/x")
        assert argv[argv.index("--max-time") + 1] == "8400"
        assert build_parser().parse_args(argv[3:]).max_time == 8400


def test_the_table_takes_a_checkpoints_newest_score(tmp_path):
    from genlab.metrics.records import append_record
    from genlab.sweep import _latest_score

    checkpoint = tmp_path / "checkpoints" / "step-00000010.pt"
    checkpoint.parent.mkdir()
    for fid in (30.0, 20.0):  # scored at training's end, then again by `genlab eval`
        append_record(checkpoint, {"step": 10, "fid": fid, "metrics": ["fid"]})
    assert _latest_score(tmp_path)["fid"] == 20.0


def test_a_run_that_exited_0_before_its_last_step_is_tabulated_as_stopped_not_ok(tmp_path):
    """--max-time ends a run with exit 0 and a checkpoint short of its steps: the table must not
    call it done."""
    from genlab.sweep import results

    out = tmp_path / "sweep"
    [run] = combinations({"latent_dim": [2]})
    result = run_cli("train", "vae", "--dataset", "digits", "--latent-dim", "2", "--steps", "10",
                     "--saving-steps", "10", "--fid-samples", "0", "--run-dir", out / run.name)
    assert result.returncode == 0, result.stderr
    assert results([run], out, {run.name: 0})[0]["status"] == "ok"
    config = json.loads((out / run.name / "config.json").read_text())
    config["train"]["num_training_steps"] = 20  # as a run stopped at step 10 of 20 leaves it
    (out / run.name / "config.json").write_text(json.dumps(config))
    assert results([run], out, {run.name: 0})[0]["status"] == (
        "stopped at step 10 of 20; run the sweep again to resume")
    assert results([run], out, {run.name: 3})[0]["status"] == "failed (3)"


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
def test_the_table_has_each_runs_fid(tmp_path):
    out = tmp_path / "sweep"
    result = run_cli("sweep", "dcgan", "--dataset", "digits", "--steps", "4", "--seed", "0", "1",
                     "--fid-samples", "16", "--fid-precision", FAST_FID_PRECISION, "--out", out)
    assert result.returncode == 0, result.stderr
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["seed"] for r in rows] == ["0", "1"]
    assert all(float(r["fid"]) > 0 and r["step"] == "4" for r in rows)
    assert rows[0]["fid"] != rows[1]["fid"]
    assert "16 generated vs 16 real images" in rows[0]["protocol"]


def test_seeds_give_each_setting_its_mean_std_and_n(tmp_path):
    from genlab.sweep import summarise, write_table

    runs = combinations({"latent_dim": [3, 10], "seed": [0, 1, 2]})
    fids = {(3, 0): 160.0, (3, 1): 170.0, (3, 2): 363.0, (10, 0): 40.0, (10, 1): 42.0}
    rows = []
    for run in runs:
        key = (run.settings["latent_dim"], run.settings["seed"])
        row = {"run": run.name, "latent-dim": str(key[0]), "seed": str(key[1])}
        if key in fids:  # (10, 2) failed: no score
            row.update(fid=f"{fids[key]:.4g}", _values={"fid": fids[key]})
        rows.append(row)
    summary = summarise(rows, runs)
    assert [(r["latent-dim"], r["seeds"], r["fid"]) for r in summary] == [
        ("3", "0 1 2", "231 +- 1.1e+02 (n=3)"), ("10", "0 1 2", "41 +- 1.4 (n=2)")]
    mean, std, n = summary[0]["_fid"]
    assert (mean, n) == (231.0, 3) and std == pytest.approx(114.42, abs=0.01)  # sample std (n - 1)
    md, _ = write_table(rows, tmp_path, runs)
    text = md.read_text()
    assert "| latent-dim | seeds | fid |" in text and "231 +- 1.1e+02 (n=3)" in text
    assert "| run | latent-dim | seed | fid |" in text  # each run's value too
    assert (tmp_path / "summary.csv").is_file() and (tmp_path / "results.png").is_file()

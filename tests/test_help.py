"""`genlab --help` and each model's flags: built without torch, each model showing its own
defaults; a model that needs data other than the default data set says which when given none."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO, run_cli
from genlab.cli import build_parser
from genlab.models import MODELS, SPECS
from test_cli import assert_one_sentence_error


def test_building_the_parser_imports_no_torch():
    code = ("import sys, genlab.cli; genlab.cli.build_parser(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy', "
            "'h5py', 'PIL')))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_help_of_a_model_imports_no_torch():
    code = ("import sys, contextlib, io, genlab.cli\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    try:\n"
            "        genlab.cli.main(['train', 'vaegan', '--help'])\n"
            "    except SystemExit:\n"
            "        pass\n"
            "print('torch' in sys.modules, 'usage: genlab train vaegan' in out.getvalue())")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.stdout.split() == ["False", "True"], result.stderr


def _help(*command: str) -> str:
    result = run_cli(*command, "--help")
    assert result.returncode == 0, result.stderr
    return " ".join(result.stdout.split())  # argparse's line breaks out of the way


def test_each_model_shows_its_own_defaults():
    vaegan = _help("train", "vaegan")
    assert "pixels a side (default: 64)" in vaegan
    assert "this many channels (default: 3)" in vaegan
    assert "(default: 100)" in vaegan and "(default: 25000)" not in vaegan
    assert "train until this step (default: as many as --epochs makes" in vaegan
    assert "every optimiser (default: 0.0003)" in vaegan
    vae = _help("train", "vae")
    assert "train until this step (default: 25000)" in vae
    assert "every optimiser (default: 0.001)" in vae
    assert "homework's Resize(32)" in vae  # the data set's own size: the field's wording
    assert "every optimiser (default: 0.0002)" in _help("train", "dcgan")


def test_the_specs_and_the_model_classes_agree():
    assert set(SPECS) == set(MODELS)
    for name, spec in SPECS.items():
        cls = MODELS[name]
        assert cls.spec is spec and cls.name == name
        assert cls.config_class is spec.config_class and cls.train_defaults == spec.train_defaults


def test_the_vaegan_without_data_says_what_it_needs(tmp_path):
    result = run_cli("train", "vaegan", "--run-dir", tmp_path / "run")
    assert_one_sentence_error(result, "64x64 colour images", "--data", "genlab prepare")
    assert not (tmp_path / "run").exists()


def test_the_lab_defaults_of_the_vaegan_reach_its_config():
    from genlab.run import new_config

    config = new_config("vaegan", {"data_path": "faces.h5"})
    assert (config.data.image_size, config.data.channels) == (64, 3)
    assert (config.train.epochs, config.train.batch_size, config.train.learning_rate) == (
        100.0, 64, 3e-4)


@pytest.mark.parametrize("model", sorted(SPECS))
def test_every_flag_of_a_model_parses_from_its_spec(model):
    args = build_parser().parse_args(["train", model, "--seed", "3"])
    assert args.model == model and args.seed == 3


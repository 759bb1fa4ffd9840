"""Models by name: the explicit registry the CLI and the run configs use.

`SPECS` (genlab.models.specs) says what each model is without importing torch: the command line's
flags and help are built from it. `MODELS`, the classes with their networks, is imported on first
use (`from genlab.models import MODELS`), so `genlab --help` never loads torch.
"""

from genlab.models.specs import SPECS, ModelSpec

_WITH_TORCH = {"MODELS": "genlab.models.registry", "GenerativeModel": "genlab.models.base",
               "Phase": "genlab.models.base"}


def __getattr__(name: str):
    if name in _WITH_TORCH:
        import importlib

        return getattr(importlib.import_module(_WITH_TORCH[name]), name)
    raise AttributeError(f"module 'genlab.models' has no attribute {name!r}")


__all__ = ["MODELS", "SPECS", "GenerativeModel", "ModelSpec", "Phase"]

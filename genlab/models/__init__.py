"""Models by name: the explicit registry the CLI and the run configs use."""

from genlab.models.base import GenerativeModel, Phase
from genlab.models.vae import VAE

MODELS: dict[str, type[GenerativeModel]] = {"vae": VAE}

__all__ = ["MODELS", "GenerativeModel", "Phase"]

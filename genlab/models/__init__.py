"""Models by name: the explicit registry the CLI and the run configs use."""

from genlab.models.base import GenerativeModel, Phase
from genlab.models.dcgan import DCGAN
from genlab.models.vae import VAE

MODELS: dict[str, type[GenerativeModel]] = {"vae": VAE, "dcgan": DCGAN}

__all__ = ["MODELS", "GenerativeModel", "Phase"]

"""Models by name: the explicit registry the CLI and the run configs use."""

from genlab.models.base import GenerativeModel, Phase
from genlab.models.dcgan import DCGAN
from genlab.models.vae import VAE
from genlab.models.vaegan import VAEGAN

MODELS: dict[str, type[GenerativeModel]] = {"vae": VAE, "dcgan": DCGAN, "vaegan": VAEGAN}

__all__ = ["MODELS", "GenerativeModel", "Phase"]

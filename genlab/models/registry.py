"""The model classes by name: the networks behind each entry of genlab.models.specs.SPECS."""

from genlab.models.base import GenerativeModel
from genlab.models.dcgan import DCGAN
from genlab.models.specs import SPECS
from genlab.models.vae import VAE
from genlab.models.vaegan import VAEGAN

MODELS: dict[str, type[GenerativeModel]] = {cls.name: cls for cls in (VAE, DCGAN, VAEGAN)}

if set(MODELS) != set(SPECS):  # a model with no spec has no flags; a spec with no model, no networks
    raise ImportError(f"genlab.models: specs {sorted(SPECS)} but models {sorted(MODELS)}")

"""genlab: train, evaluate and explain image generative models."""

__version__ = "0.4.0"

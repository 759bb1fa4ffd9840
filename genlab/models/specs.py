"""What each model is without its networks: its config dataclass, the training and data settings
it changes, what it can do, and its one-line title.

Torch-free on purpose: `genlab --help`, every model's flags and a run's settings are built from
this module alone, in a fraction of the second that importing torch takes. The networks
(genlab.models.vae, dcgan, vaegan) import their configs from here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

from genlab.options import option, run_tag

# --- the settings' choices and sizes (the networks read the same names) ------------------------

# exp(2 * 20) = 2.4e17: any log sigma above this is clamped in the forward pass so the KL and
# the sampled z stay finite in float32 and bfloat16; no trained posterior comes near it.
LOG_SIGMA_MAX = 20.0
# What an encoder's second half outputs: log sigma, or log sigma^2 (the lab's table's "Log Var").
POSTERIOR_HEADS = ("log-var", "log-sigma")
GENERATOR_LOSSES = ("nonsaturating", "saturating")

VAE_ARCHS = ("conv", "conv-shallow", "mlp", "larsen64")
INITS = ("default", "kaiming")

DCGAN_ARCHS = {"homework": 32, "dcgan64": 64}   # --arch -> image size
DEFAULT_HIDDEN = {"homework": 16, "dcgan64": 64}
POLICIES = ("none", "translation", "cutout", "translation,cutout")  # DiffAugment's

LARSEN_SIZE = 64                   # the lab's tables: 64x64 images
HIDDEN = 2048                      # the encoder heads' hidden width
DISCRIMINATOR_HIDDEN = 1024        # the discriminator's FC width
# Dis_l: a convolution's output before its BatchNorm and ReLU. conv4 is the paper's choice (the
# authors' celeba_aegan.py: recon_depth=9, the 4th convolution of their discriminator). "pixel"
# measures the similarity on the images themselves: a Gaussian VAE plus a GAN (the paper's
# VAE + GAN ablation).
FEATURE_LAYERS = ("conv1", "conv2", "conv3", "conv4", "pixel")
OPTIMIZERS = ("rmsprop", "adam")
REDUCTIONS = ("mean", "sum")
SIMILARITY_PASSES = ("separate", "joint")


# --- the config dataclasses --------------------------------------------------------------------

@dataclass
class VAEConfig:
    arch: str = option("conv", "encoder/decoder: conv (the homework's table), conv-shallow, mlp, "
                       "larsen64 (Larsen et al.'s, for 64x64 images)", choices=VAE_ARCHS)
    latent_dim: int = option(64, "size of the latent code z", positive=True, maximum=65_536)
    init: str = option(
        "default", "weight initialisation: default (PyTorch's, as in the homework's starter, "
        "which sets none) or kaiming (He et al. 2015: normal weights of std sqrt(2 / fan_in) "
        "for every convolution and linear layer, zero biases)", choices=INITS, legacy="default")


@dataclass
class DCGANConfig:
    arch: str = option("homework", "networks: homework (the homework's table, 32x32) or dcgan64 "
                       "(pytorch/examples' 64x64 dcgan: G is the DCGAN paper's at half width, "
                       "D its mirror)",
                       choices=tuple(DCGAN_ARCHS))
    latent_dim: int = option(100, "size of the latent code z", positive=True, maximum=65_536)
    generator_hidden_dim: int | None = option(
        None, "hidden size h of the generator: 4h, 2h, h channels (8h first for dcgan64); "
        "default 16 for the homework, 64 for dcgan64", positive=True, tag="g", maximum=4096)
    discriminator_hidden_dim: int | None = option(
        None, "hidden size h of the discriminator: h, 2h, 4h channels (then 8h for dcgan64); "
        "default 16 for the homework, 64 for dcgan64", positive=True, tag="d", maximum=4096)
    generator_loss: str = option(
        "nonsaturating", "nonsaturating: maximise log D(G(z)) (the log-D trick); saturating: "
        "minimise log(1 - D(G(z))) (the minimax game's own term)", choices=GENERATOR_LOSSES)
    diff_augment: str = option(
        "none", "DiffAugment policy for every image D sees in training, real and generated "
        "(none: the homework; translation,cutout: against D memorising a small data set)",
        choices=POLICIES, tag="aug-")


def _dcgan_hidden_dims(config: DCGANConfig) -> None:
    if config.generator_hidden_dim is None:
        config.generator_hidden_dim = DEFAULT_HIDDEN[config.arch]
    if config.discriminator_hidden_dim is None:
        config.discriminator_hidden_dim = DEFAULT_HIDDEN[config.arch]


@dataclass
class VAEGANConfig:
    latent_dim: int = option(2048, "size of the latent code z", positive=True, maximum=65_536)
    feature_layer: str = option(
        "conv4", "discriminator layer l whose activations Dis_l(x) define the similarity "
        "(convN: the Nth convolution's output before its BatchNorm, conv4 as in the paper; "
        "pixel: the images themselves, a VAE plus a GAN)", choices=FEATURE_LAYERS, tag="l")
    beta: float = option(1.0, "weight of the KL prior term in the encoder's loss (beta-VAE)",
                         positive=True)
    beta_warmup_steps: int = option(
        0, "KL warm-up: the prior term's weight rises linearly from 0 to --beta over this many "
        "steps, so the encoder can carry information before the decoder uses it (0: --beta "
        "from the first step)", non_negative=True, tag="betawarmup", maximum=10**10)
    gamma: float = option(5.0, "weight of the feature-wise reconstruction term against the "
                          "GAN term in the decoder's loss", positive=True)
    llike_reduction: str = option(
        "mean", "how L_llike and L_prior reduce over their elements: mean (public "
        "reimplementations' reading, nn.MSELoss: the squared feature error averaged over the layer's "
        "features, the KL over the latent dimensions) or sum (the paper's Gaussian log-likelihood: 1/2 the summed squared error, "
        "the KL summed; gamma 5 on the mean is about 6.1e-4 on the sum at conv4)",
        choices=REDUCTIONS, legacy="sum")
    similarity_pass: str = option(
        "separate", "where Dis_l comes from: separate (a second pass over [x, x~] up to the "
        "layer, under that batch's statistics, as the authors' code) or joint (from the GAN "
        "pass over [x, x~, x_p]: no second pass, 1.2x (bf16) to 1.6x (fp32) faster a step on "
        "a 2-core CPU; the layer's "
        "BatchNorm'd inputs then include the prior samples)", choices=SIMILARITY_PASSES,
        tag="sim")
    posterior_head: str = option(
        "log-var", "what the encoder's second head outputs: log-var (the lab's table: log "
        "sigma^2) or log-sigma", choices=POSTERIOR_HEADS, legacy="log-sigma")
    generator_loss: str = option(
        "nonsaturating", "the decoder's GAN term on reconstructions and prior samples: "
        "nonsaturating -log D(G) or saturating log(1 - D(G))", choices=GENERATOR_LOSSES)
    optimizer: str = option("rmsprop", "optimiser of all three networks: rmsprop (the paper) "
                            "or adam", choices=OPTIMIZERS)
    equilibrium_margin: float = option(
        0.0, "the authors' equilibrium rule: skip the discriminator's update while its real or "
        "fake cross entropy is below --equilibrium minus this margin, the decoder's while one "
        "is above --equilibrium plus it (0: update both every step)", non_negative=True,
        tag="margin")
    equilibrium: float = option(
        0.68, "the cross entropy the equilibrium rule keeps the discriminator near (0.68 ~ "
        "-log 0.5)", positive=True, tag="eq")
    max_log_sigma: float = option(
        LOG_SIGMA_MAX, "upper bound on the posterior's log sigma in the forward pass (the "
        "gradient passes through it); 0 keeps q(z|x) no wider than the prior N(0, I), which "
        "stops the few huge latents a BatchNorm'd encoder head gives outlier images in the "
        "first steps", tag="maxls")
    discriminator_lr_scale: float = option(
        1.0, "the discriminator's learning rate as a multiple of --learning-rate (below 1: a "
        "slower discriminator, whose features the encoder and decoder can follow)", positive=True,
        tag="dlr")
    encoder_hidden_dim: int = option(
        HIDDEN, "width of each encoder head's hidden FC layer (the lab's 2048, at which the two "
        "heads hold 67 M weights, half the model's at latent 2048: a smaller width trains "
        "and checkpoints faster)",
        positive=True, maximum=16_384, tag="eh")  # 16384: 2 x 268 M weights, ~6 GB to train
    discriminator_hidden_dim: int = option(
        DISCRIMINATOR_HIDDEN, "width of the discriminator's hidden FC layer", positive=True,
        maximum=16_384, tag="dh")


# --- the registry ------------------------------------------------------------------------------

def _nothing_to_fill(config: Any) -> None:
    """No setting of this model defaults to a value that depends on another."""


def _fp32_on_cpu(config: Any) -> bool:
    return False


def _vae_bf16_on_cpu(config: VAEConfig) -> bool:
    # --arch larsen64 at batch 64: 1.32x its fp32 step on a 2-core AVX-512 BF16 CPU; the
    # homework's 32x32 networks are slower in bf16 there.
    return config.arch == "larsen64"


def _dcgan_bf16_on_cpu(config: DCGANConfig) -> bool:
    # --arch dcgan64 at batch 64: 1.58x its fp32 step on a 2-core AVX-512 BF16 CPU
    return config.arch == "dcgan64"


def _vaegan_bf16_on_cpu(config: VAEGANConfig) -> bool:
    # batch 64 on a 2-core AVX-512 BF16 CPU: 1.8-2.4x the fp32 step (benchmarks/vaegan_step.py)
    return True


# What a model can do beyond decoding latents: each names the method that does it.
CAPABILITIES = {"encoder": "encode", "discriminator": "discriminate", "prior": "sample_latents"}


@dataclass(frozen=True)
class ModelSpec:
    """A model as the command line and run folders know it."""

    name: str
    title: str                 # one line: the help's
    config_class: type
    # TrainConfig values this model changes (TrainConfig's own defaults are the homework VAE's:
    # batch 32, Adam 1e-3, 25,000 steps), so each default is written once.
    train_defaults: dict[str, Any]
    capabilities: frozenset[str]     # keys of CAPABILITIES
    data_defaults: dict[str, Any] = field(default_factory=dict)  # DataConfig values it changes
    # A fresh run given no data source at all stops with this sentence (None: the default data
    # set suits the model).
    needs_data: str | None = None
    # Makes settings whose default depends on others (None in the dataclass) concrete, so the
    # stored config says what was built.
    fill_defaults: Callable[[Any], None] = _nothing_to_fill
    # Whether --precision auto trains the model so configured under bf16 autocast on a CPU that
    # has bf16 instructions: only where it was measured faster (benchmarks/precision_throughput.py).
    bf16_on_cpu: Callable[[Any], bool] = _fp32_on_cpu

    def run_tags(self, config: Any) -> list[str]:
        """Parts of the default run folder name that tell this model's runs apart: z<latent>,
        then one per setting that differs from the model's defaults for the same --arch (which
        the name's first part says)."""
        default = self.config_class(**({"arch": config.arch} if hasattr(config, "arch") else {}))
        self.fill_defaults(default)
        tags = [f"z{config.latent_dim}"]
        for config_field in dataclasses.fields(config):
            value = getattr(config, config_field.name)
            if config_field.name not in ("latent_dim", "arch") and value != getattr(
                    default, config_field.name):
                tags.append(run_tag(config_field, value))
        return tags


SPECS: dict[str, ModelSpec] = {spec.name: spec for spec in (
    ModelSpec("vae", "Gaussian encoder q(z|x) = N(mu, sigma^2), prior N(0, I), Bernoulli decoder "
              "p(x|z).", VAEConfig,
              {}, frozenset({"encoder", "prior"}), bf16_on_cpu=_vae_bf16_on_cpu),
    ModelSpec("dcgan", "Deep convolutional GAN: generator G(z), discriminator D(x), trained in "
              "alternating phases.", DCGANConfig,
              {"batch_size": 64, "learning_rate": 2e-4},
              frozenset({"discriminator", "prior"}), fill_defaults=_dcgan_hidden_dims,
              bf16_on_cpu=_dcgan_bf16_on_cpu),
    # The lab's settings: lr 3e-4, batch 64, 100 epochs (converted to steps for the data set),
    # on 64x64 colour images.
    ModelSpec("vaegan", "VAE/GAN (Larsen et al. 2015): a VAE that reconstructs in a GAN "
              "discriminator's features.", VAEGANConfig,
              {"batch_size": 64, "learning_rate": 3e-4, "epochs": 100.0},
              frozenset({"encoder", "discriminator", "prior"}),
              data_defaults={"image_size": LARSEN_SIZE, "channels": 3},
              needs_data="the VAE/GAN trains on 64x64 colour images such as CelebA's faces: pass "
              "--data with an HDF5 file or a folder of images (`genlab prepare FOLDER -o "
              "faces.h5 --size 64` turns a folder into an HDF5 file), or a named data set with "
              "--dataset", bf16_on_cpu=_vaegan_bf16_on_cpu),
)}

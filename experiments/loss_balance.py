"""Which loss steers each network of a VAE/GAN at a checkpoint: the gradient each term of its
loss puts on the encoder's and the decoder's parameters, and the part of the optimiser's update
each term makes, under the run's --llike-reduction and (gradients) under the other one.

Algorithm 1 (Larsen et al. 2015) trains the encoder on beta L_prior + L_llike and the decoder
on gamma L_llike + L_GAN. For each network and each batch this gives:
* each term's gradient norm, and the cosine between the two terms' gradients: whether they pull
  together (> 0) or against each other (< 0);
* with RMSprop (the default; no momentum, not centred), each term's share of the update itself.
  RMSprop divides every parameter's gradient by sqrt(v) + eps, v the running mean square of
  that parameter's gradients, so a term that loads parameters with a large v moves them less
  than its gradient norm says. The update is linear in the gradient once v is known, so
  g_term / (sqrt(v') + eps), with v' = alpha v + (1 - alpha) g^2 from the checkpoint's v and
  this batch's whole gradient g, is exactly the part of this step's update the term makes.

The two readings of the lab's losses differ by constant factors, so one pass gives both. With
F similarity features and d latent dimensions, `sum` (the paper's Gaussian log-likelihood and
KL in nats) is `mean` (the public lab solutions' nn.MSELoss and per-dimension KL) with L_llike
times F/2 and L_prior times d. At F = 16,384 and d = 2,048 that weighs L_llike 4 times heavier
against the KL in the encoder, and 8,192 times heavier against L_GAN in the decoder unless
gamma is divided by as much.

The batches are the run's own training faces, drawn with a fixed seed, in training mode (batch
statistics), with the step's draws of eps and z_p, as a training step computes them; nothing is
updated or written.

    .venv/bin/python experiments/loss_balance.py RUN [--step N] [--batches 4] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from genlab.checkpoint import load_checkpoint
from genlab.data import load_split
from genlab.data.transforms import to_model_range
from genlab.metrics.stats import mean_and_std
from genlab.models.base import Step
from genlab.models.noise import WHOLE
from genlab.run import load_run

# (network, its loss's two terms): how each term is read from step_losses' values
TERMS = {
    "encoder": (("prior", lambda losses, model: losses["encoder_loss"] - losses["llike"]),
                ("llike", lambda losses, model: losses["llike"])),
    "decoder": (("gamma llike", lambda losses, model: model.config.gamma * losses["llike"]),
                ("GAN", lambda losses, model: losses["generator_loss"])),
}


def flat_gradient(loss: torch.Tensor, parameters: list[torch.Tensor]) -> torch.Tensor:
    grads = torch.autograd.grad(loss, parameters, retain_graph=True, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).flatten()
                      for g, p in zip(grads, parameters)])


def rmsprop_scale(state: dict, parameters: list[torch.Tensor],
                  gradient: torch.Tensor) -> torch.Tensor | None:
    """1 / (sqrt(v') + eps) per parameter, flattened as flat_gradient's, for a network's
    RMSprop state_dict and this step's whole gradient; None for another optimiser or setting."""
    group = state["param_groups"][0] if len(state["param_groups"]) == 1 else {}
    if ("alpha" not in group or group.get("momentum") or group.get("centered")
            or group.get("weight_decay") or len(state["state"]) != len(parameters)):
        return None
    mean_square = torch.cat([state["state"][index]["square_avg"].flatten()
                             for index in group["params"]])
    mean_square = group["alpha"] * mean_square + (1 - group["alpha"]) * gradient.square()
    return 1 / (mean_square.sqrt() + group["eps"])


def norms_and_cosine(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor,
                     what: str) -> dict[str, float]:
    return {f"{what} norm, {name_a}": a.norm().item(), f"{what} norm, {name_b}": b.norm().item(),
            f"{what} cosine": torch.nn.functional.cosine_similarity(a, b, dim=0).item(),
            f"{what} ratio, {name_a} / {name_b}": (a.norm() / b.norm()).item()}


def balance_of_batch(model, x: torch.Tensor, step_index: int,
                     optimizer_states: dict[str, dict] | None = None) -> dict[str, dict[str, float]]:
    """Each network's two terms on one batch: their gradients' norms, cosine and ratio, and with
    the network's RMSprop state (`optimizer_states`) the same of their parts of the update."""
    step = Step(step_index, WHOLE, model.draw_step(len(x), WHOLE, x.device))
    losses = model.step_losses(x, step)
    out = {}
    for network, ((name_a, term_a), (name_b, term_b)) in TERMS.items():
        parameters = list(getattr(model, network).parameters())  # the optimiser's order
        grad_a = flat_gradient(term_a(losses, model), parameters)
        grad_b = flat_gradient(term_b(losses, model), parameters)
        out[network] = norms_and_cosine(name_a, grad_a, name_b, grad_b, "gradient")
        state = (optimizer_states or {}).get(network)
        scale = rmsprop_scale(state, parameters, grad_a + grad_b) if state else None
        if scale is not None:
            out[network].update(norms_and_cosine(name_a, grad_a * scale, name_b, grad_b * scale,
                                                 "update"))
    return out


def other_reading(reduction: str, features: int, latent: int) -> dict[str, float]:
    """What the other --llike-reduction multiplies each term by (the module's docstring)."""
    to_sum = {"prior": latent, "llike": features / 2, "gamma llike": features / 2, "GAN": 1.0}
    return to_sum if reduction == "mean" else {k: 1 / v for k, v in to_sum.items()}


def measure(run: Path, step: int | None, batches: int, batch_size: int, seed: int = 0) -> dict:
    trained = load_run(run, torch.device("cpu"), warn=print, step=step)
    model, config = trained.model, trained.config
    if config.model != "vaegan":
        raise SystemExit(f"{run} is a {config.model} run; loss_balance reads a VAE/GAN's "
                         "encoder and decoder losses")
    images = load_split(config.data, config.data.train_split).images
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(images), generator=generator)[:batches * batch_size]
    torch.manual_seed(seed)  # the step's eps and z_p
    optimizer_states = load_checkpoint(trained.checkpoint)["optimizers"]
    model.train()  # batch statistics, as in a training step; nothing is stepped or saved
    per_batch = [balance_of_batch(model, to_model_range(images[i], model.data_range),
                                  trained.step, optimizer_states)
                 for i in order.view(batches, batch_size)]  # (batches * B,) -> (batches, B)
    with torch.no_grad():
        features = model.similarity_features(to_model_range(images[:2], model.data_range))[0].numel()
    latent, reduction = model.latent_dim, model.config.llike_reduction
    other = "sum" if reduction == "mean" else "mean"
    scale = other_reading(reduction, features, latent)
    result = {"run": str(run), "step": trained.step, "batches": batches, "batch_size": batch_size,
              "llike_reduction": reduction, "gamma": model.config.gamma,
              "prior_weight": model.prior_weight(trained.step), "features": features,
              "latent_dim": latent, "optimizer": model.config.optimizer, "networks": {}}
    for network, ((name_a, _), (name_b, _)) in TERMS.items():
        rows = [b[network] for b in per_batch]
        summary = {key: mean_and_std([r[key] for r in rows]) for key in rows[0]}
        # The other reading scales each term's gradient by a constant (its update shares would
        # need the other run's own RMSprop state, so they are not given).
        mean, spread = summary[f"gradient ratio, {name_a} / {name_b}"]
        factor = scale[name_a] / scale[name_b]
        summary[f"gradient ratio, {name_a} / {name_b}, {other} reading"] = (mean * factor,
                                                                           spread * factor)
        result["networks"][network] = summary
    return result


def markdown(result: dict) -> str:
    lines = [f"{result['run']} at step {result['step']}: {result['batches']} batches of "
             f"{result['batch_size']} training faces, --llike-reduction "
             f"{result['llike_reduction']}, gamma {result['gamma']:g}, prior weight "
             f"{result['prior_weight']:g}, {result['optimizer']} "
             f"(F = {result['features']:,} features, d = {result['latent_dim']:,}); "
             "mean ± sample std over the batches", "",
             "| network | term | value |", "|---|---|---|"]
    for network, summary in result["networks"].items():
        for key, (mean, spread) in summary.items():
            value = f"{mean:.4g}" if math.isnan(spread) else f"{mean:.4g} ± {spread:.2g}"
            lines.append(f"| {network} | {key} | {value} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--step", type=int, default=None, help="default: the latest checkpoint")
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--json", action="store_true", help="print the result as JSON too")
    args = parser.parse_args()
    if args.batches < 1 or args.batch_size < 2:
        raise SystemExit("--batches needs at least 1 and --batch-size at least 2 (BatchNorm)")
    result = measure(args.run, args.step, args.batches, args.batch_size)
    print(markdown(result))
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()

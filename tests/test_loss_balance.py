"""experiments/loss_balance.py: each term's gradient on the network it trains, adding up to that
network's loss; each term's part of the RMSprop update, adding up to the step the optimiser
takes; and the other --llike-reduction as the same gradients scaled by constants."""

import pytest
import torch

from conftest import experiment
from genlab.config import TrainConfig
from test_vaegan import a_step, images, small_vaegan


@pytest.fixture(scope="module")
def balance():
    return experiment("loss_balance")


def parts_add_up(found: dict, what: str, name_a: str, name_b: str, whole: float) -> None:
    """|a + b|^2 = |a|^2 + |b|^2 + 2 |a| |b| cos."""
    norm_a, norm_b = found[f"{what} norm, {name_a}"], found[f"{what} norm, {name_b}"]
    cosine = found[f"{what} cosine"]
    assert whole ** 2 == pytest.approx(norm_a ** 2 + norm_b ** 2 + 2 * norm_a * norm_b * cosine,
                                       rel=1e-9)
    assert found[f"{what} ratio, {name_a} / {name_b}"] == pytest.approx(norm_a / norm_b)


def test_the_terms_make_each_networks_gradient_and_the_other_reading_scales_them(balance):
    x = images(2, channels=3)
    found = {}
    for reduction in ("mean", "sum"):
        model = small_vaegan(channels=3, llike_reduction=reduction)  # the same weights
        model.train()
        torch.manual_seed(5)  # the same eps and z_p
        found[reduction] = balance.balance_of_batch(model, x, step_index=0)

    model = small_vaegan(channels=3)
    model.train()
    losses = model.step_losses(x, a_step(model, 2))
    for network, loss in (("encoder", "encoder_loss"), ("decoder", "decoder_loss")):
        whole = balance.flat_gradient(losses[loss], list(getattr(model, network).parameters()))
        (name_a, _), (name_b, _) = balance.TERMS[network]
        parts_add_up(found["mean"][network], "gradient", name_a, name_b, whole.norm().item())

    # `sum` is `mean` with L_prior times d and L_llike times F/2: same directions, scaled norms.
    factors = balance.other_reading("mean", features=256 * 8 * 8, latent=8)
    for network, terms in balance.TERMS.items():
        for name, _ in terms:
            key = f"gradient norm, {name}"
            assert found["sum"][network][key] == pytest.approx(
                found["mean"][network][key] * factors[name], rel=1e-9)
        assert found["sum"][network]["gradient cosine"] == pytest.approx(
            found["mean"][network]["gradient cosine"], abs=1e-9)
    back = balance.other_reading("sum", features=256 * 8 * 8, latent=8)
    assert all(back[name] * factors[name] == pytest.approx(1) for name in factors)


def test_the_terms_parts_of_the_update_add_up_to_the_step_rmsprop_takes(balance):
    x = images(2, channels=3)
    model = small_vaegan(channels=3)
    model.train()
    learning_rate = 3e-4
    optimizers = model.optimizers(TrainConfig(learning_rate=learning_rate))

    def gradients_then_step(seed: int, step: bool) -> None:
        losses = model.step_losses(x, a_step(model, 2, seed=seed))
        for network, loss in (("encoder", "encoder_loss"), ("decoder", "decoder_loss")):
            parameters = list(getattr(model, network).parameters())
            for p, g in zip(parameters, torch.autograd.grad(losses[loss], parameters,
                                                          retain_graph=True)):
                p.grad = g
            if step:
                optimizers[network].step()

    gradients_then_step(seed=1, step=True)  # a first step: RMSprop's mean squares are not 0
    states = {network: optimizers[network].state_dict() for network in ("encoder", "decoder")}
    torch.manual_seed(5)
    found = balance.balance_of_batch(model, x, step_index=0, optimizer_states=states)
    gradients_then_step(seed=5, step=False)  # this batch's gradients, then each network's step
    for network in ("encoder", "decoder"):
        parameters = list(getattr(model, network).parameters())
        before = torch.cat([p.detach().flatten() for p in parameters])
        optimizers[network].step()
        taken = (before - torch.cat([p.detach().flatten() for p in parameters])) / learning_rate
        (name_a, _), (name_b, _) = balance.TERMS[network]
        parts_add_up(found[network], "update", name_a, name_b, taken.norm().item())
    # Another optimiser gives gradients only.
    assert balance.rmsprop_scale({"param_groups": [{"betas": (0.9, 0.999)}], "state": {}},
                                 [], torch.zeros(0)) is None

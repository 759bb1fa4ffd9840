"""experiments/loss_balance.py: each term's gradient on the network it trains, adding up to that
network's loss, and the other --llike-reduction as the same gradients scaled by constants."""

import pytest
import torch

from conftest import experiment
from test_vaegan import a_step, images, small_vaegan


@pytest.fixture(scope="module")
def balance():
    return experiment("loss_balance")


def test_the_terms_make_each_networks_gradient_and_the_other_reading_scales_them(balance):
    x = images(4, channels=3)
    found = {}
    for reduction in ("mean", "sum"):
        model = small_vaegan(channels=3, llike_reduction=reduction)  # the same weights
        model.train()
        torch.manual_seed(5)  # the same eps and z_p
        found[reduction] = balance.balance_of_batch(model, x, step_index=0)

    # The two terms' gradients add up to the gradient of the network's whole loss:
    # |a + b|^2 = |a|^2 + |b|^2 + 2 |a| |b| cos.
    model = small_vaegan(channels=3)
    model.train()
    losses = model.step_losses(x, a_step(model, 4))
    for network, loss in (("encoder", "encoder_loss"), ("decoder", "decoder_loss")):
        parameters = list(getattr(model, network).parameters())
        whole = balance.flat_gradient(losses[loss], parameters).norm().item()
        (norm_a, norm_b, cosine) = found["mean"][network].values()
        assert whole ** 2 == pytest.approx(norm_a ** 2 + norm_b ** 2 + 2 * norm_a * norm_b * cosine,
                                           rel=1e-9)

    # `sum` is `mean` with L_prior times d and L_llike times F/2: same directions, scaled norms.
    factors = balance.other_reading("mean", features=256 * 8 * 8, latent=8)
    for network, terms in balance.TERMS.items():
        for name, _ in terms:
            key = f"gradient norm, {name}"
            assert found["sum"][network][key] == pytest.approx(
                found["mean"][network][key] * factors[name], rel=1e-9)
        assert found["sum"][network]["cosine"] == pytest.approx(found["mean"][network]["cosine"],
                                                                abs=1e-9)
    back = balance.other_reading("sum", features=256 * 8 * 8, latent=8)
    assert all(back[name] * factors[name] == pytest.approx(1) for name in factors)

"""Every hypergradient the engine computes agrees with central finite differences (float64).

The finite differences run the *real* training path (torch.optim.Adam, the agent's gradient step and target
update), not the engine's functional code, so they also check that the functional Adam step matches PyTorch's.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from dqnmap_auto.agent.dqn import DQNAgent, dqn_loss
from dqnmap_auto.agent.replay import Batch
from dqnmap_auto.config import TrainConfig
from dqnmap_auto.hypergrad.build import build_tuner
from dqnmap_auto.hypergrad.hd import HypergradientDescentTuner
from dqnmap_auto.hypergrad.meta import MetaGradientTuner
from dqnmap_auto.hypergrad.space import from_unconstrained
from tests.conftest import random_batch

EPS = 1e-6
REL_TOL = 1e-4


def make_config(**overrides: object) -> TrainConfig:
    config = TrainConfig()
    config.agent.net_arch = [16, 16]
    config.agent.activation = "tanh"
    config.agent.lr = 3e-3
    config.agent.gamma = 0.95
    config.agent.huber_delta = 0.7  # some TD errors fall on each side of the kink
    config.agent.tau = 0.5
    config.agent.max_grad_norm = 0.05  # make the clip active: it is part of the differentiated step
    for key, value in overrides.items():
        section, field = key.split("__")
        setattr(getattr(config, section), field, value)
    return config


def warmed_up_agent(config: TrainConfig, rng: np.random.Generator) -> DQNAgent:
    """An agent a few real Adam steps in, so the optimizer has non-trivial moments."""
    torch.manual_seed(0)
    agent = DQNAgent((4,), 3, config.agent, dtype=torch.float64)
    for _ in range(3):
        agent.gradient_step(random_batch(rng), 0.95, 0.7)
    agent.update_target(0.3)
    return agent


def relative_error(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), 1e-10)


def real_lookahead_loss(
    agent: DQNAgent,
    values: dict[str, float],
    inner: Batch | list[Batch],
    outer: Batch,
    *,
    lookahead: int,
    reference: dict[str, float],
    held_target: bool = False,
) -> float:
    """J computed by running real optimizer steps on a copy of ``agent`` (one batch per step when ``inner`` is
    a list; the target updated between steps unless ``held_target``)."""
    clone = copy.deepcopy(agent)
    original_target = copy.deepcopy(agent.target_net)
    clone.set_lr(values["lr"])
    batches = inner if isinstance(inner, list) else [inner] * lookahead
    for k, batch in enumerate(batches):
        clone.gradient_step(batch, values["gamma"], values["huber_delta"])
        if k < lookahead - 1 and not held_target:
            clone.update_target(values["tau"])
    with torch.no_grad():
        loss, _ = dqn_loss(
            clone.q_net,
            original_target,
            outer,
            reference["gamma"],
            reference["huber_delta"],
            double_dqn=agent.config.double_dqn,
        )
    return float(loss)


@pytest.mark.parametrize("lookahead", [1, 2, 3])
@pytest.mark.parametrize("double_dqn", [False, True])
@pytest.mark.parametrize("lr_scale", [1.0, 0.4])
def test_meta_hypergradients_match_finite_differences(
    rng: np.random.Generator, lookahead: int, double_dqn: bool, lr_scale: float
) -> None:
    """The polyak lookahead (tau tuned too, the only lookahead that gives it a gradient). ``lr_scale`` < 1: an
    ``agent.lr_decay`` factor, which the real steps of the check apply too."""
    config = make_config(
        self_tuning__mode="meta",
        self_tuning__lookahead=lookahead,
        self_tuning__lookahead_target="polyak",
        self_tuning__params=["lr", "gamma", "huber_delta", "tau"],
        agent__double_dqn=double_dqn,
    )
    agent = warmed_up_agent(config, rng)
    agent.set_lr_scale(lr_scale)
    tuner = build_tuner(config, agent)
    assert isinstance(tuner, MetaGradientTuner)
    inner, outer = random_batch(rng), random_batch(rng)
    analytic = tuner.hypergradient(inner, outer)

    z0 = tuner.space.z.detach().clone()
    reference = config.self_tuning.reference
    for index, name in enumerate(tuner.space.names):
        losses = []
        for sign in (+1, -1):
            z = z0.clone()
            z[index] += sign * EPS
            values = {n: float(v) for n, v in tuner.space.values(z).items()}
            losses.append(real_lookahead_loss(agent, values, inner, outer, lookahead=lookahead, reference=reference))
        numeric = (losses[0] - losses[1]) / (2 * EPS)
        if name == "tau" and lookahead == 1:
            assert analytic[index].item() == 0.0 and abs(numeric) < 1e-9  # tau needs a second inner step
            continue
        assert abs(numeric) > 1e-8, f"{name}: finite difference vanished, the test would be vacuous"
        assert relative_error(analytic[index].item(), numeric) < REL_TOL, (
            name,
            analytic[index].item(),
            numeric,
        )


@pytest.mark.parametrize("lookahead", [2, 3])
@pytest.mark.parametrize("params", [None, ["lr", "gamma", "huber_delta"]])
def test_held_target_hypergradients_match_finite_differences(
    rng: np.random.Generator, lookahead: int, params: list[str] | None
) -> None:
    """``lookahead_target: held``: a fresh batch per inner step and the target network fixed, as real steps
    between two target updates; tau then acts on nothing inside the lookahead, so its hypergradient is 0.
    ``params`` None: the default (gamma not tuned), whose outer loss scores at the run's own gamma; with gamma
    tuned it scores at reference.gamma."""
    config = make_config(
        self_tuning__mode="meta", self_tuning__lookahead=lookahead, self_tuning__lookahead_target="held"
    )
    if params is not None:
        config.self_tuning.params = params
    agent = warmed_up_agent(config, rng)
    tuner = build_tuner(config, agent)
    assert isinstance(tuner, MetaGradientTuner)
    inner, outer = [random_batch(rng) for _ in range(lookahead)], random_batch(rng)
    analytic = tuner.hypergradient(inner, outer)

    z0 = tuner.space.z.detach().clone()
    names = tuner.space.names
    reference = {  # the outer loss's gamma' and delta': the reference for a tuned value, else the run's own
        name: config.self_tuning.reference[name] if name in names else tuner.space.current()[name]
        for name in ("gamma", "huber_delta")
    }
    assert reference["gamma"] == (0.99 if "gamma" in names else 0.95)
    for index, name in enumerate(names):
        losses = []
        for sign in (+1, -1):
            z = z0.clone()
            z[index] += sign * EPS
            values = {n: float(v) for n, v in tuner.space.values(z).items()}
            losses.append(
                real_lookahead_loss(
                    agent, values, inner, outer, lookahead=lookahead, reference=reference, held_target=True
                )
            )
        numeric = (losses[0] - losses[1]) / (2 * EPS)
        if name == "tau":
            assert analytic[index].item() == 0.0 and abs(numeric) < 1e-9
            continue
        assert abs(numeric) > 1e-8, f"{name}: finite difference vanished, the test would be vacuous"
        assert relative_error(analytic[index].item(), numeric) < REL_TOL, (name, analytic[index].item(), numeric)


def test_held_target_meta_update_draws_fresh_inner_batches(rng: np.random.Generator) -> None:
    """The tuner asks the Trainer for the extra batches (outer_batches counts them) and uses them."""
    config = make_config(
        self_tuning__mode="meta",
        self_tuning__lookahead=3,
        self_tuning__lookahead_target="held",
        self_tuning__interval=4,
    )
    agent = warmed_up_agent(config, rng)
    tuner = build_tuner(config, agent)
    assert isinstance(tuner, MetaGradientTuner)
    assert tuner.outer_batches(8) == 2 * 3  # two meta-updates, each one outer and two fresh inner batches
    drawn: list[Batch] = []

    def sample() -> Batch:
        drawn.append(random_batch(rng))
        return drawn[-1]

    tuner.gradient_step(random_batch(rng), sample)
    assert len(drawn) == 3


@pytest.mark.parametrize("measure", ["interval", "target_update"])
def test_hd_hypergradient_matches_finite_differences(rng: np.random.Generator, measure: str) -> None:
    """The hd rule's dL(theta_t)/dz, read every step or (the default) at the step after a target update."""
    config = make_config(self_tuning__mode="hd", self_tuning__hd_interval=1, self_tuning__hd_measure=measure)
    agent = warmed_up_agent(config, rng)
    tuner = build_tuner(config, agent)
    assert isinstance(tuner, HypergradientDescentTuner)
    tuner.gradient_step(random_batch(rng), lambda: random_batch(rng))  # primes u_{t-1}

    before = copy.deepcopy(agent)  # state at theta_{t-1}
    previous_batch, batch = random_batch(rng), random_batch(rng)
    tuner.on_target_update()  # the next step starts a target period (read by measure target_update only)
    tuner.space.last_hypergrad["lr"] = float("nan")  # so the read below must set it
    tuner.gradient_step(previous_batch, lambda: random_batch(rng))
    lr_used = agent.lr
    tuner.gradient_step(batch, lambda: random_batch(rng))  # computes dL(theta_t)/dz at its start
    analytic = tuner.space.last_hypergrad["lr"]

    losses = []
    for sign in (+1, -1):
        clone = copy.deepcopy(before)
        clone.set_lr(lr_used * math.exp(sign * EPS))
        clone.gradient_step(previous_batch, tuner.gamma, tuner.huber_delta)
        with torch.no_grad():
            losses.append(float(clone.loss(batch, tuner.gamma, tuner.huber_delta)[0]))
    numeric = (losses[0] - losses[1]) / (2 * EPS)
    assert abs(numeric) > 1e-8
    assert relative_error(analytic, numeric) < REL_TOL, (analytic, numeric)


@pytest.mark.parametrize("mode", ["hd", "meta"])
def test_lookahead_gate_matches_finite_differences(rng: np.random.Generator, mode: str) -> None:
    """``hd_gate: lookahead``: the gate's -dJ/dlog lr / J, J the TD loss at the run's own gamma and delta after
    one real Adam step, against finite differences of that real step."""
    config = make_config(self_tuning__mode=mode, self_tuning__hd_gate="lookahead")
    if mode == "hd":
        config.self_tuning.params = ["lr"]
    agent = warmed_up_agent(config, rng)
    tuner = build_tuner(config, agent)
    gate = tuner.rule.gate if isinstance(tuner, HypergradientDescentTuner) else tuner.lr_rule.gate  # type: ignore[union-attr]
    assert gate is not None
    inner, outer = random_batch(rng), random_batch(rng)
    analytic = gate(inner, outer, None, tuner.gamma, tuner.huber_delta)

    own = {"gamma": tuner.gamma, "huber_delta": tuner.huber_delta}
    values = {"lr": agent.lr, **own, "tau": tuner.tau}
    base = real_lookahead_loss(agent, values, inner, outer, lookahead=1, reference=own)
    losses = [
        real_lookahead_loss(
            agent, {**values, "lr": values["lr"] * math.exp(sign * EPS)}, inner, outer, lookahead=1, reference=own
        )
        for sign in (+1, -1)
    ]
    numeric = -(losses[0] - losses[1]) / (2 * EPS) / base
    assert abs(numeric) > 1e-8
    assert relative_error(analytic, numeric) < REL_TOL, (analytic, numeric)


def test_unconstrained_maps_are_inverse() -> None:
    from dqnmap_auto.hypergrad.space import to_unconstrained

    for name, value in [("lr", 3e-4), ("huber_delta", 2.5), ("gamma", 0.997), ("tau", 0.02)]:
        z = torch.tensor(to_unconstrained(name, value), dtype=torch.float64)
        assert float(from_unconstrained(name, z)) == pytest.approx(value, rel=1e-12)


def test_trust_region_limits_the_change_from_the_initial_value() -> None:
    from dqnmap_auto.hypergrad.space import trust_region

    assert trust_region("lr", 1e-3, (1e-5, 0.1), 10.0) == pytest.approx((1e-4, 1e-2))
    assert trust_region("lr", 1e-3, (5e-4, 0.1), 10.0) == pytest.approx((5e-4, 1e-2))  # bounds still apply
    low, high = trust_region("gamma", 0.99, (0.8, 0.9995), 10.0)
    odds = 0.99 / 0.01
    assert low / (1 - low) == pytest.approx(odds / 10) and high / (1 - high) == pytest.approx(odds * 10)
    assert trust_region("gamma", 0.99, (0.8, 0.9995), None) == (0.8, 0.9995)

"""What the self-tuning rules do with a hypergradient: the hd set point, and meta mode's lr handed to hd."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest
import torch

from dqnmap_auto.agent.dqn import DQNAgent
from dqnmap_auto.agent.replay import Batch
from dqnmap_auto.hypergrad.build import build_tuner
from dqnmap_auto.hypergrad.hd import HDSettings, LearningRateRule
from dqnmap_auto.hypergrad.lr_gate import LookaheadGate
from dqnmap_auto.hypergrad.meta import MetaGradientTuner
from dqnmap_auto.hypergrad.space import HyperSpace
from tests.conftest import random_batch
from tests.hypergrad.test_finite_differences import make_config, warmed_up_agent


def rule_after_one_update(
    previous_step: list[torch.Tensor],
    grads: list[torch.Tensor],
    target_cos: float,
    *,
    pull: float = 0.0,
    reference: float = 1e-3,
) -> float:
    """log lr after one hd update with this recorded step and these gradients (lr starts at 1e-3)."""
    config = make_config()
    agent = warmed_up_agent(config, np.random.default_rng(0))
    space = HyperSpace({"lr": 1e-3}, ["lr"], {"lr": (1e-6, 1.0)}, dtype=torch.float64)
    settings = HDSettings(
        beta=0.5, interval=1, target_cos=target_cos, pull=pull, reference=reference, measure="interval"
    )
    rule = LearningRateRule(space, agent, settings, on_change=lambda: None)
    rule._previous_step = previous_step
    rule._on_gradients(grads)
    return float(space.z.detach()[0])


def shaped_like(reference: list[torch.Tensor], direction: torch.Tensor) -> list[torch.Tensor]:
    """``direction`` (a flat vector) cut into tensors shaped like ``reference``."""
    return [part.view_as(p) for part, p in zip(direction.split([p.numel() for p in reference]), reference, strict=True)]


def step_and_orthogonal(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A random flat step of ``n`` entries and a random direction orthogonal to it."""
    generator = torch.Generator().manual_seed(seed)
    step = torch.randn(n, generator=generator, dtype=torch.float64)
    noise = torch.randn(n, generator=generator, dtype=torch.float64)
    return step, noise - (noise @ step) / (step @ step) * step


def gradient_at_cosine(step: torch.Tensor, orthogonal: torch.Tensor, cosine: float) -> torch.Tensor:
    """A unit gradient whose cosine with ``step`` is exactly ``cosine`` (``orthogonal`` must be orthogonal to it)."""
    return cosine * step / step.norm() + math.sqrt(1 - cosine**2) * orthogonal / orthogonal.norm()


@pytest.mark.parametrize("target_cos", [0.0, -0.05, 0.3])
def test_hd_moves_log_lr_by_beta_times_cosine_minus_set_point(target_cos: float) -> None:
    agent = warmed_up_agent(make_config(), np.random.default_rng(0))
    step, orthogonal = step_and_orthogonal(sum(p.numel() for p in agent.params), seed=1)
    for cosine in (-0.6, -0.05, 0.0, 0.4):
        grad = gradient_at_cosine(step, orthogonal, cosine)
        z = rule_after_one_update(shaped_like(agent.params, step), shaped_like(agent.params, grad), target_cos)
        assert z - math.log(1e-3) == pytest.approx(0.5 * (cosine - target_cos), abs=1e-9)


def test_hd_set_point_holds_lr_where_the_cosine_equals_it() -> None:
    agent = warmed_up_agent(make_config(), np.random.default_rng(0))
    step = [torch.ones_like(p) for p in agent.params]
    # a gradient anti-aligned with the step at exactly the set point: no change; plain hd (0) would shrink lr
    n = sum(p.numel() for p in agent.params)
    flat_step = torch.ones(n, dtype=torch.float64)
    orthogonal = torch.zeros(n, dtype=torch.float64)
    orthogonal[0], orthogonal[1] = 1.0, -1.0
    grad = gradient_at_cosine(flat_step, orthogonal, -0.05)
    assert rule_after_one_update(step, shaped_like(agent.params, grad), -0.05) == pytest.approx(math.log(1e-3))
    assert rule_after_one_update(step, shaped_like(agent.params, grad), 0.0) < math.log(1e-3) - 0.02


@pytest.mark.parametrize("reference", [1e-4, 1e-3, 3e-2])
def test_hd_pull_moves_log_lr_a_fraction_of_the_way_to_the_reference(reference: float) -> None:
    """Where the cosine sits at the set point (no information about lr), the pull alone moves lr: by the
    fraction ``pull`` of the log distance to ``reference.lr``, from either side; at the reference it holds."""
    agent = warmed_up_agent(make_config(), np.random.default_rng(0))
    step, orthogonal = step_and_orthogonal(sum(p.numel() for p in agent.params), seed=2)
    cosine = -0.05
    grad = gradient_at_cosine(step, orthogonal, cosine)
    z = rule_after_one_update(
        shaped_like(agent.params, step), shaped_like(agent.params, grad), cosine, pull=0.25, reference=reference
    )
    start = math.log(1e-3)
    assert z - start == pytest.approx(0.25 * (math.log(reference) - start), abs=1e-9)


def test_hd_pull_is_built_from_the_config() -> None:
    config = make_config(self_tuning__mode="hd", self_tuning__params=["lr"], self_tuning__hd_lr_pull=0.002)
    config.self_tuning.reference = {"lr": 5e-4}
    tuner = build_tuner(config, warmed_up_agent(config, np.random.default_rng(0)))
    assert (tuner.rule.settings.pull, tuner.rule.settings.reference) == (0.002, 5e-4)
    assert config.self_tuning.reference == {"gamma": 0.99, "huber_delta": 1.0, "lr": 5e-4}  # the others default


@pytest.mark.parametrize("lr", [0.5, 1e-4])
def test_a_step_too_large_for_the_first_order_model_is_undone_and_lr_cut_to_fit(lr: float) -> None:
    rng = np.random.default_rng(6)
    agent = warmed_up_agent(make_config(), rng)
    space = HyperSpace({"lr": lr}, ["lr"], {"lr": (1e-6, 1.0)}, dtype=torch.float64)
    agent.set_lr(lr)
    rule = LearningRateRule(
        space, agent, HDSettings(beta=0.1, interval=1, max_step_ratio=0.1, measure="interval"), on_change=lambda: None
    )
    before = [p.detach().clone() for p in agent.params]
    plain = copy.deepcopy(agent)  # the same step without the rule: its size relative to the weights after it
    batch = random_batch(rng)
    plain.gradient_step(batch, 0.95, 0.7)
    after = [p.detach() for p in plain.params]
    step_norm = math.sqrt(sum(float(((a - b) ** 2).sum()) for a, b in zip(after, before, strict=True)))
    ratio = step_norm / math.sqrt(sum(float((b**2).sum()) for b in before))  # against the weights before
    rule.gradient_step(batch, 0.95, 0.7)
    moved = math.sqrt(sum(float(((p.detach() - b) ** 2).sum()) for p, b in zip(agent.params, before, strict=True)))
    norm = math.sqrt(sum(float((b**2).sum()) for b in before))
    if lr == 0.5:  # Adam's first steps move every weight by ~lr: far beyond 10% of these weights
        assert rule.rejected_steps == 1 and rule._previous_step is None and rule._recheck
        assert moved < 1e-9 * norm, "the rejected step is undone"
        assert ratio > 0.1
        assert float(space.z.detach()[0]) - math.log(lr) == pytest.approx(math.log(0.1 / ratio), rel=1e-6)
    else:
        assert rule.rejected_steps == 0 and rule._previous_step is not None
        assert ratio < 0.1 and 0 < moved < 0.1 * norm and float(space.z.detach()[0]) == pytest.approx(math.log(lr))


def lr_rule_on_agent(rng: np.random.Generator, settings: HDSettings) -> tuple[DQNAgent, HyperSpace, LearningRateRule]:
    """A warmed-up agent at lr 1e-3 and an hd rule on it that hands every new lr back to the agent."""
    agent = warmed_up_agent(make_config(), rng)
    space = HyperSpace({"lr": 1e-3}, ["lr"], {"lr": (1e-6, 1.0)}, dtype=torch.float64)
    agent.set_lr(1e-3)
    rule = LearningRateRule(space, agent, settings, on_change=lambda: agent.set_lr(float(space.z.detach().exp())))
    return agent, space, rule


def test_hd_measured_at_target_updates_reads_only_the_step_after_one() -> None:
    """``hd_measure: target_update``: lr moves only at the second step of a target period (by beta times the
    cosine of that step's gradient with the first step's update, set point 0); the step-size guard's records in
    between leave lr alone, and so does a period without a target update."""
    rng = np.random.default_rng(7)
    settings = HDSettings(beta=0.5, interval=2, target_cos=0.0, pull=0.0, measure="target_update", pace_max=1.0)
    agent, space, rule = lr_rule_on_agent(rng, settings)
    start = math.log(1e-3)
    for _ in range(5):  # guard records at steps 0, 2, 4: no measurement without a target update
        rule.gradient_step(random_batch(rng), 0.95, 0.7)
    assert float(space.z.detach()[0]) == pytest.approx(start) and rule.records() == {}

    rule.on_target_update()
    first = [p.detach().clone() for p in agent.params]
    rule.gradient_step(random_batch(rng), 0.95, 0.7)  # the period's first step: recorded
    update = [f - p.detach() for f, p in zip(first, agent.params, strict=True)]
    probe = copy.deepcopy(agent)
    batch = random_batch(rng)
    loss, _ = probe.loss(batch, 0.95, 0.7)
    grads = torch.autograd.grad(loss, probe.params)
    flat_g = torch.cat([g.reshape(-1) for g in grads])
    flat_u = torch.cat([u.reshape(-1) for u in update])
    cosine = float(flat_g @ flat_u / (flat_g.norm() * flat_u.norm()))
    rule.gradient_step(batch, 0.95, 0.7)  # the second step reads g_t . u_t-1
    assert float(space.z.detach()[0]) - start == pytest.approx(0.5 * cosine, abs=1e-9)
    assert rule.records() == {"hd/cosine": pytest.approx(cosine, abs=1e-9)}
    moved = float(space.z.detach()[0])
    for _ in range(4):  # no further target update: lr stays
        rule.gradient_step(random_batch(rng), 0.95, 0.7)
    assert float(space.z.detach()[0]) == pytest.approx(moved)


def test_paced_reads_at_target_updates_count_the_gradient_steps_between_them() -> None:
    """``hd_pace_max``: a read after k gradient steps moves z by k / interval times the unpaced step and pull,
    capped at pace_max, and where one read's pull would cover half the way to the reference."""
    rng = np.random.default_rng(11)

    def moved(pace_max: float, gap: int, pull: float) -> tuple[float, float]:
        settings = HDSettings(
            beta=0.5, interval=2, target_cos=0.0, pull=pull, reference=1e-2, measure="target_update", pace_max=pace_max
        )
        _, space, rule = lr_rule_on_agent(rng, settings)
        for _ in range(gap - 1):  # no target update: nothing is read
            rule.gradient_step(random_batch(rng), 0.95, 0.7)
        rule.on_target_update()
        rule.gradient_step(random_batch(rng), 0.95, 0.7)  # step number `gap`: the period's first, recorded
        before = float(space.z.detach()[0])
        rule.gradient_step(random_batch(rng), 0.95, 0.7)  # step gap + 1 reads
        cosine = rule.records()["hd/cosine"]
        return float(space.z.detach()[0]) - before, cosine

    pull_term = 0.01 * (math.log(1e-3) - math.log(1e-2))
    step, cosine = moved(1.0, 9, 0.01)
    assert step == pytest.approx(0.5 * cosine - pull_term, abs=1e-9)
    step, cosine = moved(1000.0, 9, 0.01)  # 10 steps since the previous read (none: step 0), interval 2: 5 reads
    assert step == pytest.approx(5 * (0.5 * cosine - pull_term), abs=1e-9)
    step, cosine = moved(3.0, 9, 0.01)  # the same, capped at pace_max
    assert step == pytest.approx(3 * (0.5 * cosine - pull_term), abs=1e-9)
    step, cosine = moved(1000.0, 199, 0.01)  # 100 reads' worth, capped at 0.5 / pull = 50
    assert step == pytest.approx(50 * (0.5 * cosine - pull_term), abs=1e-9)


def test_reads_closer_together_than_the_interval_count_less() -> None:
    """With a target update before every gradient step (as soft updates at every step give), every step reads,
    and each read counts 1 / interval of an interval read: lr moves no faster per gradient step than with
    interval reads."""
    rng = np.random.default_rng(12)
    settings = HDSettings(beta=0.5, interval=4, target_cos=0.0, pull=0.0, measure="target_update", pace_max=6.0)
    _, space, rule = lr_rule_on_agent(rng, settings)
    moves = []
    for _ in range(5):
        rule.on_target_update()
        before = float(space.z.detach()[0])
        rule.gradient_step(random_batch(rng), 0.95, 0.7)
        moves.append((float(space.z.detach()[0]) - before, rule.records().get("hd/cosine", 0.0)))
    assert moves[0][0] == 0.0  # the first step is only recorded
    assert moves[1][0] == pytest.approx(2 / 4 * 0.5 * moves[1][1], abs=1e-9)  # read at step 2: two steps since 0
    for step, cosine in moves[2:]:  # then one step since the previous read
        assert cosine != 0.0 and step == pytest.approx(1 / 4 * 0.5 * cosine, abs=1e-9)


def test_the_trainer_tells_the_tuner_of_target_updates() -> None:
    from dqnmap_auto.trainer import Trainer

    config = make_config(self_tuning__mode="hd", self_tuning__params=["lr"], self_tuning__hd_measure="target_update")
    config.agent.net_arch = [16]
    config.agent.learning_starts = 100
    config.agent.train_freq = 8
    config.agent.gradient_steps = 4
    config.agent.target_update_interval = 40
    config.training.total_steps = 400
    config.training.eval_every = 0
    config.training.final_eval_episodes = 1
    trainer = Trainer(config)
    calls = []
    original = trainer.tuner.on_target_update
    trainer.tuner.on_target_update = lambda: (calls.append(trainer.step), original())  # type: ignore[method-assign]
    trainer.run()
    assert calls == list(range(40, 401, 40))


def meta_tuner(lr_rule: str) -> MetaGradientTuner:
    config = make_config(
        self_tuning__mode="meta",
        self_tuning__lr_rule=lr_rule,
        self_tuning__interval=1,
        self_tuning__hd_interval=1,
        self_tuning__hd_measure="interval",  # the rule reads at every step, target updates or not
    )
    config.self_tuning.params = ["lr", "gamma", "huber_delta"]
    config.self_tuning.meta_lr = 0.05
    tuner = build_tuner(config, warmed_up_agent(config, np.random.default_rng(0)))
    assert isinstance(tuner, MetaGradientTuner)
    return tuner


def test_meta_mode_hands_lr_to_the_hd_rule_and_meta_steps_the_rest() -> None:
    rng = np.random.default_rng(3)
    with_hd, meta_only = meta_tuner("hd"), meta_tuner("meta")
    start = with_hd.space.z.detach().clone()
    for tuner in (with_hd, meta_only):
        batch_rng = np.random.default_rng(7)
        for _ in range(6):
            tuner.gradient_step(random_batch(batch_rng), lambda: random_batch(rng))
    lr_index = with_hd.space.names.index("lr")
    moved = (with_hd.space.z.detach() - start).abs()
    assert (moved > 1e-4).all(), "every tuned value moves: gamma and delta by meta-gradient, lr by hd"
    assert with_hd.lr_rule is not None and with_hd.lr_rule.steps == 6
    assert meta_only.lr_rule is None
    # lr's change is the hd rule's: beta * sum(cos - c*) is at most (1 + 0.05) * beta per update after the first
    assert moved[lr_index] <= 5 * 1.05 * with_hd.lr_rule.settings.beta + 1e-9
    # the meta optimizer never saw an lr gradient under the hd rule
    state = with_hd.meta_optimizer.state[with_hd.space.z]
    gamma_index = with_hd.space.names.index("gamma")
    assert float(state["exp_avg"][lr_index]) == 0.0 and float(state["exp_avg"][gamma_index]) != 0.0
    assert float(meta_only.meta_optimizer.state[meta_only.space.z]["exp_avg"][lr_index]) != 0.0


def test_meta_has_no_hidden_prior_on_gamma_and_delta(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under a zero meta-gradient gamma and delta stay where they are, far from their references: meta mode
    moves them by the hypergradient alone (v4's meta_pull is gone with the held lookahead)."""
    config = make_config(
        self_tuning__mode="meta", self_tuning__interval=1, self_tuning__params=["gamma", "huber_delta"]
    )
    config.agent.gamma, config.agent.huber_delta = 0.9, 4.0
    tuner = build_tuner(config, warmed_up_agent(config, np.random.default_rng(0)))
    assert isinstance(tuner, MetaGradientTuner)
    monkeypatch.setattr(tuner, "hypergradient", lambda *args, **kwargs: torch.zeros_like(tuner.space.z))
    start = tuner.space.z.detach().clone()
    tuner.meta_update(random_batch(np.random.default_rng(1)), random_batch(np.random.default_rng(2)))
    assert torch.equal(tuner.space.z.detach(), start)


def test_meta_with_hd_rule_checkpoint_restores_the_pending_step() -> None:
    rng = np.random.default_rng(4)
    tuner = meta_tuner("hd")
    for _ in range(3):
        tuner.gradient_step(random_batch(rng), lambda: random_batch(rng))
    state = tuner.state_dict()
    restored = meta_tuner("hd")
    restored.load_state_dict(state)
    assert restored.lr_rule is not None and tuner.lr_rule is not None
    assert restored.lr_rule.steps == tuner.lr_rule.steps == 3
    pending, saved = restored.lr_rule._previous_step, tuner.lr_rule._previous_step
    assert pending is not None and saved is not None
    assert all(torch.equal(a, b) for a, b in zip(pending, saved, strict=True))
    assert restored.lr_rule._cosines == tuner.lr_rule._cosines and tuner.lr_rule._cosines[1] > 0
    assert restored.lr_rule.rejected_steps == tuner.lr_rule.rejected_steps
    assert restored.lr_rule._recheck == tuner.lr_rule._recheck


def test_hd_records_the_mean_cosine_since_the_last_record() -> None:
    rng = np.random.default_rng(5)
    config = make_config(self_tuning__mode="hd", self_tuning__hd_interval=1, self_tuning__hd_measure="interval")
    config.self_tuning.params = ["lr"]
    tuner = build_tuner(config, warmed_up_agent(config, rng))
    seen = []
    original = tuner.rule._on_gradients

    def spy(grads: list[torch.Tensor]) -> None:
        before = tuner.rule._cosines
        original(grads)
        seen.append(tuner.rule._cosines[0] - before[0])

    tuner.rule._on_gradients = spy  # type: ignore[method-assign]
    for _ in range(5):
        tuner.gradient_step(random_batch(rng), lambda: random_batch(rng))
    record = tuner.records()
    assert len(seen) == 4 and record["hd/cosine"] == pytest.approx(sum(seen) / 4)
    assert -1 <= record["hd/cosine"] <= 1 and "hp/lr" in record
    assert "hd/cosine" not in tuner.records(), "no update since the last record: nothing to report"


def test_a_meta_checkpoint_resumed_under_the_hd_rule_forgets_its_lr_momentum() -> None:
    rng = np.random.default_rng(8)
    old = meta_tuner("meta")  # lr followed the meta-gradient: Adam holds momentum for it
    for _ in range(3):
        old.gradient_step(random_batch(rng), lambda: random_batch(rng))
    state = old.state_dict()
    state.pop("lr_rule", None)
    lr_index = old.space.names.index("lr")
    assert float(old.meta_optimizer.state[old.space.z]["exp_avg"][lr_index]) != 0.0
    resumed = meta_tuner("hd")
    resumed.load_state_dict(state)
    moments = resumed.meta_optimizer.state[resumed.space.z]
    assert float(moments["exp_avg"][lr_index]) == 0.0 and float(moments["exp_avg_sq"][lr_index]) == 0.0
    gamma_index = resumed.space.names.index("gamma")
    assert float(moments["exp_avg"][gamma_index]) != 0.0, "the other moments are kept"
    assert resumed.lr_rule is not None and resumed.lr_rule.steps == 0


def test_meta_scores_an_untuned_gamma_at_the_runs_own_value() -> None:
    """v7: with gamma not tuned, the outer loss uses the gamma the agent trains with (here 0.9, then a value set
    live), not reference.gamma (0.99), which only anchors a tuned gamma."""
    config = make_config(self_tuning__mode="meta", self_tuning__params=["lr", "huber_delta"])
    config.agent.gamma = 0.9
    tuner = build_tuner(config, warmed_up_agent(config, np.random.default_rng(0)))
    assert isinstance(tuner, MetaGradientTuner) and tuner.settings.reference_gamma is None
    assert tuner.settings.reference_delta == config.self_tuning.reference["huber_delta"]  # delta is tuned
    inner, outer = random_batch(np.random.default_rng(1)), random_batch(np.random.default_rng(2))

    def hypergradient_at(reference_gamma: float) -> torch.Tensor:
        """The same tuner's hypergradient with gamma' pinned."""
        pinned = copy.copy(tuner)
        pinned.settings = replace(tuner.settings, reference_gamma=reference_gamma)
        return pinned.hypergradient(inner, outer)

    got = tuner.hypergradient(inner, outer)
    torch.testing.assert_close(got, hypergradient_at(0.9))
    assert not torch.allclose(got, hypergradient_at(0.99))
    tuner.set_value("gamma", 0.95)  # live control: the outer loss follows the value in use
    torch.testing.assert_close(tuner.hypergradient(inner, outer), hypergradient_at(0.95))


def test_meta_anchors_a_tuned_gamma_at_the_reference() -> None:
    config = make_config(self_tuning__mode="meta", self_tuning__params=["lr", "gamma", "huber_delta"])
    config.agent.gamma = 0.9
    tuner = build_tuner(config, warmed_up_agent(config, np.random.default_rng(0)))
    assert isinstance(tuner, MetaGradientTuner)
    assert tuner.settings.reference_gamma == config.self_tuning.reference["gamma"] == 0.99


@pytest.mark.parametrize("gate_sign", [+1.0, -1.0])
def test_a_gate_lets_the_cosine_move_lr_only_where_both_agree(gate_sign: float) -> None:
    """``hd_gate``: with the gate on the cosine's side of the set point, a read moves lr exactly as without a gate;
    on the other side only the pull moves it. The gate is asked once per read, at the recorded step, on that
    step's batch and an outer batch."""
    rng = np.random.default_rng(12)
    batches = [random_batch(rng) for _ in range(2)]
    outer = random_batch(rng)

    def one_read(gate: Callable[..., float] | None) -> tuple[float, float, dict[str, float]]:
        settings = HDSettings(
            beta=0.5, interval=1, target_cos=0.0, pull=0.05, reference=1e-2, measure="target_update", pace_max=1.0
        )  # interval 1 and pace_max 1: the read counts once
        torch.manual_seed(3)
        _, space, rule = lr_rule_on_agent(np.random.default_rng(5), settings)
        rule.gate = gate
        rule.on_target_update()
        rule.gradient_step(batches[0], 0.95, 0.7, sample_outer=lambda: outer)  # the period's first step
        before = float(space.z.detach()[0])
        rule.gradient_step(batches[1], 0.95, 0.7, sample_outer=lambda: outer)  # reads
        records = rule.records()
        return float(space.z.detach()[0]) - before, records["hd/cosine"], records

    calls: list[tuple[Batch, Batch]] = []
    ungated, cosine, _ = one_read(None)
    assert abs(cosine) > 1e-3, "the test needs a cosine off the set point"

    def gate(inner: Batch, outer_batch: Batch, *_: object) -> float:
        calls.append((inner, outer_batch))
        return gate_sign * math.copysign(0.3, cosine)

    moved, gated_cosine, records = one_read(gate)
    assert gated_cosine == pytest.approx(cosine, abs=1e-12)
    assert len(calls) == 1 and calls[0][0] is batches[0] and calls[0][1] is outer
    pull_only = 0.05 * (math.log(1e-2) - math.log(1e-3))
    assert ungated == pytest.approx(0.5 * cosine + pull_only, abs=1e-9)
    if gate_sign > 0:
        assert moved == pytest.approx(ungated, abs=1e-9) and records["hd/agree"] == 1.0
    else:
        assert moved == pytest.approx(pull_only, abs=1e-9) and records["hd/agree"] == 0.0
    assert records["hd/gate"] == pytest.approx(gate_sign * math.copysign(0.3, cosine))


def test_the_gate_is_built_from_the_config_and_off_by_default() -> None:
    config = make_config(self_tuning__mode="meta")
    assert build_tuner(config, warmed_up_agent(config, np.random.default_rng(0))).lr_rule.gate is None  # type: ignore[attr-defined]
    config = make_config(self_tuning__mode="meta", self_tuning__hd_gate="lookahead")
    tuner = build_tuner(config, warmed_up_agent(config, np.random.default_rng(0)))
    assert isinstance(tuner, MetaGradientTuner) and isinstance(tuner.lr_rule.gate, LookaheadGate)  # type: ignore[union-attr]


def test_a_pending_gate_opinion_survives_a_checkpoint() -> None:
    """A checkpoint taken between a gated record and its read (the read's step in the next phase) keeps the
    gate's opinion and its counts, so the resumed read gates as the uninterrupted one would."""
    rng = np.random.default_rng(13)
    settings = HDSettings(beta=0.5, interval=8, measure="target_update", pace_max=1.0)
    _, _, rule = lr_rule_on_agent(rng, settings)
    rule.gate = lambda *_: -0.25
    rule.on_target_update()
    rule.gradient_step(random_batch(rng), 0.95, 0.7, sample_outer=lambda: random_batch(rng))
    state = rule.state_dict()
    _, _, resumed = lr_rule_on_agent(np.random.default_rng(13), settings)
    resumed.load_state_dict(state)
    assert resumed._gate_value == -0.25 and resumed._measure_next

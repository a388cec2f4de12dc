"""The training loop: records, determinism, bounds, divergence, and the short-run gamma check."""

from __future__ import annotations

import math

import pytest
import torch

from dqnmap_auto.callbacks import Callback, RecordCollector
from dqnmap_auto.config import TrainConfig
from dqnmap_auto.errors import DivergenceError
from dqnmap_auto.trainer import Trainer, linear_epsilon, train


def small_config(mode: str | None = "meta", *, steps: int = 2000, seed: int = 0) -> TrainConfig:
    """CartPole with a tiny network and frequent updates: a few seconds per run."""
    config = TrainConfig()
    config.agent.net_arch = [32, 32]
    config.agent.learning_starts = 200
    config.agent.train_freq = 16
    config.agent.gradient_steps = 8
    config.agent.target_update_interval = 100
    config.agent.batch_size = 32
    config.training.total_steps = steps
    config.training.seed = seed
    config.training.eval_every = 1000
    config.training.eval_episodes = 2
    config.training.final_eval_episodes = 3
    config.training.log_every = 250
    config.self_tuning.interval = 4
    if mode is None:
        config.self_tuning.enabled = False
    else:
        config.self_tuning.mode = mode  # type: ignore[assignment]
    return config


@pytest.mark.parametrize("mode", [None, "hd", "meta"])
def test_same_seed_same_numbers(mode: str | None) -> None:
    runs = []
    for _ in range(2):
        collector = RecordCollector()
        result = train(small_config(mode, steps=1500), [collector])
        runs.append(([{k: v for k, v in r.items() if k != "sps"} for r in collector.records], result.final_eval))
    assert runs[0] == runs[1]
    other = RecordCollector()
    train(small_config(mode, steps=1500, seed=1), [other])
    assert [r.get("episodic_return") for r in other.records] != [r.get("episodic_return") for r in collector.records]


def test_records_carry_the_documented_keys() -> None:
    collector = RecordCollector()
    result = train(small_config("meta"), [collector])
    keys = set().union(*collector.records)
    expected = {
        "step",
        "episodic_return",
        "episode_length",
        "eval_return",
        "eval_return_std",
        "loss",
        "q_mean",
        "epsilon",
        "sps",
    }
    expected |= {f"hp/{n}" for n in ("lr", "gamma", "huber_delta", "tau")}  # every value the run uses
    expected |= {f"hypergrad/{n}" for n in ("lr", "huber_delta")}  # the default's tuned ones
    assert expected <= keys
    assert "hypergrad/tau" not in keys and "hypergrad/gamma" not in keys
    steps = [r["step"] for r in collector.records]
    assert steps == sorted(steps) and steps[-1] == 2000
    evals = [r for r in collector.records if "eval_return" in r]
    assert [r["step"] for r in evals] == [1000, 2000]
    assert evals[-1]["eval_return"] == result.final_eval.mean
    assert len(result.final_eval.returns) == 3
    # the hyperparameters really moved, and hypergradients were not all zero
    lrs = collector.series("hp/lr")[1]
    assert lrs[-1] != lrs[0]
    assert any(r.get("hypergrad/huber_delta", 0.0) != 0.0 for r in collector.records)
    assert len({r["hp/gamma"] for r in collector.records if "hp/gamma" in r}) == 1  # gamma is not tuned


def test_tuned_values_never_leave_their_bounds() -> None:
    config = small_config("meta", steps=3000)
    config.self_tuning.meta_lr = 0.5  # huge steps: the bounds must hold them
    config.self_tuning.bounds = {
        "lr": {"low": 1e-3, "high": 2e-3},
        "gamma": {"low": 0.95, "high": 0.99},  # type: ignore[dict-item]
        "huber_delta": {"low": 0.5, "high": 2.0},
        "tau": {"low": 0.1, "high": 0.9},  # type: ignore[dict-item]
    }
    config.agent.lr = 1.5e-3
    config.agent.gamma = 0.97
    config.agent.tau = 0.5
    collector = RecordCollector()
    train(config, [collector])
    hit_bound = False
    for name, bound in config.self_tuning.bounds.items():
        values = collector.series(f"hp/{name}")[1]
        assert min(values) >= bound.low * (1 - 1e-6) and max(values) <= bound.high * (1 + 1e-6), name
        hit_bound |= any(
            math.isclose(v, bound.low, rel_tol=1e-5) or math.isclose(v, bound.high, rel_tol=1e-5) for v in values
        )
    assert hit_bound, "meta_lr=0.5 should push some value onto a bound; otherwise this test checks nothing"


@pytest.mark.parametrize("reference_gamma", [None, 0.5])
def test_gamma_does_not_collapse_with_default_references(reference_gamma: float | None) -> None:
    """With the default reference (0.99) gamma stays up; the control run, whose outer loss asks for a small
    gamma (reference 0.5, like scoring with the tuned gamma itself would), shows the meta signal is strong
    enough to drive it to the lower bound (0.8) in the same budget, so the first check is not vacuous."""
    config = small_config("meta", steps=4000)
    config.self_tuning.params = ["gamma"]
    config.self_tuning.max_change = None  # the absolute bounds alone: the control run must reach 0.8
    config.self_tuning.lookahead = 1
    config.self_tuning.interval = 2
    config.self_tuning.meta_lr = 0.05
    if reference_gamma is not None:
        config.self_tuning.reference = {"gamma": reference_gamma}
    collector = RecordCollector()
    train(config, [collector])
    gammas = collector.series("hp/gamma")[1]
    if reference_gamma is None:
        assert min(gammas) > 0.95, gammas
    else:
        assert gammas[-1] == pytest.approx(config.self_tuning.bounds["gamma"].low, rel=1e-5)


@pytest.mark.parametrize("mode", ["hd", "meta"])
def test_the_lr_rule_leaves_extreme_starts(mode: str) -> None:
    """From lr 0.1 the step-size guard cuts lr within the first updates; from 1e-5 aligned steps raise it.
    In meta mode lr follows the same rule (``lr_rule: hd``); the rule without its guard is the control that
    shows the first check is not vacuous."""
    lrs = {}
    for lr0, guard in ((0.1, 0.1), (0.1, None), (1e-5, 0.1)):
        config = small_config(mode, steps=1500)
        config.agent.lr = lr0
        config.self_tuning.params = ["lr", "gamma"] if mode == "meta" else ["lr"]
        config.self_tuning.hd_interval = 2
        config.self_tuning.hd_max_step_ratio = guard
        collector = RecordCollector()
        train(config, [collector])
        lrs[(lr0, guard)] = collector.series("hp/lr")[1]
    assert lrs[(0.1, 0.1)][0] < 0.04, "a step of ~lr per weight is far beyond 10% of the weights: cut at once"
    assert lrs[(0.1, None)][0] > 0.05, "without the guard the cosine rule moves lr by small steps only"
    assert lrs[(1e-5, 0.1)][-1] > 3e-5, "aligned successive steps raise a tiny lr"


def test_callback_can_stop_training() -> None:
    class StopAtFirstEval(Callback):
        def on_record(self, record: dict[str, float]) -> bool | None:
            return "eval_return" not in record

    collector = RecordCollector()
    result = train(small_config(None, steps=5000), [StopAtFirstEval(), collector])
    assert result.stopped_early and result.steps == 1000
    assert collector.records[-1]["step"] == 1000


def test_non_finite_loss_raises_divergence() -> None:
    config = small_config(None)
    trainer = Trainer(config)
    with torch.no_grad():
        trainer.agent.q_net.head.bias.fill_(float("nan"))
    with pytest.raises(DivergenceError, match="non-finite"):
        trainer.run()


def test_linear_epsilon_schedule() -> None:
    kwargs = {"total_steps": 1000, "fraction": 0.5, "initial": 1.0, "final": 0.1}
    assert linear_epsilon(0, **kwargs) == 1.0
    assert linear_epsilon(250, **kwargs) == pytest.approx(0.55)
    assert linear_epsilon(900, **kwargs) == pytest.approx(0.1)
    assert linear_epsilon(5, total_steps=1000, fraction=0.0, initial=1.0, final=0.05) == 0.05


def test_actions_are_uniformly_random_until_learning_starts() -> None:
    """SB3's warm-up: no greedy action (and no forward pass) before ``learning_starts``, then the schedule."""
    config = small_config(None, steps=400)
    config.agent.exploration_initial_eps = 0.0  # the schedule alone would act greedily from step 0
    config.agent.exploration_final_eps = 0.0
    trainer = Trainer(config)
    forward_calls: list[int] = []
    trainer.agent.q_net.register_forward_hook(lambda *_: forward_calls.append(trainer.step))
    seen = [trainer.epsilon()]
    trainer.start()
    trainer.train_until(config.agent.learning_starts)
    seen.append(trainer.epsilon())
    assert seen == [1.0, 0.0]
    assert forward_calls == []  # every warm-up action was random
    trainer.train_until(config.agent.learning_starts + 20)
    assert min(forward_calls) == config.agent.learning_starts
    trainer.close()


@pytest.mark.parametrize("mode", [None, "hd"])
def test_linear_lr_decay_scales_the_lr_in_use_not_the_tuned_one(mode: str | None) -> None:
    config = small_config(mode, steps=1000)
    config.agent.lr_decay = "linear"
    collector = RecordCollector()
    trainer = Trainer(config, [collector])
    trainer.run()
    in_use = [(r["step"], r["lr_in_use"], r["hp/lr"]) for r in collector.records if "lr_in_use" in r]
    assert len(in_use) >= 3
    # Every record: lr in use = tuned lr x the share of the run left at the last phase (train_freq 16).
    for step, lr_in_use, tuned in in_use[1:]:
        phase_step = step - step % config.agent.train_freq
        assert lr_in_use == pytest.approx(tuned * (1 - phase_step / 1000), rel=1e-5)
    assert in_use[-1][1] < 0.3 * in_use[-1][2]
    optimizer_lr = trainer.agent.optimizer.param_groups[0]["lr"]
    assert optimizer_lr == pytest.approx(trainer.agent.lr * trainer.agent.lr_scale)
    if mode is None:
        assert trainer.agent.lr == pytest.approx(config.agent.lr)  # the decay never leaks into the value


def test_reaching_stop_at_return_ends_the_run_and_scores_that_policy() -> None:
    config = small_config(None, steps=3000)
    config.training.stop_at_return = 0.0  # every evaluation reaches it: the first one ends the run
    trainer = Trainer(config)
    result = trainer.run()
    every = config.training.eval_every
    assert result.solved_at == every and result.steps == every
    # The periodic evaluation (2 episodes) that reached it, then the final one (3 episodes) of the same policy.
    assert [step for step, _ in result.eval_history] == [every, every]
    assert len(result.final_eval.returns) == config.training.final_eval_episodes
    assert trainer.state_dict()["solved_at"] == every

    config.training.stop_at_return = 1e9  # never reached: the whole budget
    result = train(config)
    assert result.solved_at is None and result.steps == 3000


def test_n_envs_and_double_dqn_run() -> None:
    config = small_config("hd", steps=1200)
    config.env.n_envs = 4
    config.agent.double_dqn = True
    collector = RecordCollector()
    result = train(config, [collector])
    assert result.steps == 1200
    assert any("loss" in r for r in collector.records)


def test_a_value_stuck_on_its_bound_ends_the_run_as_diverged() -> None:
    config = small_config("meta", steps=4000)
    config.self_tuning.params = ["gamma"]
    config.self_tuning.max_change = None
    config.self_tuning.reference = {"gamma": 0.5}  # drives gamma onto its lower bound (see the test above)
    config.self_tuning.lookahead = 1
    config.self_tuning.interval = 2
    config.self_tuning.meta_lr = 0.05
    config.self_tuning.max_steps_at_bound = 500
    with pytest.raises(DivergenceError, match="gamma sat on its bound") as info:
        train(config)
    assert info.value.step < 4000

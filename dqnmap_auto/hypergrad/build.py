"""Build the tuner a config asks for."""

from __future__ import annotations

from dataclasses import replace

import torch

from dqnmap_auto.agent.dqn import DQNAgent
from dqnmap_auto.config import TrainConfig
from dqnmap_auto.hypergrad.hd import HDSettings, HypergradientDescentTuner, LearningRateGate
from dqnmap_auto.hypergrad.lr_gate import LookaheadGate
from dqnmap_auto.hypergrad.meta import LookaheadSettings, MetaGradientTuner
from dqnmap_auto.hypergrad.schedule import ScheduleTuner, require_schedule
from dqnmap_auto.hypergrad.space import HyperSpace, trust_region
from dqnmap_auto.hypergrad.tuner import FixedTuner


def build_space(
    config: TrainConfig, *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> HyperSpace:
    """The hyperparameter space: all four values, the ones ``self_tuning`` selects as tuned."""
    agent, tuning = config.agent, config.self_tuning
    initial = {"lr": agent.lr, "gamma": agent.gamma, "huber_delta": agent.huber_delta, "tau": agent.tau}
    bounds = {
        name: trust_region(name, initial[name], (b.low, b.high), tuning.max_change) for name, b in tuning.bounds.items()
    }
    return HyperSpace(initial, tuning.tuned(), bounds, dtype=dtype, device=device)


def build_tuner(config: TrainConfig, agent: DQNAgent, *, use_schedule: bool = False) -> FixedTuner:
    """FixedTuner, HypergradientDescentTuner or MetaGradientTuner by ``config.self_tuning``; ScheduleTuner
    replaying ``config.schedule`` when ``use_schedule``."""
    tuning = config.self_tuning
    if use_schedule:
        fixed = build_space(
            config.model_copy(update={"self_tuning": tuning.model_copy(update={"enabled": False})}),
            dtype=agent.dtype,
            device=agent.device,
        )
        return ScheduleTuner(fixed, agent, schedule=require_schedule(config))
    space = build_space(config, dtype=agent.dtype, device=agent.device)
    if not space.names:
        return FixedTuner(space, agent)
    hd = HDSettings(
        beta=tuning.hd_lr,
        interval=tuning.hd_interval,
        target_cos=tuning.hd_target_cos,
        pull=tuning.hd_lr_pull,
        reference=tuning.reference["lr"],
        max_step_ratio=tuning.hd_max_step_ratio,
        measure=tuning.hd_measure,
        pace_max=tuning.hd_pace_max,
    )
    settings = LookaheadSettings(
        lookahead=tuning.lookahead,
        # an untuned value is scored at the run's own (current) value: no collapse to guard against
        reference_gamma=tuning.reference["gamma"] if "gamma" in space.names else None,
        reference_delta=tuning.reference["huber_delta"] if "huber_delta" in space.names else None,
        max_grad_norm=config.agent.max_grad_norm,
        double_dqn=config.agent.double_dqn,
        adam_eps=config.agent.adam_eps,
        target_schedule=tuning.lookahead_target,
    )
    gate: LearningRateGate | None = None
    if tuning.hd_gate == "lookahead" and "lr" in space.names:
        # one step, scored at the run's own gamma and delta: the loss it trains on
        gate_settings = replace(
            settings, lookahead=1, reference_gamma=None, reference_delta=None, target_schedule="polyak"
        )
        gate = LookaheadGate(space, agent, gate_settings)
    if tuning.mode == "hd":
        return HypergradientDescentTuner(space, agent, hd, gate=gate)
    return MetaGradientTuner(
        space,
        agent,
        settings=settings,
        meta_lr=tuning.meta_lr,
        interval=tuning.interval,
        clip=tuning.hypergrad_clip,
        lr_rule=hd if tuning.lr_rule == "hd" else None,
        lr_gate=gate,
    )

"""The typed training configuration: one pydantic model per section, loaded from YAML.

A YAML file may also carry a ``study`` section (the Optuna study spec, see ``dqnmap_auto.tuning``); the train
config is then the spec's *base*, so ``dqnmap-auto train studies/cartpole.yaml`` trains the base configuration.
Every validation problem is turned into a :class:`ConfigError` whose message names the field.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dqnmap_auto.errors import ConfigError

#: Hyperparameters the self-tuning engine knows how to tune.
TUNABLE_PARAMS: tuple[str, ...] = ("lr", "gamma", "huber_delta", "tau")
#: Default ``self_tuning.reference``: the meta loss's gamma and Huber delta, and the hd rule's anchor lr (Adam's
#: default step size, Kingma & Ba 2015).
REFERENCE_VALUES: dict[str, float] = {"gamma": 0.99, "huber_delta": 1.0, "lr": 1e-3}
#: Keys of a YAML file that belong to the study spec, not to the train config.
STUDY_KEYS: tuple[str, ...] = ("study",)


class _Section(BaseModel):
    """Base for every config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class AtariConfig(_Section):
    """The standard DQN preprocessing of Atari frames (Mnih et al. 2015), applied to ``ALE/...`` ids only.

    gymnasium's ``AtariPreprocessing`` (no-op starts, frame skip with max-pooling, grayscale, resize),
    ``ClipReward`` and ``FrameStackObservation`` do the work. Reward clipping and life-loss termination apply to
    the training envs only: evaluation reports the game score of whole games.
    """

    frame_skip: int = Field(4, ge=1, description="Emulator frames per agent step (the env is made with frameskip=1).")
    screen_size: int = Field(84, ge=8, description="Side of the square grayscale frame.")
    frame_stack: int = Field(4, ge=1, description="Frames per observation (FrameStackObservation).")
    noop_max: int = Field(30, ge=0, description="At most this many random no-ops after a reset.")
    terminal_on_life_loss: bool = Field(False, description="Training episodes end when a life is lost.")
    clip_rewards: bool = Field(True, description="Training rewards clipped to [-1, 1].")


class EnvConfig(_Section):
    id: str = Field("CartPole-v1", description="gymnasium environment id (MinAtar/..., ALE/... need the pixels extra).")
    n_envs: int = Field(1, ge=1, description="Parallel training envs (gymnasium SyncVectorEnv).")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Extra keyword arguments to gym.make.")
    atari: AtariConfig = Field(default_factory=AtariConfig, description="Preprocessing of ALE/... envs.")


def _int_list(value: object) -> object:
    """Accept "16,32" and 16 as well as [16, 32]: a study's search space can only offer scalars."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    return value


class CnnConfig(_Section):
    """Convolutional encoder layout; every unset field comes from the preset (``agent.network``)."""

    channels: list[int] | None = Field(None, description="Output channels per conv layer.")
    kernels: list[int] | None = Field(None, description="Square kernel size per conv layer.")
    strides: list[int] | None = Field(None, description="Stride per conv layer.")
    hidden: int | None = Field(None, ge=1, description="Width of the fully connected layer after the convs.")

    @field_validator("channels", "kernels", "strides", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return _int_list(value)

    @field_validator("channels", "kernels", "strides")
    @classmethod
    def _positive(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or any(v < 1 for v in value)):
            raise ValueError(f"must be a non-empty list of positive integers, got {value}")
        return value

    @model_validator(mode="after")
    def _same_lengths(self) -> CnnConfig:
        given = {name: len(v) for name in ("channels", "kernels", "strides") if (v := getattr(self, name)) is not None}
        if len(set(given.values())) > 1:
            raise ValueError(f"channels, kernels and strides need one entry per conv layer, got lengths {given}")
        return self


class AgentConfig(_Section):
    """DQN settings. Defaults are rl-zoo3's tuned CartPole-v1 row (REFERENCE.md section 1)."""

    lr: float = Field(2.3e-3, gt=0, description="Adam learning rate (initial value when self-tuned).")
    gamma: float = Field(0.99, gt=0, lt=1, description="Discount factor (initial value when self-tuned).")
    batch_size: int = Field(64, ge=1)
    buffer_size: int = Field(
        100_000, ge=1, description="Replay capacity in transitions (in frames for images, each stored once)."
    )
    learning_starts: int = Field(1000, ge=0, description="Env steps of pure exploration before learning.")
    train_freq: int = Field(256, ge=1, description="Env steps (per env) between two training phases.")
    gradient_steps: int = Field(
        128, ge=-1, description="Gradient steps per training phase; -1 means as many as env steps collected."
    )
    target_update_interval: int = Field(10, ge=1, description="Env steps between target-network updates.")
    tau: float = Field(
        1.0,
        gt=0,
        le=1,
        description="Target smoothing: 1 is a hard copy, <1 a Polyak update. When tau self-tunes, it starts within "
        "self_tuning.bounds.tau (at most 0.999: tuned as a logit, it cannot be 1), so 1 becomes 0.999, a Polyak "
        "update; the CLI says so.",
    )
    huber_delta: float = Field(1.0, gt=0, description="Huber loss threshold on the TD error.")
    double_dqn: bool = Field(False, description="Select next actions with the online net (van Hasselt 2016).")
    net_arch: list[int] = Field(default_factory=lambda: [256, 256], description="Hidden layer widths.")
    activation: Literal["relu", "tanh", "elu", "gelu", "silu"] = "relu"
    max_grad_norm: float = Field(10.0, gt=0, description="Global gradient-norm clip (SB3 default).")
    adam_eps: float = Field(1e-8, gt=0)
    lr_decay: Literal["none", "linear"] = Field(
        "none",
        description="linear: the lr in use is the lr (tuned or not) times the share of the run still to go, as "
        "rl-zoo3's lin_ schedules; self-tuning tunes the lr before this factor. The hd rule holds the step "
        "size at its set point, so it raises the tuned lr to make up for the decay until its bounded rate "
        "falls behind, near the end of the run.",
    )
    exploration_fraction: float = Field(0.16, ge=0, le=1, description="Share of the run spent decaying eps.")
    exploration_initial_eps: float = Field(1.0, ge=0, le=1)
    exploration_final_eps: float = Field(0.04, ge=0, le=1)
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: cuda when present, else cpu.")
    network: Literal["auto", "mlp", "nature_cnn", "minatar_cnn"] = Field(
        "auto",
        description="auto: a CNN for image observations (channels, height, width): nature_cnn from 36x36 up, "
        "minatar_cnn below; an MLP (net_arch) otherwise.",
    )
    cnn: CnnConfig = Field(default_factory=CnnConfig, description="CNN layout; unset fields from the preset.")

    @field_validator("net_arch")
    @classmethod
    def _positive_widths(cls, widths: list[int]) -> list[int]:
        if not widths or any(w < 1 for w in widths):
            raise ValueError(f"must be a non-empty list of positive widths, got {widths}")
        return widths


class TrainingConfig(_Section):
    total_steps: int = Field(50_000, ge=1, description="Env steps (summed over envs) to train for.")
    seed: int = Field(0, ge=0, description="Fixes envs, network init, replay sampling and exploration.")
    eval_every: int = Field(10_000, ge=0, description="Env steps between evaluations; 0 evaluates at the end only.")
    eval_episodes: int = Field(10, ge=1, description="Greedy episodes per evaluation.")
    final_eval_episodes: int = Field(20, ge=1, description="Greedy episodes of the final evaluation.")
    log_every: int = Field(1000, ge=1, description="Env steps between training records (loss, hp/*, sps).")
    torch_threads: int = Field(1, ge=1, description="torch intra-op threads (1 is fastest for small MLPs).")
    checkpoint_every: int = Field(
        0,
        ge=0,
        description="Env steps between checkpoints (0: none; a study's trials checkpoint their seeds together at "
        "study.checkpoint_every instead).",
    )
    checkpoint_replay: int | None = Field(
        None, ge=0, description="Newest replay transitions kept in a checkpoint (None: all)."
    )
    stop_at_return: float | None = Field(
        None,
        description="Stop once a periodic evaluation's mean return reaches this (e.g. 475 on CartPole-v1); the "
        "final evaluation then scores the policy that reached it. SB3's StopTrainingOnRewardThreshold. None: "
        "train for total_steps.",
    )

    @model_validator(mode="after")
    def _stop_needs_evaluations(self) -> TrainingConfig:
        if self.stop_at_return is not None:
            if not math.isfinite(self.stop_at_return):
                raise ValueError(f"stop_at_return must be finite, got {self.stop_at_return}")
            if self.eval_every == 0:
                raise ValueError("stop_at_return needs periodic evaluations: set eval_every > 0")
        return self


class ParamBounds(_Section):
    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> ParamBounds:
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low >= self.high:
            raise ValueError(f"need finite low < high, got low={self.low}, high={self.high}")
        return self


def _default_bounds() -> dict[str, ParamBounds]:
    return {
        "lr": ParamBounds(low=1e-5, high=0.1),
        "gamma": ParamBounds(low=0.8, high=0.9995),
        "huber_delta": ParamBounds(low=0.05, high=100.0),
        "tau": ParamBounds(low=0.01, high=0.999),
    }


class SelfTuningConfig(_Section):
    """The inner loop: hyperparameters that follow their hypergradient during training."""

    # Every default below says what evidence set it; benchmarks/RESULTS.md has the runs and the commands. The
    # shipped default is self-tuning v7: meta mode, lr by the hd rule read at the start of each target period
    # (set point 0, paced), Huber delta by a lookahead whose target is held, as between real target updates;
    # gamma is left to its configured (or Optuna-sampled) value (issue 19's ablation: benchmarks/ablation.py,
    # benchmarks/dev_variants.py, benchmarks/gamma_signals.py).
    enabled: bool = True
    mode: Literal["hd", "meta"] = Field(
        "meta",
        description="hd: hypergradient descent on lr only; meta: lr by the hd rule, the other tuned values "
        "(huber_delta by default) by a lookahead meta-gradient. meta is the default: from the lr and "
        "wrong-reference starts on CartPole's and Acrobot's development seeds it solved 40 of 44 runs, lr alone "
        "(params [lr]) 34 of 44 (McNemar p = 0.07, not significant: issue 19, v7).",
    )
    params: list[str] = Field(
        default_factory=lambda: ["lr", "huber_delta"],
        description="Which hyperparameters self-tune (hd mode tunes lr only). gamma is not tuned by default since "
        "v7: the lookahead moves it to reference.gamma whatever the env needs (with the reference at 0.9, "
        "CartPole's gamma ended at 0.900 in 10 of 10 runs and solved 1/10 against 10/10 held fixed: ablation.py's "
        "wrong-gamma), no signal tried places it on both CartPole and Acrobot (gamma_signals.py), and the pull "
        "overrode the gamma an Optuna trial had sampled. Listing gamma switches that pull on (it rescued gamma "
        "0.9 starts on CartPole, where 0.99 is right). tau only with lookahead_target: polyak, the only "
        "lookahead that gives it a gradient; under it the lookahead also drove tau to 0.54 and delta to 0.3 on "
        "CartPole, so tau is not tuned by default.",
    )
    meta_lr: float = Field(
        0.01,
        ge=0,
        description="Adam step size of the meta-gradient on the lookahead's values (per meta-update, in logit / log "
        "space). Every benchmark so far ran 0.01; none compared other values (the CartPole study searches "
        "1e-3..0.1). 0 switches the step off and leaves the priors (the ablation `prior`). Hypergradients here are "
        "1e-3..1e-1, far above Adam's eps, so no rescaling.",
    )
    hd_lr: float = Field(
        0.1,
        ge=0,
        description="hd rule: log-lr step per update, times (cosine - hd_target_cos); the v2 anchor value. 0 "
        "switches the hypergradient step off and leaves the pull and the step-size guard (the ablation `prior`).",
    )
    hd_interval: int = Field(
        8,
        ge=1,
        description="hd rule: gradient steps between two learning-rate updates; each costs a parameter copy and "
        "a few norms (hd/fixed speed 1.02 on CartPole). Every benchmark ran 8; none compared other values.",
    )
    hd_target_cos: float = Field(
        0.0,
        ge=-1,
        le=1,
        description="hd rule: set point for cos(g_t, u_t-1); lr grows above it, shrinks below it. 0 with "
        "hd_measure target_update, where the cosine crosses 0 near rl-zoo3's lr on CartPole and Acrobot "
        "(lr_signals.py, start1); -0.05 with hd_measure interval (v2-v5), where plain hd (0) shrank lr at "
        "CartPole's noise floor (hd_cosine.py).",
    )
    hd_lr_pull: float = Field(
        3e-3,
        ge=0,
        lt=1,
        description="hd rule: per update, log lr also moves this fraction of the way to log reference.lr. Why: "
        "the lag-1 cosine hardly depends on lr between 1e-4 and 1e-2 (lr_signals.py), and without the pull lr "
        "drifted up until Acrobot broke (robustness 23/30 -> 29/30; CartPole 39/50 with 3e-3, 34/50 with 1e-3).",
    )
    hd_max_step_ratio: float | None = Field(
        0.1,
        gt=0,
        description="hd rule: a recorded step that moves the weights by more than this fraction of their norm is "
        "undone and lr cut to fit (null: never). Why: from lr 0.1 Acrobot diverges before any cosine can react.",
    )
    hd_measure: Literal["interval", "target_update"] = Field(
        "target_update",
        description="hd rule: read cos(g_t, u_t-1) only at the first step after each target-network update, where "
        "the cosine depends on lr and crosses 0 near rl-zoo3's lr on CartPole and Acrobot (lr_signals.py, "
        "start1), or every hd_interval steps (v2-v5), where it hardly depends on lr and the pull decides. "
        "target_update is the default since v6: from Acrobot's wrong-high start (reference lr 30x above "
        "rl-zoo3's) interval reads drove lr to 0.05 and failed on every development seed; target-update reads "
        "ended near 5e-3 (RESULTS.md, issue 19, v6).",
    )
    hd_pace_max: float = Field(
        6.0,
        ge=1,
        description="hd rule, with hd_measure target_update: a read's step and pull count as the gradient steps "
        "since the previous read over hd_interval, capped here (reads closer than hd_interval count less). "
        "Unpaced (1), one read per training phase on CartPole climbed from lr 1e-5 to 1e-3 only after 50k steps "
        "and failed both development seeds; uncapped, Acrobot's lr ran to its bound; 6 solved both (development "
        "seeds, issue 19, v6). Only 1, 6 and no cap were compared.",
    )
    hd_gate: Literal["none", "lookahead"] = Field(
        "none",
        description="hd rule: lookahead lets a read move lr only where the one-step lookahead hypergradient "
        "-dJ/dlog lr at the same weights agrees in sign with the cosine, the pull deciding elsewhere; one "
        "differentiated step per read. Why a candidate: the cosine alone says 'lower' below every lr that learned "
        "on MountainCar and 'raise' at 1e-2 on LunarLander, the lookahead crosses zero near rl-zoo3's lr on "
        "CartPole, Acrobot and MountainCar (lr_signals.py, seed 0). Off: on development seeds it solved 18 of 24 "
        "CartPole runs against v7's 20 (McNemar 0.69) and 0 of 6 MountainCar runs as v7 did; during training the "
        "two signals agreed at 75-100% of reads in the runs traced, so the gate rarely acts (RESULTS.md, issue 19, "
        "v8a).",
    )
    lr_rule: Literal["hd", "meta"] = Field(
        "hd",
        description="meta mode: lr (when in params) follows the hd rule, or its own lookahead meta-gradient, "
        "which short horizons bias towards tiny learning rates (lr_signals.py: meta2 negative from 1e-3 up).",
    )
    interval: int = Field(
        32,
        ge=1,
        description="meta mode: gradient steps between two meta-updates, each worth about 10 plain steps; set for "
        "speed (meta/fixed 0.52-0.69 at 16, 0.74 at 32 with v4, 0.78 with v6 on an idle machine: benchmarks/speed.py).",
    )
    lookahead: int = Field(
        2,
        ge=1,
        le=4,
        description="meta mode: differentiated inner steps (2: the shortest horizon in which the target matters).",
    )
    lookahead_target: Literal["polyak", "held"] = Field(
        "held",
        description="meta mode: held keeps the target network fixed and gives every inner step a fresh batch, as "
        "real steps between two target updates see them (the default: with it meta solved from gamma 0.9 on "
        "CartPole where the polyak lookahead did not, gamma ending at 0.989 instead of 0.986, delta near 0.9 "
        "instead of 0.3-0.6); polyak moves the target by tau between inner steps that reuse one batch, a "
        "compressed stand-in for the target schedule whose gamma and delta gradients are biased down, but the "
        "only one that gives tau a gradient.",
    )
    hypergrad_clip: float = Field(
        1.0,
        gt=0,
        description="meta mode: clip on the norm of the hypergradient vector before Adam (which normalises the "
        "step anyway); guards against one bad batch. Not tuned by any benchmark.",
    )
    bounds: dict[str, ParamBounds] = Field(default_factory=_default_bounds)
    max_steps_at_bound: int | None = Field(
        None,
        ge=1,
        description="Stop the run as diverged when a tuned value sits on a bound for this many env steps "
        "(null: never). A study's safety switch, off by default: no benchmark sets it.",
    )
    max_change: float | None = Field(
        None,
        gt=1,
        description="Trust region: a tuned value stays within this factor of its initial value (odds for gamma "
        "and tau); null (the default): only the bounds apply. With 10, starts at lr 1e-5 or 0.1 could not reach "
        "a working lr on CartPole or Acrobot (RESULTS.md, robustness v2).",
    )
    reference: dict[str, float] = Field(
        default_factory=lambda: dict(REFERENCE_VALUES),
        description="Fixed values that anchor self-tuning: gamma and huber_delta in the outer (meta) loss, so tuned "
        "values cannot collapse; lr is where the hd rule's pull (hd_lr_pull) leads. 1e-3 / 0.99 / 1.0: common "
        "DQN values, not any env's tuned row (issue 19's wrong-low / wrong-high starts move lr 30x away). A tuned "
        "gamma goes to its reference: with it at 0.9, CartPole's gamma ended at 0.900 in 10 of 10 runs "
        "(wrong-gamma), which is why gamma is not in the default params.",
    )

    @field_validator("params", mode="before")
    @classmethod
    def _split_params(cls, params: object) -> object:
        """Accept "gamma,tau" as well as a list: a study's search space can only offer strings."""
        if isinstance(params, str):
            return [p.strip() for p in params.split(",") if p.strip()]
        return params

    @field_validator("params")
    @classmethod
    def _known_params(cls, params: list[str]) -> list[str]:
        unknown = sorted(set(params) - set(TUNABLE_PARAMS))
        if unknown:
            raise ValueError(f"unknown hyperparameter(s) {unknown}; tunable: {list(TUNABLE_PARAMS)}")
        return list(dict.fromkeys(params))

    @model_validator(mode="after")
    def _tau_needs_a_gradient(self) -> SelfTuningConfig:
        if self.enabled and self.mode == "meta" and "tau" in self.params and self.lookahead_target == "held":
            raise ValueError(
                "params: tau self-tunes only with lookahead_target: polyak (a held target gives it no gradient); "
                "drop tau or set lookahead_target: polyak"
            )
        return self

    @field_validator("bounds")
    @classmethod
    def _merge_default_bounds(cls, bounds: dict[str, ParamBounds]) -> dict[str, ParamBounds]:
        unknown = sorted(set(bounds) - set(TUNABLE_PARAMS))
        if unknown:
            raise ValueError(f"bounds for unknown hyperparameter(s) {unknown}")
        merged = _default_bounds()
        merged.update(bounds)
        for name in ("gamma", "tau"):
            if not 0 < merged[name].low < merged[name].high < 1:
                raise ValueError(f"{name} bounds must lie strictly inside (0, 1)")
        if merged["lr"].low <= 0 or merged["huber_delta"].low <= 0:
            raise ValueError("lr and huber_delta bounds must be positive")
        return merged

    @field_validator("reference")
    @classmethod
    def _known_references(cls, reference: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(reference) - set(REFERENCE_VALUES))
        if unknown:
            raise ValueError(f"reference values exist for {list(REFERENCE_VALUES)} only, got {unknown}")
        merged = REFERENCE_VALUES | reference
        if not 0 < merged["gamma"] < 1 or merged["huber_delta"] <= 0 or merged["lr"] <= 0:
            raise ValueError(f"reference values out of range: {merged}")
        return merged

    def tuned(self) -> list[str]:
        """The hyperparameters that actually self-tune with this mode."""
        if not self.enabled:
            return []
        if self.mode == "hd":
            return ["lr"] if "lr" in self.params else []
        return list(self.params)


class TrainConfig(_Section):
    """Everything one training run needs. Sections mirror the YAML file."""

    env: EnvConfig = Field(default_factory=EnvConfig)
    agent: AgentConfig = Field(default_factory=AgentConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    self_tuning: SelfTuningConfig = Field(default_factory=SelfTuningConfig)
    schedule: dict[str, list[tuple[int, float]]] | None = Field(
        None,
        description="A learned trajectory, (env step, value) per hyperparameter, replayed by `train --schedule`.",
    )

    @field_validator("schedule")
    @classmethod
    def _valid_schedule(
        cls, schedule: dict[str, list[tuple[int, float]]] | None
    ) -> dict[str, list[tuple[int, float]]] | None:
        if schedule is None:
            return None
        for name, points in schedule.items():
            if name not in TUNABLE_PARAMS:
                raise ValueError(f"unknown hyperparameter {name!r}; tunable: {list(TUNABLE_PARAMS)}")
            if not points:
                raise ValueError(f"{name}: empty schedule")
            steps = [step for step, _ in points]
            if steps != sorted(steps):
                raise ValueError(f"{name}: steps must be increasing")
            if any(not math.isfinite(v) or v <= 0 for _, v in points):
                raise ValueError(f"{name}: values must be finite and positive")
        return schedule


def format_validation_error(error: ValidationError, *, prefix: str = "") -> str:
    """One line naming every bad field, e.g. ``agent.lr: Input should be greater than 0 (got -1)``."""
    parts = []
    for item in error.errors():
        location = ".".join(str(p) for p in (prefix, *item["loc"]) if p != "")
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        elif "input" in item and not isinstance(item["input"], dict):
            message += f" (got {item['input']!r})"
        parts.append(f"{location or '<root>'}: {message}")
    return "; ".join(parts)


def validate_train_config(data: dict[str, Any]) -> TrainConfig:
    """Validate a plain mapping (study keys already removed) into a :class:`TrainConfig`."""
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error)) from None


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML file that must hold a mapping; errors name the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read ({error})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: invalid YAML{where}") from None
    if data is None:
        raise ConfigError(f"{path}: file is empty")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def split_study_keys(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a YAML mapping into (train config part, study spec part)."""
    train = {k: v for k, v in data.items() if k not in STUDY_KEYS}
    study = {k: v for k, v in data.items() if k in STUDY_KEYS}
    return train, study


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides (values parsed as YAML) to a raw config mapping.

    Paths are checked against the config model, so a typo is an error instead of a silently ignored key.
    """
    result = _deep_copy(data)
    for override in overrides:
        if "=" not in override:
            raise ConfigError(f"--set {override!r}: expected key=value")
        key, raw_value = override.split("=", 1)
        key = key.strip()
        check_field_path(key)
        try:
            value = yaml.safe_load(raw_value) if raw_value.strip() else ""
        except yaml.YAMLError:
            value = raw_value
        node = result
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = value
    return result


def check_field_path(key: str) -> None:
    """Raise ConfigError unless ``key`` is a dotted path to a field of :class:`TrainConfig`."""
    model: type[BaseModel] | None = TrainConfig
    parts = key.split(".")
    for index, part in enumerate(parts):
        if model is None:
            # Inside a free-form mapping (env.kwargs, self_tuning.bounds, ...): any key is allowed there.
            return
        field = model.model_fields.get(part)
        if field is None:
            raise ConfigError(f"--set {key}: unknown field {'.'.join(parts[: index + 1])!r}")
        annotation = field.annotation
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
        if model is not None and index == len(parts) - 1:
            raise ConfigError(f"--set {key}: is a section, give one of its fields")


def _deep_copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data


def load_train_config(
    path: str | Path,
    *,
    overrides: list[str] | tuple[str, ...] = (),
    seed: int | None = None,
    steps: int | None = None,
) -> TrainConfig:
    """Load a train config (or a study spec's base) from YAML, apply overrides, validate."""
    train_part, _ = split_study_keys(read_yaml_mapping(path))
    train_part = apply_overrides(train_part, overrides)
    if seed is not None:
        train_part = apply_overrides(train_part, [f"training.seed={seed}"])
    if steps is not None:
        train_part = apply_overrides(train_part, [f"training.total_steps={steps}"])
    return validate_train_config(train_part)


def dump_config(config: TrainConfig) -> str:
    """The resolved config as YAML (round-trips through :func:`load_train_config`)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def clamped_start_values(config: TrainConfig) -> list[str]:
    """One line per self-tuned hyperparameter whose configured value lies outside its ``self_tuning.bounds``.

    Self-tuning starts such a value on the bound, silently changing what the config says: ``agent.tau: 1.0``
    (a hard copy) self-tunes from 0.999 (a Polyak update), as the logit that tau is tuned through has no value
    at 1. The CLI prints these lines once per command.
    """
    notes = []
    agent = config.agent
    for name in config.self_tuning.tuned():
        value = float(getattr(agent, name))
        bounds = config.self_tuning.bounds[name]
        start = min(max(value, bounds.low), bounds.high)
        if start == value:
            continue
        line = (
            f"agent.{name} {value:g} self-tunes within self_tuning.bounds.{name} [{bounds.low:g}, {bounds.high:g}], "
            f"so it starts at {start:g}"
        )
        if name == "tau" and value == 1.0:
            line += ": a Polyak update, not the hard copy tau 1 means (leave tau out of self_tuning.params to keep it)"
        notes.append(line)
    return notes

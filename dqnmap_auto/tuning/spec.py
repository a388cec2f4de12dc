"""The study spec: a train config (the *base*) plus a ``study`` section that says what Optuna searches.

env: ...          # the base train config, as for `dqnmap-auto train`
agent: ...
study:
  name: cartpole
  n_trials: 20
  steps: 50000            # env steps per trial and seed
  seeds: 1
  eval_every: 10000
  eval_episodes: 10
  objective: last          # last | best | auc
  sampler: {name: tpe, args: {n_startup_trials: 5}}
  pruner: {name: median, args: {n_startup_trials: 3, n_warmup_steps: 20000}}
  search_space:
    agent.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
    self_tuning.mode: {type: categorical, choices: [hd, meta]}
"""

from __future__ import annotations

import inspect
import itertools
import math
import warnings
from pathlib import Path
from typing import Annotated, Any, Literal

import optuna
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from dqnmap_auto.config import (
    TrainConfig,
    apply_overrides,
    check_field_path,
    clamped_start_values,
    format_validation_error,
    read_yaml_mapping,
    split_study_keys,
    validate_train_config,
)
from dqnmap_auto.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_range(low: float, high: float, *, log: bool) -> None:
    """A searchable range: finite, low < high, and positive on a log scale."""
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise ValueError(f"need low < high, got low={low}, high={high}")
    if log and low <= 0:
        raise ValueError(f"log scale needs low > 0, got {low}")


class FloatParam(_Strict):
    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = None

    @model_validator(mode="after")
    def _check(self) -> FloatParam:
        _check_range(self.low, self.high, log=self.log)
        return self


class IntParam(_Strict):
    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = 1

    @model_validator(mode="after")
    def _check(self) -> IntParam:
        _check_range(self.low, self.high, log=self.log)
        return self


class CategoricalParam(_Strict):
    type: Literal["categorical"]
    choices: list[Any] = Field(min_length=1)


ParamSpec = Annotated[FloatParam | IntParam | CategoricalParam, Field(discriminator="type")]

SAMPLERS: dict[str, type[optuna.samplers.BaseSampler]] = {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
    "cmaes": optuna.samplers.CmaEsSampler,
    "gp": optuna.samplers.GPSampler,
    "qmc": optuna.samplers.QMCSampler,
}
PRUNERS: dict[str, type[optuna.pruners.BasePruner]] = {
    "median": optuna.pruners.MedianPruner,
    "percentile": optuna.pruners.PercentilePruner,
    "patient": optuna.pruners.PatientPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "wilcoxon": optuna.pruners.WilcoxonPruner,
    "threshold": optuna.pruners.ThresholdPruner,
    "none": optuna.pruners.NopPruner,
}


class SamplerSpec(_Strict):
    name: Literal["tpe", "random", "cmaes", "gp", "qmc"] = "tpe"
    args: dict[str, Any] = Field(default_factory=dict)


class PrunerSpec(_Strict):
    name: Literal[
        "median", "percentile", "patient", "hyperband", "successive_halving", "wilcoxon", "threshold", "none"
    ] = "median"
    args: dict[str, Any] = Field(default_factory=dict)
    wraps: PrunerSpec | None = Field(None, description="patient only: the pruner it wraps.")

    @model_validator(mode="after")
    def _wraps_only_for_patient(self) -> PrunerSpec:
        if self.wraps is not None and self.name != "patient":
            raise ValueError(f"'wraps' is for the patient pruner, not {self.name!r}")
        return self


class StudySettings(_Strict):
    """The ``study`` section of a spec."""

    name: str | None = Field(None, description="Study name [default: the spec file's stem].")
    n_trials: int | None = Field(20, ge=1, description="Trials per `study run` (null: until the timeout).")
    timeout: float | None = Field(None, gt=0, description="Seconds per `study run` (null: no limit).")
    storage: str | None = Field(None, description="Optuna storage URL or journal path [default: project dir].")
    steps: int | None = Field(None, ge=1, description="Env steps per trial and seed [default: base's].")
    env: str | None = Field(None, description="Env id for the trials [default: the base's env.id].")
    seeds: int = Field(1, ge=1, le=32, description="Independent seeds per trial, trained interleaved.")
    eval_every: int = Field(10_000, ge=1, description="Env steps between reported evaluations.")
    eval_episodes: int = Field(10, ge=1)
    objective: Literal["last", "best", "auc"] = Field(
        "last", description="last eval, best eval, or area under the eval curve (mean over evaluations)."
    )
    metric_name: str = "eval_return"
    sampler: SamplerSpec = Field(default_factory=SamplerSpec)
    pruner: PrunerSpec = Field(default_factory=PrunerSpec)
    search_space: dict[str, ParamSpec] = Field(default_factory=dict)
    checkpoint_every: int | None = Field(None, ge=1, description="Env steps between trial checkpoints [eval_every].")
    stale_after: float = Field(60.0, gt=0, description="Seconds without heartbeat before a running trial is stale.")
    heartbeat_interval: float = Field(10.0, gt=0, description="Seconds between a running trial's heartbeats.")
    enqueue: list[dict[str, Any]] = Field(
        default_factory=list, description="Parameter sets evaluated first when the study is created."
    )


class StudySpec(BaseModel):
    """A validated spec: the base train config, the study settings, and where it came from."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    base: TrainConfig
    study: StudySettings
    base_data: dict[str, Any]
    source: str

    @property
    def name(self) -> str:
        return self.study.name or Path(self.source).stem

    def trial_config(self, params: dict[str, Any], *, seed: int) -> TrainConfig:
        """The base config with the study's fixed settings and the sampled ``params`` applied."""
        overrides = [f"{path}={_yaml_scalar(value)}" for path, value in params.items()]
        overrides += [*self.fixed_overrides(), f"training.seed={seed}"]
        return validate_train_config(apply_overrides(self.base_data, overrides))

    def fixed_overrides(self) -> list[str]:
        """Overrides every trial gets from the study section (budget, env, evaluation)."""
        study = self.study
        out = [f"training.eval_every={study.eval_every}", f"training.eval_episodes={study.eval_episodes}"]
        if study.steps is not None:
            out.append(f"training.total_steps={study.steps}")
        if study.env is not None:
            out.append(f"env.id={study.env}")
        return out


def _yaml_scalar(value: Any) -> str:
    """Render a sampled value so that ``apply_overrides`` parses it back to the same value."""
    import yaml

    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def build_sampler(spec: SamplerSpec, *, seed: int | None = None) -> optuna.samplers.BaseSampler:
    cls = SAMPLERS[spec.name]
    args = dict(spec.args)
    if seed is not None and "seed" in inspect.signature(cls).parameters:
        args.setdefault("seed", seed)
    return _construct(cls, args, f"study.sampler.args ({spec.name})")


def build_pruner(spec: PrunerSpec) -> optuna.pruners.BasePruner:
    cls = PRUNERS[spec.name]
    args = dict(spec.args)
    if spec.name == "patient":
        args["wrapped_pruner"] = build_pruner(spec.wraps) if spec.wraps is not None else None
        args.setdefault("patience", 1)
    return _construct(cls, args, f"study.pruner.args ({spec.name})")


_PLAIN_TYPES = {"int": int, "float": float, "bool": bool, "str": str, "None": None}


def _construct(cls: type, args: dict[str, Any], where: str) -> Any:
    """``cls(**args)`` with unknown names and wrongly typed values reported as one-line ConfigErrors.

    Optuna validates few constructor arguments itself, so each value is checked against the annotation
    of the signature (pydantic), where pydantic understands it.
    """
    parameters = inspect.signature(cls).parameters
    unknown = sorted(set(args) - set(parameters))
    if unknown:
        raise ConfigError(f"{where}: unknown argument(s) {unknown}; accepted: {sorted(parameters)}")
    for key, value in args.items():
        annotation = parameters[key].annotation
        if annotation is inspect.Parameter.empty:
            continue
        try:  # Optuna's annotations are strings; only plain builtin ones ("int", "float | None") are checked
            if isinstance(annotation, str):
                annotation = eval(annotation, {"__builtins__": {}}, _PLAIN_TYPES)
            adapter = TypeAdapter(annotation)
        except Exception:  # callables, samplers, ...: not checkable here, the constructor decides
            continue
        try:
            adapter.validate_python(value)
        except ValidationError as error:
            raise ConfigError(f"{where}.{key}: {error.errors()[0]['msg']} (got {value!r})") from None
    try:
        with warnings.catch_warnings():  # WilcoxonPruner & co. are marked experimental; the user chose them
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return cls(**args)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{where}: {error}".splitlines()[0]) from None


def load_study_spec(path: str | Path, *, overrides: list[str] | tuple[str, ...] = ()) -> StudySpec:
    """Read and validate a spec; every error names the field (``study.pruner.args``, ``agent.lr``, ...)."""
    data = read_yaml_mapping(path)
    base_data, study_part = split_study_keys(data)
    base_data = apply_overrides(base_data, overrides)
    base = validate_train_config(base_data)
    try:
        settings = StudySettings.model_validate(study_part.get("study") or {})
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, prefix="study")) from None
    spec = StudySpec(base=base, study=settings, base_data=base_data, source=str(path))
    _check_search_space(spec)
    build_sampler(settings.sampler)
    build_pruner(settings.pruner)
    from dqnmap_auto.envs import check_env

    obs_space = check_env(spec.trial_config({}, seed=0).env)  # also validates the study's fixed settings
    _check_networks(spec, tuple(obs_space.shape or ()))
    for index, params in enumerate(settings.enqueue):
        unknown = sorted(set(params) - set(settings.search_space))
        if unknown:
            raise ConfigError(f"study.enqueue.{index}: {unknown} not in the search space")
        try:
            spec.trial_config(params, seed=0)
        except ConfigError as error:
            raise ConfigError(f"study.enqueue.{index}: {error}") from None
    return spec


def _check_search_space(spec: StudySpec) -> None:
    """Every searched path exists, and its extreme values give a valid config."""
    for path, param in spec.study.search_space.items():
        where = f"study.search_space.{path}"
        try:
            check_field_path(path)
        except ConfigError:
            raise ConfigError(f"{where}: unknown hyperparameter (no such config field)") from None
        values = param.choices if isinstance(param, CategoricalParam) else [param.low, param.high]
        for value in values:
            try:
                spec.trial_config({path: value}, seed=0)
            except ConfigError as error:
                raise ConfigError(f"{where}: value {value!r} is invalid ({error})") from None


#: Search-space paths that shape the Q-network, checked against the observation shape in every combination.
NETWORK_PATHS = ("agent.network", "agent.cnn.")
MAX_NETWORK_COMBINATIONS = 1000


def _check_networks(spec: StudySpec, obs_shape: tuple[int, ...]) -> None:
    """Every network the search space can ask for fits the observations (e.g. a CNN layout whose channels,
    kernels and strides have equal lengths and whose kernels fit the image), in every combination of the
    categorical network settings, so a bad layout fails here and not in a trial hours later."""
    from dqnmap_auto.agent.networks import check_network

    paths = [
        path
        for path, param in spec.study.search_space.items()
        if isinstance(param, CategoricalParam) and path.startswith(NETWORK_PATHS)
    ]
    choices = [spec.study.search_space[path].choices for path in paths]  # type: ignore[union-attr]
    for combination in itertools.islice(itertools.product(*choices), MAX_NETWORK_COMBINATIONS):
        params = dict(zip(paths, combination, strict=True))
        try:
            check_network(spec.trial_config(params, seed=0).agent, obs_shape)
        except ConfigError as error:
            where = f"study.search_space {params}" if params else "agent"
            raise ConfigError(f"{where}: {error}") from None


#: Study settings whose choices decide which hyperparameters self-tune, and the tuned values themselves.
SELF_TUNING_PATHS = ("self_tuning.", "agent.lr", "agent.gamma", "agent.huber_delta", "agent.tau")


def study_notes(spec: StudySpec) -> list[str]:
    """What the study's trials will do that their configs do not say (see ``config.clamped_start_values``),
    over the base config, the enqueued trials and every combination of the self-tuning choices and the ends of
    the searched ranges of tuned values: printed once by `study run`, not once per trial."""
    candidates: list[dict[str, Any]] = [{}, *spec.study.enqueue]
    paths, choices = [], []
    for path, param in spec.study.search_space.items():
        if path.startswith(SELF_TUNING_PATHS):
            paths.append(path)
            choices.append(param.choices if isinstance(param, CategoricalParam) else [param.low, param.high])
    for combination in itertools.islice(itertools.product(*choices), MAX_NETWORK_COMBINATIONS):
        candidates.append(dict(zip(paths, combination, strict=True)))
    notes: list[str] = []
    for params in candidates:
        try:
            config = spec.trial_config(params, seed=0)
        except ConfigError:
            continue  # an invalid combination fails its trial, with the reason
        notes += [note for note in clamped_start_values(config) if note not in notes]
    return notes

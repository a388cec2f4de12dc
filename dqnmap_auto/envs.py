"""gymnasium environment construction: the training vector env and the evaluation env.

Training uses a ``SyncVectorEnv`` in SAME_STEP autoreset mode, so the true last observation of an episode
arrives in ``info["final_obs"]`` with the step that ended it (the transition stored in replay is exact), and
``RecordEpisodeStatistics`` supplies episode returns and lengths. MinAtar and Atari ids get their wrappers
from ``pixel_envs`` (training envs with reward clipping and optional life-loss termination, evaluation envs
without), so ``episodic_return`` of an Atari training run is the clipped return and ``eval_return`` the score.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from dqnmap_auto import pixel_envs
from dqnmap_auto.config import EnvConfig
from dqnmap_auto.errors import ConfigError, EnvCreationError

#: Offset between the training seed and the evaluation env's seeds, so the two never share episodes.
EVAL_SEED_OFFSET = 10_000


def check_env_id(env_id: str) -> None:
    """Raise ConfigError if ``env_id`` is not registered with gymnasium (MinAtar/ALE ids are registered first)."""
    pixel_envs.register_env_id(env_id)
    if env_id not in gym.registry:
        close = [name for name in gym.registry if name.lower().startswith(env_id.split("-")[0].lower())][:3]
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"env.id: unknown gymnasium environment {env_id!r}{hint}")


def check_env(config: EnvConfig) -> gym.Space:
    """Build the env once and check what DQN needs (registered id, valid kwargs, Discrete actions).

    Returns the observation space the agent will see (after the pixel wrappers), for the network checks.
    """
    env = make_env(config, training=True)
    try:
        _check_discrete(config.id, env.action_space)
        return env.observation_space
    finally:
        env.close()


def make_env(config: EnvConfig, *, training: bool) -> gym.Env:
    """One env of ``config`` with its wrappers (see ``pixel_envs``); creation problems are one-line errors."""
    check_env_id(config.id)
    try:
        env = gym.make(config.id, **pixel_envs.make_kwargs(config))
        for wrap in pixel_envs.wrappers(config, training=training):
            env = wrap(env)
    except Exception as error:  # gymnasium raises many types for bad kwargs / missing extras
        raise EnvCreationError(f"env: cannot create {config.id!r}: {error}".splitlines()[0]) from None
    return env


def make_vector_env(config: EnvConfig, num_envs: int, *, training: bool) -> gym.vector.VectorEnv:
    """``num_envs`` copies in a SAME_STEP-autoreset ``SyncVectorEnv`` (true final observations in the infos)."""
    check_env_id(config.id)
    try:
        return gym.make_vec(
            config.id,
            num_envs=num_envs,
            vectorization_mode="sync",
            vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
            wrappers=pixel_envs.wrappers(config, training=training),
            **pixel_envs.make_kwargs(config),
        )
    except Exception as error:  # gymnasium raises many types for bad kwargs / missing extras
        raise EnvCreationError(f"env: cannot create {config.id!r}: {error}".splitlines()[0]) from None


def _check_discrete(env_id: str, space: gym.Space) -> None:
    if not isinstance(space, gym.spaces.Discrete):
        raise ConfigError(f"env.id: {env_id} has a {type(space).__name__} action space; DQN needs Discrete actions")


def make_train_envs(config: EnvConfig, seed: int) -> gym.vector.VectorEnv:
    """The training vector env, seeded (envs get seed, seed+1, ...) and recording episode statistics."""
    envs = make_vector_env(config, config.n_envs, training=True)
    try:
        _check_discrete(config.id, envs.single_action_space)
    except ConfigError:
        envs.close()
        raise
    envs = gym.wrappers.vector.RecordEpisodeStatistics(envs)
    envs.action_space.seed(seed)
    return envs


def make_eval_env(config: EnvConfig) -> gym.Env:
    """A single env for greedy evaluation; its episodes are seeded by :func:`evaluation_seeds`."""
    return make_env(config, training=False)


def evaluation_seeds(seed: int, n_episodes: int) -> list[int]:
    """The same episode seeds at every evaluation, so successive evaluations are comparable."""
    return [seed + EVAL_SEED_OFFSET + i for i in range(n_episodes)]


def final_observations(next_obs: np.ndarray, done: np.ndarray, infos: dict[str, Any]) -> np.ndarray:
    """``next_obs`` with the true terminal observation put back for envs whose episode just ended."""
    if not done.any():
        return next_obs
    real_next = next_obs.copy()
    for index in np.flatnonzero(done):
        real_next[index] = infos["final_obs"][index]
    return real_next

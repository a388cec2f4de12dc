"""dqnmap-auto: Optuna studies over DQN agents that tune their own hyperparameters online."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dqnmap-auto")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]

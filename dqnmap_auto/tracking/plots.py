"""Matplotlib figures of one run's records (and of a study), one function each, PNG out.

Every function takes the record stream of a Trainer (list of dicts, see ``dqnmap_auto.callbacks``) and a path;
the notebook calls the same functions. They draw nothing and return None when the records lack the data.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and workers
import matplotlib.pyplot as plt
import numpy as np

Records = Sequence[Mapping[str, float | str]]  # live-control records carry text too


def series(records: Records, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of the records that carry ``key``."""
    rows = [(r["step"], r[key]) for r in records if key in r]
    if not rows:
        return np.array([]), np.array([])
    steps, values = zip(*rows, strict=True)
    return np.asarray(steps, dtype=float), np.asarray(values, dtype=float)


def _save(fig: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Fixed margins instead of tight_layout: it was half the plotting time, which counts against the
    # tracking overhead budget of every trial.
    fig.subplots_adjust(left=0.13, right=0.96, top=0.92, bottom=0.11, hspace=0.35)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def learning_curve(records: Records, path: str | Path) -> Path | None:
    """Episodic return (training, with exploration) and greedy evaluation return against env steps."""
    steps, returns = series(records, "episodic_return")
    eval_steps, eval_returns = series(records, "eval_return")
    if not len(steps) and not len(eval_steps):
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    if len(steps):
        ax.plot(steps, returns, ".", alpha=0.3, ms=3, label="episodic return")
        window = max(1, len(returns) // 20)
        smooth = np.convolve(returns, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1 :], smooth, label=f"episodic (mean of {window})")
    if len(eval_steps):
        _, std = series(records, "eval_return_std")
        ax.errorbar(
            eval_steps,
            eval_returns,
            yerr=std if len(std) == len(eval_steps) else None,
            fmt="o-",
            capsize=3,
            label="eval return (greedy)",
        )
    ax.set(xlabel="env steps", ylabel="return", title="Learning curve")
    ax.legend()
    return _save(fig, path)


def loss_and_q(records: Records, path: str | Path) -> Path | None:
    """TD loss (log scale) and mean Q of the taken actions."""
    steps, loss = series(records, "loss")
    if not len(steps):
        return None
    q_steps, q_mean = series(records, "q_mean")
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    top.plot(steps, loss)
    top.set(ylabel="TD loss", yscale="log", title="TD loss and mean Q")
    bottom.plot(q_steps, q_mean, color="tab:orange")
    bottom.set(xlabel="env steps", ylabel="mean Q")
    return _save(fig, path)


#: How the trajectory plot marks the live-control commands (``dqnmap_auto.control``) applied to a value.
CONTROL_STYLE = {"set": ("tab:red", "v"), "freeze": ("tab:blue", "s"), "unfreeze": ("tab:green", "o")}


def hyperparameter_trajectories(
    records: Records, path: str | Path, *, bounds: Mapping[str, tuple[float, float]] | None = None
) -> Path | None:
    """Each ``hp/<name>`` over time, with its bounds when it self-tunes, and a marker at every live-control change
    (set, freeze, unfreeze; a ``stop`` as a vertical line on every panel). Epsilon gets a panel when a command
    touched it."""
    controls = [r for r in records if "control/status" in r and r["control/status"] == "applied"]
    names = sorted({k[3:] for r in records for k in r if k.startswith("hp/")})
    if any("control/epsilon" in r for r in controls):
        names.append("epsilon")
    if not names:
        return None
    fig, axes = plt.subplots(len(names), 1, figsize=(7, 1.8 * len(names) + 0.6), sharex=True, squeeze=False)
    for ax, name in zip(axes[:, 0], names, strict=True):
        steps, values = series(records, name if name == "epsilon" else f"hp/{name}")
        ax.plot(steps, values)
        if bounds and name in bounds:
            for bound in bounds[name]:
                ax.axhline(bound, color="grey", ls="--", lw=0.8)
        if name in ("lr", "huber_delta") and len(values) and values.min() > 0:
            ax.set_yscale("log")
        ax.set_ylabel(name)
        _mark_control(ax, name, controls)
    title = "Hyperparameter trajectories (dashed: bounds" + ("; markers: live control)" if controls else ")")
    axes[0, 0].set_title(title)
    axes[-1, 0].set_xlabel("env steps")
    marks: dict[str, Any] = {}  # one legend entry per kind of command, whichever panel drew it
    for ax in axes[:, 0]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            marks.setdefault(label, handle)
    if marks:
        axes[0, 0].legend(list(marks.values()), list(marks), fontsize="small", loc="best")
    return _save(fig, path)


def _mark_control(ax: plt.Axes, name: str, controls: Sequence[Mapping[str, float | str]]) -> None:
    """A dotted line and a marker at the new value for each command that changed ``name``; stops on all panels."""
    labelled: set[str] = set()
    for record in controls:
        verb = str(record["control/command"]).split()[0]
        step = float(record["step"])
        if verb == "stop":
            ax.axvline(step, color="black", ls="-.", lw=1, label=None if "stop" in labelled else "stop")
            labelled.add("stop")
            continue
        if f"control/{name}" not in record or verb not in CONTROL_STYLE:
            continue
        color, marker = CONTROL_STYLE[verb]
        ax.axvline(step, color=color, ls=":", lw=1)
        label = None if verb in labelled else verb
        ax.plot([step], [float(record[f"control/{name}"])], marker=marker, color=color, ls="none", label=label)
        labelled.add(verb)


def hypergradient_heatmap(records: Records, path: str | Path) -> Path | None:
    """Each tuned hyperparameter's hypergradient, normalised per row to [-1, 1]: which knob is pushed when.

    Colour is -dJ/dz (the direction the meta-optimizer moves z): red raises the value, blue lowers it.
    """
    names = sorted({k[len("hypergrad/") :] for r in records for k in r if k.startswith("hypergrad/")})
    if not names:
        return None
    steps, _ = series(records, f"hypergrad/{names[0]}")
    matrix = np.stack([-series(records, f"hypergrad/{n}")[1] for n in names])
    scale = np.abs(matrix).max(axis=1, keepdims=True)
    matrix = matrix / np.where(scale > 0, scale, 1.0)
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(names) + 1.5))
    extent = (steps[0], steps[-1], len(names) - 0.5, -0.5) if len(steps) > 1 else None
    image = ax.imshow(matrix, aspect="auto", cmap="coolwarm", vmin=-1, vmax=1, extent=extent, interpolation="nearest")
    ax.set_yticks(range(len(names)), names)
    ax.set(xlabel="env steps", title="Normalised hypergradient (-dJ/dz): red raises, blue lowers")
    fig.colorbar(image, ax=ax)
    return _save(fig, path)


def return_distribution(records: Records, path: str | Path) -> Path | None:
    """ECDF of training episode returns, first third of the run against the last third."""
    steps, returns = series(records, "episodic_return")
    if len(returns) < 2:
        return None
    third = steps.max() / 3
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, mask in (("early (first third)", steps <= third), ("late (last third)", steps > 2 * third)):
        values = np.sort(returns[mask])
        if len(values):
            ax.step(values, np.arange(1, len(values) + 1) / len(values), where="post", label=label)
    ax.set(xlabel="episode return", ylabel="fraction of episodes <= x", title="Return distribution (ECDF)")
    ax.legend()
    return _save(fig, path)


def policy_convergence(records: Records, path: str | Path) -> Path | None:
    """Fraction of greedy actions on a fixed probe set of states that changed since the previous evaluation."""
    steps, change = series(records, "policy_change")
    if not len(steps):
        return None
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(steps, change, "o-")
    ax.set(xlabel="env steps", ylabel="fraction changed", ylim=(0, 1.05), title="Policy convergence on probe states")
    return _save(fig, path)


RUN_PLOTS = {
    "learning_curve.png": learning_curve,
    "loss_q.png": loss_and_q,
    "hyperparameters.png": hyperparameter_trajectories,
    "hypergradients.png": hypergradient_heatmap,
    "return_distribution.png": return_distribution,
    "policy_convergence.png": policy_convergence,
}


def run_plots(
    records: Records, directory: str | Path, *, bounds: Mapping[str, tuple[float, float]] | None = None
) -> list[Path]:
    """Every run plot that the records support, written into ``directory``."""
    written = []
    for name, plot in RUN_PLOTS.items():
        kwargs = {"bounds": bounds} if plot is hyperparameter_trajectories else {}
        out = plot(records, Path(directory) / name, **kwargs)
        if out is not None:
            written.append(out)
    return written


def study_plots(study: object, directory: str | Path) -> list[Path]:
    """Optuna's own study plots (matplotlib backend); each is skipped when the study cannot support it yet."""
    from optuna.visualization import matplotlib as ovm

    functions = {
        "optimization_history.png": ovm.plot_optimization_history,
        "param_importances.png": ovm.plot_param_importances,
        "parallel_coordinate.png": ovm.plot_parallel_coordinate,
        "intermediate_values.png": ovm.plot_intermediate_values,
    }
    written = []
    quiet = logging.getLogger("optuna.visualization")  # "no complete trials" and the like: the plot shows it
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        for name, function in functions.items():
            path = _study_plot(function, study, Path(directory) / name)
            if path is not None:
                written.append(path)
    finally:
        quiet.setLevel(level)
    return written


def _study_plot(function: object, study: object, path: Path) -> Path | None:
    import warnings

    import optuna

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.simplefilter("ignore", UserWarning)  # "too few trials" notes on small studies
            axes = function(study)  # type: ignore[operator]
    except (ValueError, RuntimeError, ZeroDivisionError):  # e.g. importances need >= 2 finished trials
        return None
    figure = axes.figure if hasattr(axes, "figure") else np.ravel(axes)[0].figure
    return _save(figure, path)

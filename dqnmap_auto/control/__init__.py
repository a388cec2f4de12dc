"""Live control: steer a running trial or run (set a value, freeze or unfreeze one, stop) with an audit trail.

Commands come in from a trial's Optuna user attributes (the CLI, or optuna-dashboard's form) or from a run
directory's control file, and reach the Trainer at a training-phase boundary through a callback; the Trainer knows
nothing of Optuna. A command is applied through narrow methods (the tuner's ``set_value``/``hold``/``release``, the
Trainer's ``exploration`` and ``request_stop``) and acknowledged as an ordinary record.

Example (in-process, see the quick-start notebook)::

    from dqnmap_auto.control import Controller, MemoryChannel

    channel = MemoryChannel()
    trainer = Trainer(config, [collector, Controller(channel).callback()])
    trainer.start(); trainer.train_until(2000)
    channel.send("set lr=3e-4"); channel.send("freeze gamma")
    trainer.train_until(4000); result = trainer.finish()
"""

from __future__ import annotations

from dqnmap_auto.control.callback import POLL_INTERVAL, ControlCallback, Controller
from dqnmap_auto.control.channels import MemoryChannel, RunDirChannel, TrialChannel
from dqnmap_auto.control.commands import NAMES, VERBS, Command, CommandError, build, parse
from dqnmap_auto.control.rules import APPLIED, REJECTED, Outcome

__all__ = [
    "APPLIED",
    "NAMES",
    "POLL_INTERVAL",
    "REJECTED",
    "VERBS",
    "Command",
    "CommandError",
    "ControlCallback",
    "Controller",
    "MemoryChannel",
    "Outcome",
    "RunDirChannel",
    "TrialChannel",
    "build",
    "parse",
]

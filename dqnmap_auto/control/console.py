"""The parameter console in optuna-dashboard: a user-attribute form on every running trial.

What optuna-dashboard 0.21 offers (read in its source, ``_form_widget.py``, ``_app.py`` and the bundled UI):

- ``register_user_attr_form_widgets(study, widgets)`` stores the form in a study system attribute; the widgets are
  ``ChoiceWidget`` (radio buttons, float values), ``SliderWidget`` (a float between min and max) and
  ``TextInputWidget`` (a string; ``optional`` allows an empty one). ``ObjectiveUserAttrRef`` is for objective
  forms only.
- The trial page shows the form, editable, on a **Running** trial (once per page load: after a submission it turns
  read-only until the page is reloaded), read-only on a Complete one, and not at all on Pruned, Failed or Waiting
  ones.
- Submitting sends *every* widget's value to ``POST /api/trials/<id>/user-attrs``, which calls
  ``storage.set_trial_user_attr`` once per widget: a slider always submits a value (its minimum by default) and a
  choice its first value, and the writes are not atomic.

Hence one free-text widget: a single attribute written in one call holds the whole command, in the same vocabulary
as the CLI, and an untouched form sends nothing by accident. The trainer reads it back from the storage (inside the
objective ``trial.user_attrs`` is a snapshot), see :mod:`.channels`.
"""

from __future__ import annotations

import optuna

from dqnmap_auto.control.channels import CONSOLE_ATTR

DESCRIPTION = (
    "steer this running trial: set lr=3e-4 gamma=0.995 | freeze lr | unfreeze lr | stop "
    "(names: lr, gamma, huber_delta, tau, epsilon). The result appears in the trial's note."
)


def register_console(study: optuna.Study) -> None:
    """Show the console on the study's running trials (idempotent: `study run` calls it every time)."""
    from optuna_dashboard import TextInputWidget, register_user_attr_form_widgets  # (imports scikit-learn: seconds)

    register_user_attr_form_widgets(
        study, [TextInputWidget(description=DESCRIPTION, user_attr_key=CONSOLE_ATTR, optional=False)]
    )

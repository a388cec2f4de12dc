"""``python -m dqnmap_auto.cli``: the same as the ``dqnmap-auto`` script."""

from dqnmap_auto.cli import main

main()

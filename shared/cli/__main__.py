"""``python -m shared.cli``: the ``pilot`` command without the console script."""

from shared.cli import main

main()

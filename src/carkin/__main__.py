"""``python -m carkin`` is the ``carkin`` command."""

from carkin.cli import main

main()

"""``python -m qsplit`` runs the command line."""

from qsplit.cli import main

main()

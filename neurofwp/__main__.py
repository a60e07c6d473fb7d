"""``python -m neurofwp`` runs the command line."""

from neurofwp.cli import main

main()

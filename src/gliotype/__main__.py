"""``python -m gliotype`` runs the console script."""

from gliotype.cli import app

app(prog_name="gliotype")

"""`python -m pipes` runs the pipes command."""

from pipes.cli import main

main()

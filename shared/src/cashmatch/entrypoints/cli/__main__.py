"""`python -m cashmatch.entrypoints.cli` runs the cashmatch CLI."""

from cashmatch.entrypoints.cli.main import main

main()

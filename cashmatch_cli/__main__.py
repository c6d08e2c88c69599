"""`python -m cashmatch_cli` runs the cashmatch CLI."""

from cashmatch_cli.main import main

main()

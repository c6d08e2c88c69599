"""`python -m cli` runs the cashmatch CLI."""

from cli.main import main

main()

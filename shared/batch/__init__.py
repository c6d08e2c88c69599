"""Batch matching of a whole month with a registered model (the `cashmatch match` command)."""

"""The checks behind infra/check_infra.py, one module per kind of file."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

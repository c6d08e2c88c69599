"""Finance-system simulator: synthetic invoices, bank transfers and human matches.

`generate()` builds the three contract tables (plus per-transfer truth labels) in memory;
`write_warehouse()` writes them as a DuckDB file the `local` stack reads as its warehouse.
"""

from shared.synth.generator import (
    PATTERNS,
    PROFILES,
    SynthConfig,
    SyntheticData,
    generate,
    pattern_rates,
)
from shared.synth.warehouse_file import write_warehouse

__all__ = [
    "PATTERNS",
    "PROFILES",
    "SynthConfig",
    "SyntheticData",
    "generate",
    "pattern_rates",
    "write_warehouse",
]

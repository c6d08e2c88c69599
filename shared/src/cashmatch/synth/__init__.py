"""Finance-system simulator: synthetic invoices, bank transfers and human matches.

`generate()` builds the three contract tables (plus per-transfer truth labels) in memory;
`write_warehouse()` writes them as a DuckDB file the `local` stack reads as its warehouse.
"""

from cashmatch.synth.config import SynthConfig
from cashmatch.synth.frames import SyntheticData
from cashmatch.synth.generator import generate, pattern_rates
from cashmatch.synth.patterns import PATTERNS
from cashmatch.synth.profiles import PROFILES
from cashmatch.synth.warehouse_file import write_warehouse

__all__ = [
    "PATTERNS",
    "PROFILES",
    "SynthConfig",
    "SyntheticData",
    "generate",
    "pattern_rates",
    "write_warehouse",
]

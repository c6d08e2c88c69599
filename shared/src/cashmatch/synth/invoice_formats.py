"""Invoice number formats: our own series (receivables) and the ones suppliers print
(payables).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Format:
    template: str  # fields: Y (year), y (2-digit year), M (month), S (sequence), P (prefix)
    period: str  # "month" | "year": when the counter restarts
    width: int  # zero padding of the sequence number (0: none)


# Our own series (receivables): which one depends on the customer's segment.
OUR_SERIES = {
    "FV": Format("FV/{Y}/{M:02d}/{S}", "month", 4),
    "S": Format("{S}/{M:02d}/{Y}", "month", 4),
    "INV": Format("INV-{Y}-{S}", "year", 5),
    "FVE": Format("FVE/{S}/{Y}", "year", 3),
    "FA": Format("FA/{S}/{M:02d}/{y:02d}", "month", 5),
    "KOR": Format("KOR/{Y}/{M:02d}/{S}", "month", 4),
    "KORE": Format("KORE/{S}/{Y}", "year", 3),
}
SUPPLIER_FORMATS = (
    Format("FV/{Y}/{M:02d}/{S}", "month", 4),
    Format("FV {S}/{M:02d}/{Y}", "month", 0),
    Format("{S}/{M:02d}/{Y}", "month", 0),
    Format("F/{S}/{y:02d}", "year", 5),
    Format("FS-{S}/{Y}", "year", 4),
    Format("{Y}/{S}", "year", 6),
    Format("INV-{Y}-{S}", "year", 5),
    Format("RE-{Y}{S}", "year", 5),
    Format("{P}{y:02d}{M:02d}{S}", "month", 4),
    Format("FA {S}/{Y}/{P}", "year", 0),
    Format("{P}/{S}/{Y}", "year", 0),
)
SUPPLIER_CREDIT_FORMATS = (
    Format("KOR/{S}/{Y}", "year", 0),
    Format("FK {S}/{Y}", "year", 0),
    Format("KFV/{Y}/{S}", "year", 4),
    Format("CN-{Y}-{S}", "year", 4),
)

"""cashmatch: keeps a bank-transfer-to-invoice matching model fresh (docs/DESIGN.md)."""

"""The domain: plain values and rules, no I/O (contract, events, matching, evaluation)."""

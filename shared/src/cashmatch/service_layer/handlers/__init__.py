"""One handler per service, each a function of (event, ports)."""

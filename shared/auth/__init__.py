"""Authentication at the service edges."""

"""Test doubles: in-process emulators and fakes for the gcp stack's services."""

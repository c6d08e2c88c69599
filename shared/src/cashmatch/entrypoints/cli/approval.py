"""`cashmatch approve` / `cashmatch reject`: the person in the loop, when approval is required.
The decision itself is `service_layer.operations.decide`, which the console calls too."""

from __future__ import annotations

import getpass

from cashmatch.domain.model_records import Approval
from cashmatch.service_layer import operations
from cashmatch.service_layer.context import Ports


def who() -> str:
    """The person at this command line, as the registry and the audit log record them."""
    return f"cli:{getpass.getuser()}"


def decide(
    ports: Ports, version: str, *, approved: bool, reason: str
) -> tuple[Approval, str | None]:
    """Record the decision as the command line's user (see operations.decide)."""
    return operations.decide(ports, version, approved=approved, reason=reason, by=who())

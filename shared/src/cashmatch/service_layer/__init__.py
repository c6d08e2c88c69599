"""The service layer: what the services do over the ports."""

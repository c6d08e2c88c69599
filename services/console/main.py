"""Cloud Run entry point of the console: `app`, served by uvicorn on $PORT.

On Cloud Run it runs with CASHMATCH_CONSOLE_AUTH=iap (Terraform sets it): Identity-Aware Proxy
signs people in and is the only principal that may invoke the service, so the proxy's user
header names who acts. It binds all interfaces there (CASHMATCH_CONSOLE_ALLOW_REMOTE=true, also
from Terraform); without that setting it refuses to bind anything but loopback.
"""

from __future__ import annotations

import os

from cashmatch.entrypoints.console.access import check_bind
from cashmatch.entrypoints.console.server import build_app
from cashmatch.settings import load_settings

settings = load_settings()
app = build_app(settings)


def main() -> None:
    """Serve `app` where Cloud Run says ($PORT), on the configured host."""
    import uvicorn

    host = settings.console_host if not settings.console_allow_remote else "0.0.0.0"  # noqa: S104 # nosec B104 # Cloud Run routes to the container's port
    check_bind(host, allow_remote=settings.console_allow_remote)
    port = int(os.environ.get("PORT", settings.console_port))
    uvicorn.run(app, host=host, port=port, log_level="info", server_header=False)


if __name__ == "__main__":
    main()

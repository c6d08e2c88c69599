"""Who may change state through the console, and the checks every POST passes.

Locally (`console_auth=token`) the console binds loopback only and a state change needs the
workspace's token: made on the first `cashmatch ui`, kept in `<workspace>/console/token` with mode
0600, and handed over once in the URL it prints (`/?token=...`), which swaps it for a cookie. On
Cloud Run (`console_auth=iap`) Identity-Aware Proxy signs the person in and passes their address
in `X-Goog-Authenticated-User-Email`; only the proxy may invoke the service (Terraform), so the
header can be trusted there and nowhere else.

Every POST also carries a CSRF token: an HMAC of the browser's session cookie under a key only
the server has, written into each form. A page of another site can make the browser send the
cookies but can neither read nor compute the form field.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import ipaddress
import os
import secrets
from pathlib import Path

from cashmatch.settings import Settings, SettingsError

TOKEN_COOKIE = "cashmatch_console_token"  # noqa: S105 # nosec B105 # a cookie name
SESSION_COOKIE = "cashmatch_console_session"
IAP_USER_HEADER = "x-goog-authenticated-user-email"


def token_path(workspace: Path) -> Path:
    """Where a workspace keeps its console token."""
    return workspace.expanduser().resolve() / "console" / "token"


def workspace_token(workspace: Path) -> str:
    """The workspace's console token, made (mode 0600, its folder 0700) on first use."""
    path = token_path(workspace)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    try:
        # O_EXCL: two consoles starting at once agree on the first one's token
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        path.chmod(0o600)
        token = path.read_text().strip()
        if len(token) >= 32:
            return token
        path.unlink()  # empty or cut short (a crash while writing): make a new one
        return workspace_token(workspace)
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    return token


def check_bind(host: str, *, allow_remote: bool) -> None:
    """Refuse any address but loopback unless told otherwise (SettingsError naming it)."""
    if allow_remote:
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise SettingsError(
            f"the console binds loopback only (127.0.0.1, ::1), not {host!r}: anyone who can "
            "reach it could read the registry; CASHMATCH_CONSOLE_ALLOW_REMOTE=true (or "
            "--allow-remote) says you mean it"
        )


class Access:
    """The console's access policy for one process."""

    def __init__(self, settings: Settings, *, token: str | None = None) -> None:
        self.mode = settings.console_auth
        if self.mode == "token":
            self.token = token if token is not None else workspace_token(settings.workspace)
            key = self.token
        else:
            self.token = ""  # nosec B105 # behind IAP there is no workspace token
            key = settings.console_csrf_key or secrets.token_urlsafe(32)
        self._key = hashlib.sha256(b"cashmatch-console-csrf:" + key.encode()).digest()

    def token_ok(self, given: str | None) -> bool:
        """The workspace token, compared in constant time."""
        return (
            self.mode == "token"
            and given is not None
            and hmac.compare_digest(given.encode(), self.token.encode())
        )

    def who(self, cookies: dict[str, str], headers: dict[str, str]) -> str | None:
        """The person who may act, as the registry and the audit log record them; None when the
        request may only read."""
        if self.mode == "iap":
            user = headers.get(IAP_USER_HEADER, "")
            user = user.removeprefix("accounts.google.com:")
            return f"console:{user}" if user else None
        if self.token_ok(cookies.get(TOKEN_COOKIE)):
            return f"console:{getpass.getuser()}"
        return None

    def csrf_for(self, session: str) -> str:
        """The CSRF token of a browser session, written into every form it is shown."""
        return hmac.new(self._key, session.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session: str | None, given: str | None) -> bool:
        """The form's CSRF token belongs to this browser's session."""
        if not session or not given:
            return False
        return hmac.compare_digest(self.csrf_for(session), given)

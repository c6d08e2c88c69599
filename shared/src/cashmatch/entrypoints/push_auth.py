"""Verify the OIDC token Pub/Sub attaches to a push delivery (Authorization: Bearer ...).

A push subscription with an OIDC service account signs each request with a Google ID token.
Cloud Run checks it when the service requires authentication; this check is the same one made
in the service itself, so a service deployed with unauthenticated access still refuses anything
that does not come from the expected subscription's service account.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"


class PushUnauthorized(Exception):
    """No usable token (HTTP 401)."""


class PushForbidden(Exception):
    """A valid token for the wrong audience, issuer or caller (HTTP 403)."""


@dataclass(frozen=True)
class PushAuth:
    """What a push token must say: audience, issuer, and (optionally) who signed the push."""

    audience: str
    service_account: str | None = None
    issuers: tuple[str, ...] = GOOGLE_ISSUERS
    certs_url: str = GOOGLE_CERTS_URL


def _bearer(headers: Mapping[str, str]) -> str:
    value = headers.get("Authorization") or headers.get("authorization") or ""
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise PushUnauthorized("missing bearer token")
    return token.strip()


def verify_push(headers: Mapping[str, str], auth: PushAuth) -> Mapping[str, Any]:
    """The token's claims when it is signed by Google for `auth.audience`; else raise."""
    import google.auth.transport.requests
    from google.oauth2 import id_token

    token = _bearer(headers)
    try:
        claims = id_token.verify_token(
            token,
            google.auth.transport.requests.Request(),
            audience=None,  # checked below, so a wrong audience is a 403, not a 401
            certs_url=auth.certs_url,
        )
    except ValueError as exc:  # bad signature, expired, malformed
        raise PushUnauthorized(f"invalid token: {exc}") from None
    if claims.get("aud") != auth.audience:
        raise PushForbidden(f"token audience {claims.get('aud')!r} is not {auth.audience!r}")
    if claims.get("iss") not in auth.issuers:
        raise PushForbidden(f"token issuer {claims.get('iss')!r} is not Google")
    if auth.service_account and (
        claims.get("email") != auth.service_account or not claims.get("email_verified")
    ):
        raise PushForbidden(f"push signed by {claims.get('email')!r}, not the expected account")
    return claims

"""Push endpoints with CASHMATCH_PUSH_AUDIENCE set: only a Google-signed token for the right
audience and account gets through. Google's key endpoint is stood in for by a local server that
serves our own test key's certificate, so the real verification code runs offline."""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import json
import threading
import time
from pathlib import Path

import pytest
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from functions_framework import create_app
from google.auth import crypt, jwt

from cashmatch.domain.events import MonthClosed, make_event
from cashmatch.entrypoints import cloud_event as entrypoint

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
AUDIENCE = "https://collector-abc.a.run.app"
ACCOUNT = "push@project.iam.gserviceaccount.com"


@pytest.fixture(scope="module")
def signing_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-google")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    pem_cert = cert.public_bytes(serialization.Encoding.PEM).decode()
    return crypt.RSASigner.from_string(pem_key, key_id="k1"), pem_cert


@pytest.fixture(scope="module")
def certs_url(signing_key):
    body = json.dumps({"k1": signing_key[1]}).encode()

    class Certs(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Certs)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/certs"
    server.shutdown()
    server.server_close()


def token(signer, **claims) -> str:
    now = int(time.time())
    payload = {
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "email": ACCOUNT,
        "email_verified": True,
        "iat": now,
        "exp": now + 600,
        "sub": "1",
    }
    payload.update(claims)
    return jwt.encode(signer, payload).decode()


@pytest.fixture
def client(make_ports, small_warehouse, certs_url):
    ports = make_ports(
        warehouse=str(small_warehouse),
        push_audience=AUDIENCE,
        push_service_account=ACCOUNT,
        push_certs_url=certs_url,
    )
    entrypoint.reset_ports(ports)
    app = create_app(target="handle", source=str(ROOT / "services" / "collector" / "main.py"))
    yield app.test_client(), ports
    entrypoint.reset_ports(None)


def push(client, authorization: str | None):
    event = make_event(MonthClosed(month="2025-03"), source="/t")
    cloud_event = CloudEvent(
        {"type": "google.cloud.pubsub.topic.v1.messagePublished", "source": "//pubsub"},
        {"message": {"data": base64.b64encode(event.to_bytes()).decode(), "messageId": "1"}},
    )
    headers, body = to_binary(cloud_event)
    if authorization is not None:
        headers["Authorization"] = authorization
    return client.post("/", headers=headers, data=body)


def test_a_google_signed_token_for_this_service_gets_through(client, signing_key):
    http_client, ports = client
    response = push(http_client, f"Bearer {token(signing_key[0])}")
    assert response.status_code == 200
    assert ports.bus.log(topic="dataset.ready")


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        ("Basic abc", 401),
        ("Bearer not.a.jwt", 401),
    ],
)
def test_missing_or_broken_tokens_are_401(client, authorization, status):
    http_client, ports = client
    assert push(http_client, authorization).status_code == status
    assert not ports.bus.log(topic="dataset.ready")


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "https://someone-else.a.run.app"},
        {"iss": "https://evil.example"},
        {"email": "intruder@project.iam.gserviceaccount.com"},
        {"email_verified": False},
    ],
)
def test_tokens_for_someone_else_are_403(client, signing_key, claims):
    http_client, ports = client
    response = push(http_client, f"Bearer {token(signing_key[0], **claims)}")
    assert response.status_code == 403
    assert not ports.bus.log(topic="dataset.ready")


def test_an_expired_or_foreign_signed_token_is_401(client, signing_key):
    http_client, _ = client
    expired = token(signing_key[0], iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)
    assert push(http_client, f"Bearer {expired}").status_code == 401
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    forged = token(crypt.RSASigner.from_string(other.decode(), key_id="k1"))
    assert push(http_client, f"Bearer {forged}").status_code == 401

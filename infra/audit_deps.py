"""`make audit`: known vulnerabilities in the installed dependencies (pip-audit), or a loud skip.

Run: .venv/bin/python infra/audit_deps.py [--require]

pip-audit asks OSV (api.osv.dev) or PyPI's JSON API (pypi.org/pypi/<name>/<version>/json)
about every installed distribution. Behind an index that serves neither, pip-audit does not
fail: it marks each package "not found" and exits 0, which would read as a clean audit. So
each service is first asked about a release known to be vulnerable (jinja2 2.4.1); the audit
runs against the first that answers with vulnerability data, and otherwise this prints
"audit skipped: <what was measured>" and exits 0 (2 with --require or AUDIT_REQUIRED=1,
for a CI that has the network and must not skip).
"""

from __future__ import annotations

import json
import os
import subprocess  # nosec B404 # runs pip-audit from this venv, fixed argv
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

PROBE_NAME, PROBE_VERSION = "jinja2", "2.4.1"  # has several published advisories
OSV_URL = "https://api.osv.dev/v1/query"
PYPI_URL = f"https://pypi.org/pypi/{PROBE_NAME}/{PROBE_VERSION}/json"
TIMEOUT_S = 15.0
SKIPPED = 2


def _fetch(request: urllib.request.Request) -> tuple[int, bytes]:
    # Constant https URLs above, never user input.
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310 # nosec B310
        return response.status, response.read()


def probe_osv() -> str | None:
    """None if OSV answers with the probe's advisories, else what was seen."""
    body = json.dumps(
        {"package": {"name": PROBE_NAME, "ecosystem": "PyPI"}, "version": PROBE_VERSION}
    ).encode()
    request = urllib.request.Request(
        OSV_URL, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    return _judge(OSV_URL, request, "vulns")


def probe_pypi() -> str | None:
    """None if PyPI's per-release JSON lists the probe's advisories, else what was seen."""
    return _judge(PYPI_URL, urllib.request.Request(PYPI_URL), "vulnerabilities")


def _judge(url: str, request: urllib.request.Request, key: str) -> str | None:
    try:
        status, body = _fetch(request)
    except urllib.error.HTTPError as exc:
        return f"{url} answered HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"{url} unreachable ({reason})"
    try:
        found = json.loads(body).get(key) or []
    except (ValueError, AttributeError):
        return f"{url} answered HTTP {status} but not JSON"
    if not found:
        return (
            f"{url} answered HTTP {status} without advisories for "
            f"{PROBE_NAME} {PROBE_VERSION}, which has several: no vulnerability data there"
        )
    return None


def run_pip_audit(service: str) -> int:
    """Audit this environment with pip-audit against `service`; 0 clean, 1 vulnerable."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "audit.json"
        argv = [
            sys.executable,
            "-m",
            "pip_audit",
            "--vulnerability-service",
            service,
            "--skip-editable",  # cashmatch itself is not on PyPI
            "--progress-spinner",
            "off",
            "--format",
            "json",
            "--output",
            str(report),
        ]
        done = subprocess.run(argv, check=False, capture_output=True, text=True)  # noqa: S603 # nosec B603
        if not report.exists():
            sys.stderr.write(done.stderr[-4000:])
            sys.stdout.write(f"audit failed: pip-audit exited {done.returncode} without a report\n")
            return 1
        data = json.loads(report.read_text())
    deps = data.get("dependencies", [])
    skipped = [d for d in deps if d.get("skip_reason")]
    audited = [d for d in deps if not d.get("skip_reason")]
    vulnerable = [d for d in audited if d.get("vulns")]
    for dep in skipped:
        sys.stdout.write(
            f"not audited: {dep['name']} {dep.get('version', '')}: {dep['skip_reason']}\n"
        )
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixed = ", ".join(vuln.get("fix_versions") or []) or "no fixed release"
            sys.stdout.write(
                f"VULNERABLE {dep['name']} {dep['version']}: {vuln['id']} (fixed in {fixed})\n"
            )
    if not audited:
        sys.stdout.write(f"audit skipped: {service} answered the probe but audited no package\n")
        return SKIPPED
    sys.stdout.write(
        f"audit ({service}): {len(audited)} packages audited, {len(vulnerable)} vulnerable, "
        f"{len(skipped)} not audited\n"
    )
    return 1 if vulnerable else 0


def main(argv: list[str]) -> int:
    require = "--require" in argv or os.environ.get("AUDIT_REQUIRED") == "1"
    probes: list[tuple[str, Callable[[], str | None]]] = [("osv", probe_osv), ("pypi", probe_pypi)]
    reasons = []
    for service, probe in probes:
        reason = probe()
        if reason is None:
            status = run_pip_audit(service)
            if status != SKIPPED:
                return status
            reasons.append(f"{service}: answered the probe but audited nothing")
            continue
        reasons.append(reason)
    sys.stdout.write(
        "audit skipped: no vulnerability service reachable from here: " + "; ".join(reasons) + "\n"
    )
    return SKIPPED if require else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

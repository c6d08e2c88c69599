"""The console's pages and buttons: a FastAPI app over the same ports and service functions as
the CLI (`service_layer.overview` to read, `service_layer.operations` to act).

Pages are rendered on the server (Jinja2 templates beside this module, the reporting package's
inline SVG charts); there is no JavaScript, and the Content-Security-Policy forbids any, so a
report read from the blob store cannot run a script either. Each button leads to a confirmation
page whose form POSTs the action with its CSRF token; the POST answers 403 and changes nothing
without the right to act (access.py) or with a missing or forged CSRF token.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from cashmatch.domain.subscriptions import SUBSCRIPTIONS
from cashmatch.entrypoints.console.access import (
    SESSION_COOKIE,
    TOKEN_COOKIE,
    Access,
)
from cashmatch.service_layer import operations, overview
from cashmatch.service_layer.context import Ports
from cashmatch.service_layer.reporting.evaluation import curves_chart, metrics_table
from cashmatch.service_layer.reporting.store import load_curve

log = logging.getLogger(__name__)
TEMPLATES = Path(__file__).resolve().parent / "templates"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
ACTIONS = ("redrive", "republish", "approve", "reject")
_MONTH = re.compile(r"^\d{4}-\d{2}$")
_MAX_FORM_BYTES = 16_384


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["short"] = lambda value: (value or "")[:8]
    env.filters["num"] = _num
    env.filters["pct"] = lambda v: "–" if v is None else f"{100 * float(v):.1f}%"
    return env


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def create_app(
    ports_factory: Callable[[], Ports], access: Access, *, title: str = "cashmatch console"
) -> FastAPI:
    """The console over the ports `ports_factory` builds (once, at the first request)."""
    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None)
    env = _environment()
    lock = threading.Lock()
    built: list[Ports] = []
    app.state.ports = built  # what it opened, for a caller that stops it to close

    def ports() -> Ports:
        with lock:
            if not built:
                built.append(ports_factory())
            return built[0]

    def render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        session = request.cookies.get(SESSION_COOKIE) or secrets.token_urlsafe(24)
        who = access.who(dict(request.cookies), dict(request.headers))
        html = env.get_template(name).render(
            who=who,
            csrf=access.csrf_for(session),
            mode=access.mode,
            path=request.url.path,
            **context,
        )
        response = HTMLResponse(html, status_code=status_code)
        if SESSION_COOKIE not in request.cookies:
            _cookie(response, SESSION_COOKIE, session, request)
        return response

    @app.middleware("http")
    async def _headers(request: Request, call_next: Callable[[Request], Any]) -> Response:
        response: Response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        return JSONResponse({"ok": True})

    @app.get("/", response_class=HTMLResponse)
    def timeline(request: Request, token: str | None = None) -> Response:
        if token is not None:  # the URL `cashmatch ui` printed: swap the token for a cookie
            if not access.token_ok(token):
                return render(request, "error.html", 403, message="wrong console token")
            response = RedirectResponse("/", status_code=303)
            _cookie(response, TOKEN_COOKIE, token, request)
            return response
        return render(request, "timeline.html", t=overview.timeline(ports()))

    @app.get("/models", response_class=HTMLResponse)
    def models(request: Request) -> Response:
        return render(request, "models.html", models=overview.models(ports().registry)[::-1])

    @app.get("/models/{version}", response_class=HTMLResponse)
    def model(request: Request, version: str) -> Response:
        built = ports()
        try:
            detail = overview.version_detail(built, version)
        except KeyError as exc:
            return render(request, "error.html", 404, message=exc.args[0])
        return render(request, "model.html", d=detail, **_charts(built, detail))

    @app.get("/months/{month}", response_class=HTMLResponse)
    def month(request: Request, month: str) -> Response:
        if not _MONTH.match(month):
            return render(request, "error.html", 404, message=f"no month {month!r}")
        try:
            detail = overview.month_detail(ports(), month)
        except KeyError as exc:
            return render(request, "error.html", 404, message=exc.args[0])
        return render(
            request,
            "month.html",
            d=detail,
            drift_report=_ours(detail["drift_report"]),
        )

    @app.get("/events", response_class=HTMLResponse)
    def events(
        request: Request, state: str | None = None, topic: str | None = None, limit: int = 100
    ) -> Response:
        bus = ports().bus
        limit = max(1, min(limit, 1000))
        wide = bool(state)
        shown = [
            overview.delivery(r)
            for r in bus.log(limit=100_000 if wide else limit, topic=topic or None)
            if not state or r.state == state
        ][:limit]
        return render(
            request,
            "events.html",
            events=shown,
            dead=[overview.delivery(r) for r in bus.dead_letters()],
            actions=operations.actions(ports().blobs, limit=30),
            state=state or "",
            topic=topic or "",
        )

    @app.get("/confirm/{action}", response_class=HTMLResponse)
    def confirm(
        request: Request, action: str, target: str = "", subscriber: str | None = None
    ) -> Response:
        if action not in ACTIONS or not target:
            return render(request, "error.html", 404, message=f"no action {action!r}")
        return render(
            request,
            "confirm.html",
            action=action,
            target=target,
            subscriber=subscriber if subscriber in SUBSCRIPTIONS else None,
            what=_what(action, target, subscriber),
        )

    @app.post("/actions/{action}", response_class=HTMLResponse)
    async def act(request: Request, action: str) -> Response:
        body = await request.body()
        if len(body) > _MAX_FORM_BYTES:
            return render(request, "error.html", 413, message="form too large")
        form = {k: v[0] for k, v in parse_qs(body.decode(errors="replace")).items()}
        who = access.who(dict(request.cookies), dict(request.headers))
        if who is None:
            log.warning("console: refused %s without the right to act", action)
            return render(
                request,
                "error.html",
                403,
                message="not allowed: open the console with the URL `cashmatch ui` printed "
                "(it carries the workspace's token)",
            )
        if not access.csrf_ok(request.cookies.get(SESSION_COOKIE), form.get("csrf")):
            log.warning("console: refused %s by %s with a bad CSRF token", action, who)
            return render(
                request, "error.html", 403, message="the form's CSRF token is missing or wrong"
            )
        if action not in ACTIONS:
            return render(request, "error.html", 404, message=f"no action {action!r}")
        return _do(request, action, form, who)

    def _do(request: Request, action: str, form: dict[str, str], who: str) -> Response:
        built = ports()
        target = form.get("target", "").strip()
        reason = form.get("reason", "").strip()
        try:
            if action in ("redrive", "republish"):
                target = operations.full_event_id(built.bus, target)
            if action == "redrive":
                subscriber = form.get("subscriber") or None
                if subscriber is not None and subscriber not in SUBSCRIPTIONS:
                    raise operations.NothingToDo(f"no subscriber {subscriber!r}")
                count = operations.redrive(built, target, subscriber=subscriber, by=who)
                said = f"redriven {count} deliver{'y' if count == 1 else 'ies'} of {target}"
                said += f" to {subscriber}" if subscriber else ""
                back = "/events"
            elif action == "republish":
                topic, new_id = operations.republish(built, target, by=who)
                said = f"republished {target} on {topic}: new id {new_id}"
                back = "/events"
            else:
                approved = action == "approve"
                if not approved and not reason:
                    raise operations.NothingToDo("a rejection needs a reason")
                decision, event_id = operations.decide(
                    built, target, approved=approved, reason=reason or "approved", by=who
                )
                word = "approved" if decision.approved else "rejected"
                if decision.approved != approved:
                    raise operations.NothingToDo(
                        f"{target} was already {word} by {decision.by}; a decision is final"
                    )
                said = f"{target} {word} by {decision.by}: {decision.reason}"
                if event_id:
                    said += f"; its evaluation.passed republished as {event_id}"
                back = f"/models/{target}"
        except (operations.NothingToDo, KeyError) as exc:
            message = exc.args[0] if exc.args else str(exc)
            return render(request, "error.html", 409, message=message)
        log.info("console: %s by %s: %s", action, who, said)
        return render(request, "done.html", message=said, back=back)

    def _what(action: str, target: str, subscriber: str | None) -> str:
        if action == "redrive":
            to = f"to {subscriber}" if subscriber in SUBSCRIPTIONS else "to every dead subscriber"
            return f"Deliver event {target} again {to}."
        if action == "republish":
            return (
                f"Publish a copy of event {target} with a new id: the step it triggers runs again."
            )
        if action == "approve":
            return f"Approve {target} for roll-out: its evaluation.passed is published again."
        return f"Refuse the roll-out of {target}, for good."

    return app


def _charts(ports: Ports, detail: dict[str, Any]) -> dict[str, Any]:
    """The model page's HTML made by the reporting package (its own escaping): the metrics
    beside the champion's and the rules', the curves, and the two stored reports."""
    metrics = detail["metrics_by_role"]
    version = detail["model"]["version"]
    verdict = detail["verdict"] or {}
    champion = verdict.get("champion_version")
    curves = {"candidate": load_curve(ports.blobs, version)}
    if champion:
        curves["champion"] = load_curve(ports.blobs, champion)
    present = {k: v for k, v in curves.items() if v is not None}
    return {
        "metrics_html": _ours(metrics_table(metrics)) if metrics else None,
        "curves_html": _ours(curves_chart(present)) if present else None,
        "evaluation_report": _ours(detail["evaluation_report"]),
        "drift_report": _ours(detail["drift_report"]),
    }


def _ours(html: str | None) -> Markup:
    """HTML the reporting package wrote (service_layer/reporting: every value escaped), shown
    as it is; the page's CSP forbids scripts should a stored report ever carry one."""
    return Markup(html or "")  # noqa: S704 # nosec B704


def _cookie(response: Response, name: str, value: str, request: Request) -> None:
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )

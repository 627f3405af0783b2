"""The dashboard's web application: HTML pages (``views/templates``), the JSON API
(``/api/...``, the same data as JSON) and the dead-letter actions.

Every page is rendered by the server with autoescaped Jinja2 templates; ``static/
dashboard.js`` refreshes the page's ``<main>`` by fetching it again (``?partial=1``) and
swapping the parsed nodes in, so job data never goes through ``innerHTML``. Write actions
need ``allow_actions`` (403 otherwise), a confirmation, and the page's form token (no
cross-site request can post one); the API's need a JSON body.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

import jinja2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from . import api
from .api import Source

logger = logging.getLogger("spinach.dashboard")

#: Seconds between two refreshes of a page: fresher pages, or fewer requests to the broker.
POLL_INTERVAL = 2.0

#: Threads reading the broker for requests: more serve more viewers at once during a slow
#: broker, each holding a connection.
THREADS = 4

_PACKAGE = files(__package__)


@dataclass(frozen=True)
class Options:
    """How the dashboard serves (see ``spinach dashboard --help``)."""

    allow_actions: bool = False
    basic_auth: tuple[str, str] | None = None  #: (user, password)
    namespace: str = ""
    poll_interval: float = POLL_INTERVAL  #: seconds between two refreshes of a page


class BrokerDown(Exception):
    """The broker could not be reached to build a page."""


def create_app(source: Source, options: Options) -> Starlette:
    """The dashboard of ``source`` as an ASGI application."""
    dashboard = _Dashboard(source, options)
    middleware = []
    if options.basic_auth is not None:
        middleware.append(Middleware(_BasicAuth, credentials=options.basic_auth))
    static = StaticFiles(directory=str(_PACKAGE / "static"))
    return Starlette(
        routes=[*dashboard.routes(), Mount("/static", static, name="static")],
        middleware=middleware,
        lifespan=dashboard.lifespan,
        exception_handlers={404: dashboard.not_found, 405: dashboard.not_allowed},
    )


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_PACKAGE / "views" / "templates")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["when"] = _when
    env.filters["seconds"] = _seconds
    return env


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


class _BasicAuth(BaseHTTPMiddleware):
    """401 unless the request carries the configured user and password (constant time)."""

    def __init__(self, app: Any, credentials: tuple[str, str]):
        super().__init__(app)
        self._expected = f"{credentials[0]}:{credentials[1]}".encode()

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if secrets.compare_digest(_credentials(request), self._expected):
            return await call_next(request)
        return Response(
            "Authentication required\n", status_code=401,
            headers={"WWW-Authenticate": 'Basic realm="spinach dashboard", charset="UTF-8"'},
        )  # fmt: skip


def _credentials(request: Request) -> bytes:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return b""
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return b""


Page = Callable[[Request], dict[str, Any] | None]


class _Dashboard:
    """The routes, bound to one source and its options."""

    def __init__(self, source: Source, options: Options):
        self.source = source
        self.options = options
        self.templates = _environment()
        self.token = secrets.token_urlsafe(24)  #: the form token of this process
        self.executor = ThreadPoolExecutor(THREADS, thread_name_prefix="spinach-dashboard")

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        """Its threads end with the server (their broker calls are blocking)."""
        try:
            yield
        finally:
            self.executor.shutdown(wait=True)

    async def in_thread(self, func: Callable[..., Any], *args: Any) -> Any:
        """``func(*args)`` in one of the dashboard's threads (it calls the broker)."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, func, *args)

    def routes(self) -> list[Route]:
        pages: dict[str, tuple[str, Page]] = {
            "/": ("overview.html", lambda r: api.overview(self.source)),
            "/workers": ("workers.html", lambda r: api.workers(self.source)),
            "/queues": ("queues.html", lambda r: api.queues(self.source)),
            "/queues/{name:path}": ("queue.html", self._queue),
            "/scheduled": ("scheduled.html", lambda r: api.scheduled(self.source, _page(r))),
            "/periodic": ("periodic.html", lambda r: api.periodic(self.source)),
            "/dead-letters": ("dead_letters.html", lambda r: api.dead_letters(self.source)),
            "/history": ("history.html", lambda r: api.history(self.source, _page(r))),
            "/search": ("search.html", self._search),
            "/jobs/{job_id}": ("job.html", lambda r: api.job(self.source, r.path_params["job_id"])),
        }
        routes = []
        for path, (template, page) in pages.items():
            routes.append(Route(path, self._html(template, page)))
            routes.append(Route("/api" + (path if path != "/" else "/overview"), self._json(page)))
        for action in ("retry", "purge"):
            routes.append(
                Route(f"/dead-letters/{action}", self._form_action(action), methods=["POST"])
            )
            routes.append(
                Route(f"/api/dead-letters/{action}", self._api_action(action), methods=["POST"])
            )
        return routes

    # -- pages ---------------------------------------------------------------------------

    def _queue(self, request: Request) -> dict[str, Any] | None:
        return api.queue(self.source, request.path_params["name"], _page(request))

    def _search(self, request: Request) -> dict[str, Any] | None:
        job_id = request.query_params.get("id", "").strip()
        task = request.query_params.get("task", "").strip()
        state = request.query_params.get("state", "").strip()
        if state and state not in api.STATES:
            state = ""
        if job_id:  # the page redirects to the job's; the API answers with it
            found = api.job(self.source, job_id)
            data: dict[str, Any] = {"items": [found] if found else []}
        elif task or state:
            data = api.search(self.source, task, state)
        else:
            data = {"items": None}
        return data | {"id": job_id, "task": task, "state": state, "states": api.STATES}

    def _load(self, page: Page, request: Request) -> dict[str, Any] | None:
        unreachable = (*getattr(self.source.broker, "connection_errors", ()), OSError)
        try:
            return page(request)
        except unreachable as exc:
            logger.warning("Cannot read the broker at %s: %s", self.source.address, exc)
            raise BrokerDown(f"cannot reach the broker at {self.source.address}: "
                             f"{type(exc).__name__}") from exc  # fmt: skip

    def _html(self, template: str, page: Page) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await self.in_thread(render_page, request)

        def render_page(request: Request) -> Response:
            if request.url.path == "/search" and request.query_params.get("id", "").strip():
                job_id = quote(request.query_params["id"].strip(), safe="")
                return RedirectResponse(f"/jobs/{job_id}", 303)
            try:
                data = self._load(page, request)
            except BrokerDown as exc:
                return self.render(request, "outage.html", {"error": str(exc)}, 503)
            if data is None:
                return self.not_found_page(request)
            return self.render(request, template, {"data": data})

        return endpoint

    def _json(self, page: Page) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await self.in_thread(json_page, request)

        def json_page(request: Request) -> Response:
            try:
                data = self._load(page, request)
            except BrokerDown as exc:
                return JSONResponse({"error": str(exc)}, 503)
            if data is None:
                return JSONResponse({"error": "not found"}, 404)
            return JSONResponse(data)

        return endpoint

    def render(
        self, request: Request, template: str, context: dict[str, Any], status: int = 200
    ) -> Response:
        """``template`` with the layout's context; its ``<main>`` alone with ``partial``."""
        context = context | {
            "path": request.url.path, "namespace": self.options.namespace,
            "address": self.source.address, "allow_actions": self.options.allow_actions,
            "token": self.token, "poll_interval": self.options.poll_interval,
            "partial": request.query_params.get("partial") == "1",
            "notice": request.query_params.get("notice", ""),
            "query": lambda **kw: urlencode(
                {k: v for k, v in (dict(request.query_params) | kw).items() if k != "partial"}
            ),
        }  # fmt: skip
        html = self.templates.get_template(template).render(context)
        return Response(html, status, media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-store"})  # fmt: skip

    def not_found_page(self, request: Request) -> Response:
        what = f"Nothing here: {request.url.path}"
        return self.render(request, "error.html", {"status": 404, "message": what}, 404)

    async def not_found(self, request: Request, exc: Exception) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": "not found"}, 404)
        return self.not_found_page(request)

    async def not_allowed(self, request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": "method not allowed"}, 405)

    # -- dead-letter actions ---------------------------------------------------------------

    def _forbidden(self, request: Request, why: str) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": why}, 403)
        return self.render(request, "error.html", {"status": 403, "message": why}, 403)

    def _run_action(self, action: str, ids: list[str] | None) -> int:
        broker = self.source.broker
        run = broker.retry_dead_letters if action == "retry" else broker.purge_dead_letters
        count = run(ids)
        logger.info("Dashboard: %s of %s dead letter(s): %d", action, ids or "all", count)
        return count

    def _form_action(self, action: str) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if not self.options.allow_actions:
                return self._forbidden(request, ACTIONS_OFF)
            form = parse_qs((await request.body()).decode("utf-8", "replace"))
            token = form.get("token", [""])[0]
            if not secrets.compare_digest(token.encode(), self.token.encode()):
                return self._forbidden(request, "the form is stale or forged: reload the page")
            ids = form.get("ids") or None
            if form.get("confirm", [""])[0] != "yes":
                context = {"action": action, "ids": ids or []}
                return self.render(request, "confirm.html", context)
            try:
                count = await self.in_thread(self._run_action, action, ids)
            except Exception as exc:
                return self.render(request, "outage.html", {"error": str(exc)}, 503)
            notice = f"{'Retried' if action == 'retry' else 'Purged'} {count} dead letter(s)"
            return RedirectResponse("/dead-letters?" + urlencode({"notice": notice}), 303)

        return endpoint

    def _api_action(self, action: str) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if not self.options.allow_actions:
                return self._forbidden(request, ACTIONS_OFF)
            if request.headers.get("content-type", "").split(";")[0] != "application/json":
                return JSONResponse({"error": 'send a JSON body: {"ids": [...]} or {}'}, 415)
            try:
                body = json.loads(await request.body() or b"{}")
                ids = body.get("ids")
                if ids is not None and not all(isinstance(i, str) for i in ids):
                    raise ValueError
            except (ValueError, AttributeError, TypeError):
                return JSONResponse({"error": "ids must be a list of strings"}, 400)
            try:
                count = await self.in_thread(self._run_action, action, ids)
            except Exception as exc:
                return JSONResponse({"error": f"{type(exc).__name__}: {exc}"}, 503)
            return JSONResponse({"retried" if action == "retry" else "purged": count})

        return endpoint


#: Why a write action is refused when the dashboard was started read-only.
ACTIONS_OFF = "this dashboard is read-only: start it with --allow-actions to retry or purge"


def _page(request: Request) -> int:
    try:
        return max(int(request.query_params.get("page", "0")), 0)
    except ValueError:
        return 0

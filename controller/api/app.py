"""The ASGI application: the JSON API under /api/v1, the web pages, health, readiness and /metrics.

`create_app(settings)` opens its `ApiContext` (database, Temporal, keys) when the server starts
and closes it when it stops; tests and `twinops up` pass a context they built.

/metrics (Prometheus text format) needs no credentials, like /healthz: a scraper holds no twinops
token, and what it shows is counts and ages (the queue by risk, the audit heads' lag), never a
proposal, a person or a key. Keep it off the public internet at the proxy if even counts are private.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client.exposition import choose_encoder
from sqlalchemy import text

from controller.adapters.metrics import TwinopsMetrics
from controller.api.context import ApiContext, SignInLimiter, context_of
from controller.api.problems import install_problem_handlers
from controller.core.settings import Settings

__all__ = ["create_app"]

API_PREFIX = "/api/v1"


def create_app(
    settings: Settings, *, context: ApiContext | None = None, metrics: TwinopsMetrics | None = None
) -> FastAPI:
    """The application; `context` given, it is used as is (and not closed by the app)."""
    from controller.api.signin_oidc import router as oidc_router
    from controller.api.v1 import router as api_router
    from controller.api.web import mount as mount_web

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if context is not None:
            app.state.context = context
            yield
            return
        opened = await ApiContext.open(settings)
        opened.limiter = SignInLimiter(settings.signin_failures_allowed, settings.signin_window_seconds)
        app.state.context = opened
        try:
            yield
        finally:
            await opened.close()

    from importlib.metadata import version

    app = FastAPI(
        title="twinops",
        version=version("twinops"),
        summary="Approve, reject and inspect the remediations twinops proposes; read their audit trail.",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    if context is not None:
        app.state.context = context
    install_problem_handlers(app)

    @app.get("/healthz", tags=["health"], summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        summary="Temporal, the database and the policy engine are reachable",
        responses={503: {"description": "at least one dependency is not reachable; each is named"}},
    )
    async def readyz(request: Request) -> JSONResponse:
        checks = await readiness(context_of(request))
        ready = all(c["ok"] for c in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    # The database is read at each scrape through whatever context the app holds then (set at start-up).
    # One registry per process: `twinops up` hands in the worker's, so its /metrics shows both.
    metrics = metrics or TwinopsMetrics()
    metrics.watch_database(lambda: context_of_app(app).engine)
    app.state.metrics = metrics

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics of this process", include_in_schema=False)
    async def prometheus_metrics(request: Request) -> Response:
        encode, content_type = choose_encoder(request.headers.get("accept", ""))  # OpenMetrics when asked
        body = await asyncio.to_thread(encode, metrics.registry)  # the collectors query the database
        return Response(body, headers={"Content-Type": content_type})

    app.include_router(api_router, prefix=API_PREFIX)
    app.include_router(oidc_router)
    mount_web(app)
    return app


def context_of_app(app: FastAPI) -> ApiContext:
    """The context `app` holds (set when it starts, or given to `create_app`)."""
    ctx = app.state.context
    assert isinstance(ctx, ApiContext)
    return ctx


async def readiness(ctx: ApiContext, each_seconds: float = 2.0) -> dict[str, dict[str, Any]]:
    """Each dependency by name: ok, and what failed when not."""

    def database() -> None:
        with ctx.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    async def temporal() -> None:
        await ctx.client.service_client.check_health(timeout=timedelta(seconds=each_seconds))

    def policy() -> None:
        # The workers evaluate; this process checks what they would use: OPA answers, or the bundle compiles.
        if ctx.settings.opa_url:
            import httpx

            httpx.get(ctx.settings.opa_url.rstrip("/") + "/health", timeout=each_seconds).raise_for_status()
            return
        from controller.adapters.policy.bundle import read_bundle
        from controller.adapters.policy.engine import build_engine

        build_engine(read_bundle(ctx.settings.policies_dir))

    async def run(name: str, probe: Any) -> tuple[str, dict[str, Any]]:
        try:
            result = probe() if asyncio.iscoroutinefunction(probe) else asyncio.to_thread(probe)
            await asyncio.wait_for(result, each_seconds)
        except TimeoutError:
            return name, {"ok": False, "error": f"no answer within {each_seconds:g}s"}
        except Exception as exc:
            return name, {"ok": False, "error": " ".join(str(exc).split()) or type(exc).__name__}
        return name, {"ok": True}

    results = await asyncio.gather(run("temporal", temporal), run("database", database), run("policy", policy))
    return dict(results)


def app_from_env() -> FastAPI:
    """The application for `uvicorn --factory` and `twinops serve --workers N` (settings from TWINOPS_*)."""
    from controller.adapters.telemetry import configure
    from controller.core.settings import load_settings

    settings = load_settings()
    configure(settings)
    return create_app(settings)

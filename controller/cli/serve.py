"""`twinops serve`: the HTTP API and web UI as its own process (production: any number of replicas).

It holds the credentials to Temporal (TWINOPS_TEMPORAL_ADDRESS and its TLS/API-key settings),
the database (TWINOPS_DATABASE_URL) and the approval signing key; browsers and the CLI hold
only an API token or a session cookie.
"""

from __future__ import annotations

from typing import Annotated

import typer

from controller.cli._common import console, settings_of

app = typer.Typer(add_completion=False)


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option("--host", help="listen address (TWINOPS_API_HOST)")] = None,
    port: Annotated[int | None, typer.Option("--port", help="listen port (TWINOPS_API_PORT)", min=0, max=65535)] = None,
    workers: Annotated[int, typer.Option("--workers", help="server processes on this host", min=1)] = 1,
    proxy_headers: Annotated[
        bool,
        typer.Option("--proxy-headers", help="trust X-Forwarded-For/-Proto (behind a TLS-terminating proxy)"),
    ] = False,
) -> None:
    """Serve the JSON API (/api/v1, /openapi.json) and the web UI (/login) against Temporal and the database."""
    import uvicorn

    settings = settings_of(ctx)
    host = settings.api_host if host is None else host
    port = settings.api_port if port is None else port
    if settings.temporal_address is None:
        console.print(
            "note: TWINOPS_TEMPORAL_ADDRESS is unset; the API connects to the embedded server `twinops up` started",
            highlight=False,
        )
    console.print(f"twinops API and web UI on http://{host}:{port} (sign in at /login; API under /api/v1)")
    uvicorn.run(
        "controller.api.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        proxy_headers=proxy_headers,
        forwarded_allow_ips="*" if proxy_headers else None,
        server_header=False,
    )

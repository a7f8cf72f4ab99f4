"""Logging (structlog) and tracing (OpenTelemetry), configured once at the edge.

Two sinks: stderr, for a human, shows warnings and up (every level with `--verbose`, or the
level TWINOPS_LOG_LEVEL names when set); the log file (TWINOPS_LOG_FILE; `twinops up`
defaults to home/twinops.log) gets every event at TWINOPS_LOG_LEVEL as JSON Lines.
OpenTelemetry is imported only when an exporter is configured.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Collection, Iterator, MutableMapping
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from controller.core.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

_configured = False
_LEVELS = logging.getLevelNamesMapping()


def _level(name: str) -> int:
    return _LEVELS.get(name.upper(), logging.INFO)


def console_level(settings: Settings, *, verbose: bool = False) -> int:
    """The lowest level stderr shows: TWINOPS_LOG_LEVEL when set, its default with --verbose, else warning."""
    if "log_level" in settings.model_fields_set or verbose:
        return _level(settings.log_level)
    return max(logging.WARNING, _level(settings.log_level))


class _Sinks:
    """The last processor: writes JSON to the log file, returns the stderr rendering (or drops the event)."""

    def __init__(
        self,
        renderer: Any,
        console_min: int,
        file: IO[str] | None,
        file_min: int,
        file_only: Collection[str],
    ) -> None:
        self.renderer = renderer
        self.console_min = console_min
        self.file = file
        self.file_min = file_min
        self.file_only = frozenset(file_only)

    def __call__(self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
        import structlog

        level = _level(str(event_dict.get("level", method_name)))
        if self.file is not None and level >= self.file_min:
            self.file.write(json.dumps(event_dict, default=str) + "\n")
        if level < self.console_min or event_dict.get("event") in self.file_only:
            raise structlog.DropEvent
        return self.renderer(logger, method_name, event_dict)


def configure_logging(
    settings: Settings,
    *,
    verbose: bool = False,
    log_file: Path | None = None,
    file_only: Collection[str] = (),
) -> None:
    """Route structlog to stderr (pretty on a terminal, else JSON) and, if any, to the JSON Lines log file.

    `file_only` names events kept out of stderr because the caller shows them otherwise
    (`twinops up` prints notifications as sentences).
    """
    import structlog

    use_json = settings.log_format == "json" or (settings.log_format == "auto" and not sys.stderr.isatty())
    renderer = structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    path = log_file or settings.log_file
    file: IO[str] | None = None
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        file = path.open("a", encoding="utf-8", buffering=1)  # line-buffered: complete lines even on os._exit
    shown = console_level(settings, verbose=verbose)
    kept = _level(settings.log_level)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            _Sinks(renderer, shown, file, kept, file_only),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(min(shown, kept) if file else shown),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def _exporter(settings: Settings) -> SpanExporter | None:
    if settings.otel_exporter == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(out=sys.stderr)
    if settings.otel_exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]
            OTLPSpanExporter,
        )

        exporter: SpanExporter = OTLPSpanExporter(endpoint=settings.otel_endpoint)
        return exporter
    return None


def configure_tracing(settings: Settings) -> None:
    """Install the tracer provider once, when an exporter is configured (else spans are no-ops)."""
    global _configured
    if _configured or settings.otel_exporter == "none":
        return
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "twinops"}))
    exporter = _exporter(settings)
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _configured = True


def configure(settings: Settings, *, verbose: bool = False) -> None:
    """Configure logging and tracing from settings."""
    configure_logging(settings, verbose=verbose)
    configure_tracing(settings)


@contextmanager
def span(name: str, **attributes: str | int | float | bool) -> Iterator[Any]:
    """A span on the twinops tracer (nothing at all when tracing is not configured)."""
    if not _configured:
        with nullcontext() as nothing:
            yield nothing
        return
    from opentelemetry import trace

    with trace.get_tracer("twinops").start_as_current_span(name, attributes=attributes) as s:
        yield s


def shutdown_tracing() -> None:
    """Flush spans before the process exits."""
    if not _configured:
        return
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()

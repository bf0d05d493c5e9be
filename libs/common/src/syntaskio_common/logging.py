"""JSON logs on stdout, with secrets redacted before anything is written; each line
written in a span carries its `trace_id` and `span_id` (hex, as trace back-ends show
them), and a request's lines its `request_id` and `tenant_id`."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any, Final

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

from syntaskio_common.request_context import RequestContextFilter

REDACTED: Final = "[REDACTED]"
_SECRET_KEY = re.compile(
    r"pass(word)?|secret|token|private[_-]?key|authorization|api[_-]?key|cookie|credential",
    re.IGNORECASE,
)
_SECRET_TEXT = (
    # Authorization header values.
    re.compile(r"(?i)\b(basic|bearer)\s+[A-Za-z0-9._~+/=-]+"),
    # key=value pairs in URLs, query strings and messages.
    re.compile(
        r"(?i)\b(password|secret|token|private_?key|privateKey|code_verifier|client_secret"
        r"|access_token|refresh_token)=([^&\s\"']+)"
    ),
    # Credentials in connection strings (mongodb://user:pass@host).
    re.compile(r"(?i)(://[^:/@\s]+):([^@/\s]+)@"),
)


def redact_text(text: str) -> str:
    text = _SECRET_TEXT[0].sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _SECRET_TEXT[1].sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    return _SECRET_TEXT[2].sub(lambda m: f"{m.group(1)}:{REDACTED}@", text)


def redact(value: Any, key: str = "") -> Any:
    """Redact by field name (anything that looks like a secret) and by content pattern."""
    if key and _SECRET_KEY.search(key):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


class RedactingJsonFormatter(JsonFormatter):
    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return {k: redact(v, k) for k, v in super().process_log_record(log_data).items()}


class TraceContextFilter(logging.Filter):
    """Puts the current span's trace and span ids on the line."""

    def filter(self, record: logging.LogRecord) -> bool:
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            record.trace_id = trace.format_trace_id(span_context.trace_id)
            record.span_id = trace.format_span_id(span_context.span_id)
        return True


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(RequestContextFilter())
    handler.addFilter(TraceContextFilter())
    handler.setFormatter(
        RedactingJsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "asctime": "time", "name": "logger"},
            static_fields={"service": service},
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn installs its own handlers; route everything through ours.
    for name in ("uvicorn", "uvicorn.error", "aiokafka", "faststream"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # The access lines are ours (`request_context.RequestContext`: the route's template,
    # the request id, the tenant, the duration), not uvicorn's.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
    # httpx logs every request's full URL at INFO, query string included.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))

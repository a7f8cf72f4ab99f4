"""One regorus engine in a child process, fed requests over its stdin and answering on its stdout.

The parent (`controller.adapters.policy.engine_pool`) starts this file with `python -I <path>`
rather than `-m`, so the child imports nothing but the standard library and
regorus (importing the `controller.adapters.policy` package would cost a second per
replacement). For the same reason the helpers the parent shares live here and
`controller.adapters.policy.engine` imports them.

Wire format: every message is a frame, a 4-byte big-endian length then that many bytes.
- parent -> child, once: JSON {"modules": [[path, source], ...], "data_json": "..."}
- child -> parent, once: JSON {"ok": true} or {"code": ..., "message": ...}
- parent -> child, per decision: `<rule>\\n<input JSON>`
- child -> parent, per decision: `R<result JSON>` or `E{"code": ..., "message": ...}`

A bundle that does not compile leaves the child alive, answering every request with
that error, so a broken bundle is one deny per decision and not a restart loop.
"""

from __future__ import annotations

import json
import struct
import sys
from typing import IO, Any

import regorus

# What regorus's eval_rule_as_json answers for an undefined rule.
UNDEFINED_JSON = '"<undefined>"'

# A Rust panic surfaces as pyo3's PanicException, which derives from BaseException;
# it is an engine failure like any other and must become a deny, not a crash.
ENGINE_ERRORS = BaseException

_LENGTH = struct.Struct(">I")


class EngineError(Exception):
    """An engine could not be built or gave no usable result; `code` is the deny reason code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def reraise_interrupts(exc: BaseException) -> None:
    """Let Ctrl-C and sys.exit through; every other engine error becomes a deny."""
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        raise exc


def engine_error(exc: BaseException) -> str:
    """The message of a regorus error without the Rust backtrace anyhow appends."""
    text = str(exc).split("Stack backtrace:", 1)[0].strip()
    return " ".join(line.strip() for line in text.splitlines() if line.strip()) or type(exc).__name__


def new_engine(modules: list[tuple[str, str]], data_json: str) -> regorus.Engine:
    """A Rego v1 engine holding `modules` (path, source) and the data document.

    Raises EngineError("policy_error") naming the module that does not compile.
    """
    engine = regorus.Engine()
    engine.set_rego_v0(False)
    for path, source in modules:
        try:
            engine.add_policy(path, source)
        except ENGINE_ERRORS as exc:
            reraise_interrupts(exc)
            raise EngineError("policy_error", f"policy module {path} does not compile: {engine_error(exc)}") from exc
    try:
        engine.add_data_json(data_json)
    except ENGINE_ERRORS as exc:
        reraise_interrupts(exc)
        raise EngineError("policy_error", f"bundle data rejected: {engine_error(exc)}") from exc
    return engine


def evaluate(engine: regorus.Engine, rule: str, input_json: str) -> str:
    """Evaluate `rule` against `input_json`; the result as JSON text.

    Raises EngineError with code policy_rule_missing, policy_undefined or policy_error.
    """
    try:
        engine.set_input_json(input_json)
        result = str(engine.eval_rule_as_json(rule))
    except ENGINE_ERRORS as exc:
        reraise_interrupts(exc)
        message = engine_error(exc)
        code = "policy_rule_missing" if "not a valid rule path" in message else "policy_error"
        raise EngineError(code, f"{rule}: {message}") from exc
    if result == UNDEFINED_JSON:
        raise EngineError("policy_undefined", f"{rule} is undefined for this input")
    return result


def write_frame(stream: IO[bytes], payload: bytes) -> None:
    """Write one length-prefixed frame and flush it."""
    stream.write(_LENGTH.pack(len(payload)) + payload)
    stream.flush()


def read_frame(stream: IO[bytes]) -> bytes | None:
    """Read one frame; None at a clean end of stream. Raises EOFError on a frame cut short."""
    head = stream.read(_LENGTH.size)
    if not head:
        return None
    if len(head) < _LENGTH.size:
        raise EOFError("frame header cut short")
    (length,) = _LENGTH.unpack(head)
    body = stream.read(length)
    if len(body) < length:
        raise EOFError(f"frame cut short: {len(body)} of {length} bytes")
    return body


def _error(code: str, message: str) -> dict[str, Any]:
    return {"code": code, "message": message}


def serve(requests: IO[bytes], replies: IO[bytes]) -> None:
    """Build the engine from the first frame, then answer one frame per request until the stream ends."""
    init = read_frame(requests)
    if init is None:
        return
    broken: dict[str, Any] | None = None
    engine = None
    try:
        spec = json.loads(init)
        engine = new_engine([(str(p), str(s)) for p, s in spec["modules"]], str(spec["data_json"]))
    except EngineError as exc:
        broken = _error(exc.code, str(exc))
    except (ValueError, KeyError, TypeError) as exc:
        broken = _error("policy_error", f"engine process: bad start message ({exc})")
    write_frame(replies, json.dumps(broken or {"ok": True}).encode())
    while (request := read_frame(requests)) is not None:
        rule, _, input_json = request.decode("utf-8").partition("\n")
        if engine is None:
            write_frame(replies, b"E" + json.dumps(broken).encode())
            continue
        try:
            write_frame(replies, b"R" + evaluate(engine, rule, input_json).encode("utf-8"))
        except EngineError as exc:
            write_frame(replies, b"E" + json.dumps(_error(exc.code, str(exc))).encode())


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)

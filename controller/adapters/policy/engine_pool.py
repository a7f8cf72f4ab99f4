"""A small pool of child processes, each holding a loaded regorus engine, killed and replaced at the deadline.

regorus cannot be interrupted and holds the GIL while it evaluates, so an engine in
this process (or on a thread of it) would stall the asyncio loop for as long as a
slow policy runs, and a deadline could only be noticed after the fact. In a child
process the parent's loop stays free, and a deadline is enforced by killing the
child (SIGKILL) and starting a fresh one.

    pool = EnginePool(bundle, size=2)
    ticket = pool.submit("data.twinops.safety.decision", input_json)
    try:
        text = await asyncio.wrap_future(ticket.future)   # result JSON text
    except asyncio.CancelledError:
        ticket.abandon()                                  # deadline: kill that child
        raise

Each child is owned by one pool thread at a time; the threads do the blocking pipe
I/O, so the event loop only waits on a future. The pool has as many threads as
children, so a request never holds a thread without a child.
"""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from controller.adapters.policy import engine_process
from controller.adapters.policy.bundle import PolicyBundle
from controller.core.errors import PolicyEvaluationError

CHILD = Path(engine_process.__file__).resolve()
# Seconds to wait for a killed or closed child to be reaped; past that it is left to the OS rather
# than holding up the decision that replaced it.
_REAP_SECONDS = 5.0


class _AbandonedError(Exception):
    """The caller gave up on a request before a child took it."""


class _Child:
    """One engine process: started with the bundle; used by one thread at a time."""

    def __init__(self, init: bytes) -> None:
        self.killed = False
        self._ready = False
        self._init_error: tuple[str, str] | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        try:
            # -I: no user site, no PYTHON* variables, no script folder on sys.path.
            # A new session: a Ctrl-C at the terminal reaches the parent, which closes its children.
            self.proc = subprocess.Popen(
                [sys.executable, "-I", str(CHILD)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                start_new_session=True,
            )
            # The bundle goes out now so the child builds its engine while nobody waits on it.
            self._send(init)
        except OSError as exc:
            # A child that did not start fails its first request and is replaced then.
            self.start_error: OSError | None = exc
        else:
            self.start_error = None

    @property
    def pid(self) -> int:
        """The child's process id (0 when it did not start)."""
        return self.proc.pid if self.proc is not None else 0

    def _send(self, payload: bytes) -> None:
        if self.proc is None or self.proc.stdin is None:
            raise BrokenPipeError("engine process not running")
        engine_process.write_frame(self.proc.stdin, payload)

    def _receive(self) -> bytes:
        if self.proc is None or self.proc.stdout is None:
            raise EOFError("engine process not running")
        frame = engine_process.read_frame(self.proc.stdout)
        if frame is None:
            raise EOFError("engine process closed its output")
        return frame

    def wait_ready(self) -> None:
        """Block until the child has built its engine (or said why it could not). Raises OSError or EOFError."""
        if self.start_error is not None:
            raise self.start_error
        if not self._ready:
            status = json.loads(self._receive())
            self._ready = True
            if not status.get("ok"):
                self._init_error = (str(status.get("code", "policy_error")), str(status.get("message", "")))

    def call(self, query: str, input_json: str) -> str:
        """One evaluation: the result JSON text. Raises PolicyEvaluationError, OSError or EOFError."""
        self.wait_ready()
        if self._init_error is not None:
            raise PolicyEvaluationError(*self._init_error)
        self._send(query.encode() + b"\n" + input_json.encode("utf-8"))
        reply = self._receive()
        if reply[:1] == b"R":
            return reply[1:].decode("utf-8")
        error = json.loads(reply[1:])
        raise PolicyEvaluationError(str(error["code"]), str(error["message"]))

    def kill(self) -> None:
        """SIGKILL the child; the thread blocked on its pipe sees the end of stream."""
        self.killed = True
        if self.proc is not None:
            self.proc.kill()

    def close(self) -> None:
        """Kill the child and reap it."""
        self.kill()
        if self.proc is None:
            return
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        with contextlib.suppress(subprocess.TimeoutExpired):  # SIGKILL cannot be ignored; this is a bound
            self.proc.wait(_REAP_SECONDS)


class Ticket:
    """One request: its future, and the means to kill the child running it."""

    def __init__(self) -> None:
        self.future: Future[str] = Future()
        self._lock = threading.Lock()
        self._child: _Child | None = None
        self._abandoned = False
        self._done = False

    def _take(self, child: _Child) -> None:
        with self._lock:
            if self._abandoned:
                raise _AbandonedError
            self._child = child

    def _finish(self) -> None:
        with self._lock:
            self._done = True

    def abandon(self) -> None:
        """The caller no longer waits: kill the child if it is still evaluating, or never start."""
        self.future.cancel()
        with self._lock:
            self._abandoned = True
            if self._child is not None and not self._done:
                self._child.kill()


class EnginePool:
    """`size` child processes with the bundle loaded; requests go to the first free one."""

    def __init__(self, bundle: PolicyBundle, *, size: int = 2) -> None:
        if size < 1:
            raise ValueError(f"engine pool size must be at least 1, got {size}")
        self.size = size
        self._init = json.dumps(
            {"modules": [[m.path, m.source] for m in bundle.policy_modules], "data_json": bundle.data_json}
        ).encode()
        self._lock = threading.Lock()
        self._children: set[_Child] = set()
        self._closed = False
        # None is the closing sentinel: a thread that takes it puts it back and refuses.
        self._idle: queue.SimpleQueue[_Child | None] = queue.SimpleQueue()
        first = [self._spawn() for _ in range(size)]
        # Wait for the first engines here, once, so building them never counts against a decision's
        # deadline (on a loaded machine it can take longer than the deadline itself). A child that
        # failed to start is handed out anyway: its first request fails closed and replaces it.
        for child in first:
            with contextlib.suppress(OSError, EOFError, ValueError):
                child.wait_ready()
            self._idle.put(child)
        self._threads = ThreadPoolExecutor(max_workers=size, thread_name_prefix="twinops-policy")

    def _spawn(self) -> _Child:
        child = _Child(self._init)
        with self._lock:
            self._children.add(child)
        return child

    def _retire(self, child: _Child) -> None:
        with self._lock:
            self._children.discard(child)
        child.close()

    @property
    def pids(self) -> list[int]:
        """Process ids of the live engine children (for operators and tests)."""
        with self._lock:
            return sorted(c.pid for c in self._children if c.pid)

    def submit(self, query: str, input_json: str) -> Ticket:
        """Queue one evaluation; `ticket.future` resolves to the result JSON text."""
        ticket = Ticket()
        try:
            ticket.future = self._threads.submit(self._run, ticket, query, input_json)
        except RuntimeError:  # shut down
            ticket.future.set_exception(PolicyEvaluationError("policy_error", "the policy engine pool is closed"))
        return ticket

    def _run(self, ticket: Ticket, query: str, input_json: str) -> str:
        child = self._idle.get()
        if child is None:
            self._idle.put(None)
            raise PolicyEvaluationError("policy_error", "the policy engine pool is closed")
        healthy = False
        try:
            ticket._take(child)
            try:
                result = child.call(query, input_json)
                healthy = True
                return result
            except PolicyEvaluationError:
                healthy = True  # the child answered; only the answer was an error
                raise
            except (OSError, EOFError, ValueError) as exc:
                if child.killed:
                    raise PolicyEvaluationError(
                        "policy_timeout", f"{query}: engine process killed at the deadline"
                    ) from None
                raise PolicyEvaluationError(
                    "policy_error", f"{query}: engine process {child.pid} failed ({type(exc).__name__}: {exc})"
                ) from None
            finally:
                ticket._finish()
        except _AbandonedError:
            healthy = True
            raise
        finally:
            self._release(child, healthy=healthy and not child.killed)

    def _release(self, child: _Child, *, healthy: bool) -> None:
        with self._lock:
            closed = self._closed
        if healthy and not closed:
            self._idle.put(child)
            return
        self._retire(child)
        # A dead child is replaced at once, so the next request finds an engine loaded.
        self._idle.put(None if closed else self._spawn())

    def close(self) -> None:
        """Stop taking requests and kill every child."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            children = list(self._children)
            self._children.clear()
        self._threads.shutdown(wait=False, cancel_futures=True)
        for _ in range(self.size):
            self._idle.put(None)
        for child in children:
            child.close()

"""Actuators: the simulator actuator's idempotency and undo, the webhook's wire protocol and errors."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from controller.adapters.actuators import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SimulatorActuator,
    WebhookActuator,
    make_actuator,
    sign_request,
    verify_signature,
)
from controller.core.errors import ConfigurationError
from controller.core.settings import Settings
from twin.actions import RateLimitAction, RestartAction, ScaleAction, ShiftTrafficAction
from twin.scenario import parse_scenario
from twin.simulator import Simulator, SimulatorSource, parse_action
from workflows.ports import Actuator, ActuatorError, StepOutcome

SECRET = "s3cret-shared-key"
URL = "https://estate.example/actions"


def make_simulator() -> Simulator:
    """web -(0.5)-> api -(2.0)-> db, 120 rps into web; api can scale 1..10."""
    return Simulator(
        parse_scenario(
            {
                "twin_id": "shop",
                "start": datetime(2026, 11, 21, 8, 0, tzinfo=UTC).isoformat(),
                "nodes": [
                    {"id": "web", "replicas": 4, "capacity_per_replica": 100.0, "min_replicas": 1, "max_replicas": 20},
                    {"id": "api", "replicas": 2, "capacity_per_replica": 50.0, "min_replicas": 1, "max_replicas": 10},
                    {"id": "db", "kind": "database", "replicas": 1, "capacity_per_replica": 500.0},
                ],
                "edges": [
                    {"source": "web", "target": "api", "ratio": 0.5},
                    {"source": "api", "target": "db", "ratio": 2.0},
                ],
                "load": {"web": {"kind": "constant", "rate": 120.0}},
            }
        )
    )


# ---- simulator actuator ---------------------------------------------------------------------


async def test_simulator_actuator_is_an_actuator() -> None:
    assert isinstance(SimulatorActuator(make_simulator()), Actuator)


async def test_same_key_twice_applies_once_and_shows_in_later_snapshots() -> None:
    source = SimulatorSource(make_simulator(), tick_seconds=1.0)
    actuator = SimulatorActuator(source.simulator)

    first = await actuator.apply("rem-1/step-0", ScaleAction(node="api", replicas=8))
    assert first == StepOutcome(
        idempotency_key="rem-1/step-0", applied=True, undo=ScaleAction(node="api", replicas=2), detail="scale api -> 8"
    )
    assert (await source.latest()).node("api").replicas == 8

    # Something else moves the node; replaying the old key must not drag it back to 8.
    await actuator.apply("rem-2/step-0", ScaleAction(node="api", replicas=5))
    again = await actuator.apply("rem-1/step-0", ScaleAction(node="api", replicas=8))

    assert again.applied is False
    assert again.undo == first.undo
    assert again.idempotency_key == first.idempotency_key
    assert (await source.latest()).node("api").replicas == 5


async def test_record_belongs_to_the_simulator_not_the_actuator_instance() -> None:
    sim = make_simulator()
    await SimulatorActuator(sim).apply("k", ScaleAction(node="api", replicas=8))
    sim.apply(ScaleAction(node="api", replicas=3))

    # A new actuator over the same estate (e.g. a restarted worker in the same process) still knows the key.
    again = await SimulatorActuator(sim).apply("k", ScaleAction(node="api", replicas=8))

    assert again.applied is False
    assert sim.snapshot().node("api").replicas == 3


async def test_same_key_for_a_different_action_is_permanent() -> None:
    actuator = SimulatorActuator(make_simulator())
    await actuator.apply("k", ScaleAction(node="api", replicas=8))

    with pytest.raises(ActuatorError, match="'k'") as caught:
        await actuator.apply("k", ScaleAction(node="api", replicas=9))
    assert caught.value.permanent is True


@pytest.mark.parametrize(
    "action",
    [
        ScaleAction(node="api", replicas=6),
        ShiftTrafficAction(source="web", ratios={"api": 0.25}),
        RateLimitAction(node="web", max_rps=50.0),
    ],
    ids=["scale", "shift_traffic", "rate_limit"],
)
async def test_undo_restores_the_state(action: Any) -> None:
    sim = make_simulator()
    actuator = SimulatorActuator(sim)
    before = sim.snapshot()

    outcome = await actuator.apply("do", action)
    assert outcome.undo is not None
    assert sim.snapshot().model_dump(exclude={"observed_at"}) != before.model_dump(exclude={"observed_at"})
    undone = await actuator.apply("undo", outcome.undo)

    assert undone.applied is True
    assert sim.snapshot().model_dump() == before.model_dump()


async def test_restart_cannot_be_undone() -> None:
    outcome = await SimulatorActuator(make_simulator()).apply("k", RestartAction(node="api"))
    assert outcome.applied is True
    assert outcome.undo is None


@pytest.mark.parametrize(
    ("action", "node"),
    [
        (ScaleAction(node="ghost", replicas=3), "ghost"),
        (ScaleAction(node="api", replicas=11), "api"),
        (RestartAction(node="phantom"), "phantom"),
        (ShiftTrafficAction(source="web", ratios={"nowhere": 1.0}), "nowhere"),
    ],
    ids=["unknown-node", "above-max", "restart-unknown", "unknown-edge"],
)
async def test_invalid_actions_are_permanent_errors_naming_the_node(action: Any, node: str) -> None:
    sim = make_simulator()
    before = sim.snapshot()

    with pytest.raises(ActuatorError, match=f"'{node}'") as caught:
        await SimulatorActuator(sim).apply("k", action)

    assert caught.value.permanent is True
    assert sim.snapshot() == before
    # A refused key is not recorded: the same key may carry a corrected action.
    assert (await SimulatorActuator(sim).apply("k", ScaleAction(node="api", replicas=3))).applied is True


# ---- signatures ----------------------------------------------------------------------------


def test_signature_round_trip_and_tampering() -> None:
    body = b'{"action":{"node":"api","replicas":8,"type":"scale"},"idempotency_key":"k"}'
    header = sign_request(SECRET, "1700000000", body)

    assert header.startswith("sha256=") and len(header) == len("sha256=") + 64
    assert verify_signature(SECRET, "1700000000", body, header, now=1700000010)
    assert not verify_signature(SECRET, "1700000000", body.replace(b"8", b"9"), header, now=1700000010)
    assert not verify_signature("other-secret", "1700000000", body, header, now=1700000010)
    # The timestamp is signed: moving it forward to pass the replay window breaks the signature.
    assert not verify_signature(SECRET, "1700000500", body, header, now=1700000500)


def test_signature_replay_window() -> None:
    body = b"{}"
    header = sign_request(SECRET, "1700000000", body)

    assert not verify_signature(SECRET, "1700000000", body, header, now=1700000000 + 301)
    assert verify_signature(SECRET, "1700000000", body, header, max_age_seconds=None)
    assert not verify_signature(SECRET, "not-a-number", body, header, max_age_seconds=None)


# ---- webhook actuator over a mock transport ------------------------------------------------


def webhook(handler: Callable[[httpx.Request], httpx.Response]) -> WebhookActuator:
    return WebhookActuator(URL, SECRET, timeout=2.0, transport=httpx.MockTransport(handler))


async def test_webhook_sends_a_signed_idempotent_request() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"applied": True, "undo": {"type": "scale", "node": "api", "replicas": 2}})

    async with webhook(handler) as actuator:
        outcome = await actuator.apply("rem-1/step-0", ScaleAction(node="api", replicas=8))

    assert outcome == StepOutcome(
        idempotency_key="rem-1/step-0", applied=True, undo=ScaleAction(node="api", replicas=2), detail="scale api -> 8"
    )
    (request,) = seen
    assert request.method == "POST" and str(request.url) == URL
    assert request.headers["Idempotency-Key"] == "rem-1/step-0"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == {
        "idempotency_key": "rem-1/step-0",
        "action": {"type": "scale", "node": "api", "replicas": 8},
    }
    assert verify_signature(
        SECRET, request.headers[TIMESTAMP_HEADER], request.content, request.headers[SIGNATURE_HEADER]
    )


async def test_webhook_409_means_already_applied_with_the_servers_undo() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        undo = {"type": "rate_limit", "node": "web", "max_rps": None}
        return httpx.Response(409, json={"applied": True, "undo": undo, "detail": "seen at 22:00"})

    outcome = await webhook(handler).apply("k", RateLimitAction(node="web", max_rps=50.0))

    assert outcome.applied is False
    assert outcome.undo == RateLimitAction(node="web", max_rps=None)
    assert outcome.detail == "seen at 22:00"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422, 301])
async def test_webhook_refusals_are_permanent(status: int) -> None:
    actuator = webhook(lambda _: httpx.Response(status, text="node 'api' is frozen"))
    with pytest.raises(ActuatorError, match=str(status)) as caught:
        await actuator.apply("k", ScaleAction(node="api", replicas=8))
    assert caught.value.permanent is True


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
async def test_webhook_server_trouble_is_transient(status: int) -> None:
    actuator = webhook(lambda _: httpx.Response(status))
    with pytest.raises(ActuatorError, match=str(status)) as caught:
        await actuator.apply("k", ScaleAction(node="api", replicas=8))
    assert caught.value.permanent is False


@pytest.mark.parametrize(
    "error", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow")], ids=["connect", "timeout"]
)
async def test_webhook_transport_errors_are_transient(error: httpx.TransportError) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    with pytest.raises(ActuatorError, match="unreachable") as caught:
        await webhook(handler).apply("k", ScaleAction(node="api", replicas=8))
    assert caught.value.permanent is False
    assert caught.value.__cause__ is error


@pytest.mark.parametrize("body", [b"<html>ok</html>", b'{"undo": null}', b'{"applied": true, "undo": {"type": "x"}}'])
async def test_webhook_unreadable_answer_is_transient(body: bytes) -> None:
    # The action may have happened; only a retry (answered 409 with the undo) can recover the compensation.
    actuator = webhook(lambda _: httpx.Response(200, content=body))
    with pytest.raises(ActuatorError, match="unreadable") as caught:
        await actuator.apply("k", ScaleAction(node="api", replicas=8))
    assert caught.value.permanent is False


def test_webhook_rejects_bad_configuration_and_hides_the_secret() -> None:
    with pytest.raises(ConfigurationError, match="ftp://x"):
        WebhookActuator("ftp://x", SECRET, timeout=1.0)
    with pytest.raises(ConfigurationError, match="secret"):
        WebhookActuator(URL, "", timeout=1.0)
    assert SECRET not in repr(WebhookActuator(URL, SECRET, timeout=1.0))


# ---- webhook actuator against a real HTTP receiver -------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    """A minimal estate endpoint: checks the signature, enforces idempotency, applies to a simulator."""

    simulator: Simulator
    outcomes: dict[str, dict[str, Any]]
    applications: list[str]
    lock: threading.Lock

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if not verify_signature(
            SECRET, self.headers[TIMESTAMP_HEADER] or "", body, self.headers[SIGNATURE_HEADER] or ""
        ):
            self._answer(401, {"detail": "bad signature"})
            return
        key = self.headers["Idempotency-Key"]
        with self.lock:
            if key in self.outcomes:
                self._answer(409, self.outcomes[key])
                return
            try:
                undo = self.simulator.apply(parse_action(json.loads(body)["action"]))
            except ValueError as exc:
                self._answer(422, {"detail": str(exc)})
                return
            self.applications.append(key)
            self.outcomes[key] = {"applied": True, "undo": undo.model_dump(mode="json"), "detail": "done"}
            self._answer(200, self.outcomes[key])

    def _answer(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    handler = type(
        "Receiver",
        (_Receiver,),
        {"simulator": make_simulator(), "outcomes": {}, "applications": [], "lock": threading.Lock()},
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/actions", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def test_webhook_against_a_real_receiver(receiver: tuple[str, type[_Receiver]]) -> None:
    url, state = receiver
    async with WebhookActuator(url, SECRET, timeout=5.0) as actuator:
        first = await actuator.apply("rem-1/step-0", ScaleAction(node="api", replicas=8))
        again = await actuator.apply("rem-1/step-0", ScaleAction(node="api", replicas=8))
        with pytest.raises(ActuatorError, match="'api'") as refused:
            await actuator.apply("rem-1/step-1", ScaleAction(node="api", replicas=99))

    assert first.applied is True and first.undo == ScaleAction(node="api", replicas=2)
    assert again.applied is False and again.undo == first.undo
    assert refused.value.permanent is True
    assert state.applications == ["rem-1/step-0"]
    assert state.simulator.snapshot().node("api").replicas == 8


async def test_real_receiver_refuses_a_wrong_secret(receiver: tuple[str, type[_Receiver]]) -> None:
    url, state = receiver
    async with WebhookActuator(url, "not-the-secret", timeout=5.0) as actuator:
        with pytest.raises(ActuatorError, match="401") as caught:
            await actuator.apply("k", ScaleAction(node="api", replicas=8))

    assert caught.value.permanent is True
    assert state.applications == []


# ---- factory -------------------------------------------------------------------------------


def test_make_actuator_defaults_to_the_simulator() -> None:
    sim = make_simulator()
    actuator = make_actuator(Settings(), sim)
    assert isinstance(actuator, SimulatorActuator) and actuator.simulator is sim
    with pytest.raises(ConfigurationError, match="simulat"):
        make_actuator(Settings(actuator="simulator"), None)


def test_make_actuator_webhook_needs_url_and_secret() -> None:
    with pytest.raises(ConfigurationError, match="TWINOPS_ACTUATOR_URL"):
        make_actuator(Settings(actuator="webhook", actuator_secret=SECRET), None)
    with pytest.raises(ConfigurationError, match="TWINOPS_ACTUATOR_SECRET"):
        make_actuator(Settings(actuator="webhook", actuator_url=URL), None)

    settings = Settings(actuator="webhook", actuator_url=URL, actuator_secret=SECRET)
    actuator = make_actuator(settings, None)

    assert isinstance(actuator, WebhookActuator) and actuator.url == URL
    assert SECRET not in repr(settings) and SECRET not in str(settings.model_dump())

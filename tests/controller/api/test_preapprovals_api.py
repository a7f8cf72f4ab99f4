"""The pre-approval endpoints: give one (approvers join one grant), list them, and each refusal as problem details."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from controller.adapters.preapprovals import PreapprovalRecord
from controller.adapters.temporal_server import TemporalRuntime
from controller.api.app import create_app
from controller.api.context import ApiContext
from controller.app.playbooks import find_playbook
from controller.core.settings import Settings
from tests.controller.api.conftest import PROBLEM_JSON
from tests.workflows.test_playbook_preapproval import PLAYBOOK
from workflows.contracts import PreapprovalGrant
from workflows.playbook_contracts import playbook_digest

pytestmark = pytest.mark.integration

TYPES = "https://twinops.dev/problems/"
NAME = "trim-by-hand"
GIVE = f"/api/v1/playbooks/{NAME}/preapprovals"
LIST = "/api/v1/playbooks/preapprovals"


def at(minutes: float) -> datetime:
    """Now plus `minutes`, to the second (a run's time as a person writes it)."""
    return (datetime.now(UTC) + timedelta(minutes=minutes)).replace(microsecond=0)


def body(run_at: datetime, expires_at: datetime, comment: str = "") -> dict[str, str]:
    return {"run_at": run_at.isoformat(), "expires_at": expires_at.isoformat(), "comment": comment}


@dataclass
class Served:
    """The app over fresh stores and a playbooks folder with trim-by-hand; vera views, alice and bob approve."""

    ctx: ApiContext
    http: httpx.AsyncClient
    tokens: dict[str, str]
    folder: Path

    async def post(self, path: str, user: str | None, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return await self.http.post(path, headers=headers, **kwargs)

    async def get(self, path: str, user: str | None, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return await self.http.get(path, headers=headers, **kwargs)

    def grant(self, run_at: datetime, expires_at: datetime, created_by: str = "alice") -> PreapprovalRecord:
        """A grant of trim-by-hand as it is now, stored directly (no approval yet)."""
        playbook = find_playbook(NAME, self.folder)
        grant = PreapprovalGrant(
            id=f"pa-direct-{run_at:%H%M%S}",
            playbook=NAME,
            version=playbook.version,
            playbook_digest=playbook_digest(playbook),
            run_at=run_at,
            expires_at=expires_at,
        )
        return self.ctx.preapprovals().store.create_sync(grant, created_by)


@pytest_asyncio.fixture
async def served(temporal: TemporalRuntime, tmp_path: Path) -> AsyncIterator[Served]:
    folder = tmp_path / "playbooks"
    folder.mkdir()
    (folder / f"{NAME}.yaml").write_text(PLAYBOOK)
    settings = Settings(home=tmp_path, playbooks_dir=folder)
    ctx = await ApiContext.open(settings, client=temporal.client)
    ids = ctx.identities
    tokens = {
        "vera": ids.add_user("vera", "viewer", "edge"),
        "alice": ids.add_user("alice", "approver", "edge", ["sre"]),
        "bob": ids.add_user("bob", "approver", "payments", ["sre"]),
    }
    app = create_app(settings, context=ctx)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
        yield Served(ctx, http, tokens, folder)
    await ctx.close()


def problem(answer: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    """The answer is problem details with this status and type; its body."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM_JSON
    doc: dict[str, Any] = answer.json()
    assert doc["type"] == TYPES + slug and doc["status"] == status, doc
    return doc


async def test_an_approver_pre_approves_and_a_viewer_lists_it(served: Served) -> None:
    run_at, expires_at = at(60), at(120)
    given = await served.post(GIVE, "alice", json=body(run_at, expires_at, "fine tonight"))
    assert given.status_code == 201, given.text
    record = given.json()
    assert record["id"].startswith("pa-") and record["playbook"] == NAME and record["version"] == 1
    assert datetime.fromisoformat(record["run_at"]) == run_at
    assert datetime.fromisoformat(record["expires_at"]) == expires_at
    assert (record["approvers"], record["status"], record["created_by"]) == (["alice"], "open", "alice")
    assert record["used_by_run"] is None and record["used_at"] is None

    listed = await served.get(LIST, "vera")
    assert listed.status_code == 200, listed.text
    assert listed.json() == {"preapprovals": [record]}
    mine = await served.get(LIST, "vera", params={"playbook": NAME})
    other = await served.get(LIST, "vera", params={"playbook": "nightly"})
    assert mine.json()["preapprovals"] == [record] and other.json() == {"preapprovals": []}

    # Signed by the approval service's own signer: the one key the workers trust.
    assert served.ctx.preapprovals().signer is served.ctx.approvals.signer
    [approval] = served.ctx.preapprovals().store.get_sync(record["id"]).grant.approvals
    assert (approval.kind, approval.principal.id, approval.text) == ("approve", "alice", "fine tonight")


async def test_two_approvers_join_one_grant(served: Served) -> None:
    run_at = at(60)
    first = await served.post(GIVE, "alice", json=body(run_at, at(120)))
    # bob asks for a longer window: he joins alice's grant, whose window stands.
    second = await served.post(GIVE, "bob", json=body(run_at, at(180)))
    assert first.status_code == 201 and second.status_code == 201, second.text
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["approvers"] == ["alice", "bob"]
    assert second.json()["expires_at"] == first.json()["expires_at"]
    listed = (await served.get(LIST, "bob")).json()["preapprovals"]
    assert [(p["id"], p["approvers"]) for p in listed] == [(first.json()["id"], ["alice", "bob"])]


async def test_approving_the_same_grant_twice_is_a_409(served: Served) -> None:
    run_at = at(60)
    assert (await served.post(GIVE, "alice", json=body(run_at, at(120)))).status_code == 201
    again = await served.post(GIVE, "alice", json=body(run_at, at(120)))
    doc = problem(again, 409, "preapproval-closed")
    assert "'alice' has already pre-approved pa-" in doc["detail"]


async def test_an_expired_grant_is_a_409(served: Served) -> None:
    # A run 5 minutes ago is still one to pre-approve (a run may start late), but its grant lapsed a minute ago.
    run_at = at(-5)
    grant = served.grant(run_at, at(-1)).grant
    answer = await served.post(GIVE, "bob", json=body(run_at, at(60)))
    doc = problem(answer, 409, "preapproval-closed")
    assert doc["detail"].startswith(f"pre-approval {grant.id} expired at ")


async def test_a_grant_a_run_used_meanwhile_is_a_409(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    run_at = at(5)
    given = (await served.post(GIVE, "alice", json=body(run_at, at(60)))).json()
    store = served.ctx.preapprovals().store
    found = store.open_for_sync

    def found_then_claimed(playbook: str, version: int, digest: str, when: datetime) -> PreapprovalRecord | None:
        # The run starts between bob's look-up of the open grant and his approval.
        record = found(playbook, version, digest, when)
        claim = store.claim_sync(playbook, version, digest, "playbook-run-trim-by-hand-1", datetime.now(UTC))
        assert claim.grant is not None and claim.grant.id == given["id"]
        return record

    monkeypatch.setattr(store, "open_for_sync", found_then_claimed)
    answer = await served.post(GIVE, "bob", json=body(run_at, at(60)))
    doc = problem(answer, 409, "preapproval-closed")
    assert f"pre-approval {given['id']} was used by run playbook-run-trim-by-hand-1" in doc["detail"]
    [listed] = (await served.get(LIST, "vera")).json()["preapprovals"]
    assert (listed["status"], listed["used_by_run"], listed["approvers"]) == (
        "used",
        "playbook-run-trim-by-hand-1",
        ["alice"],
    )


async def test_an_unknown_playbook_is_a_404_naming_the_known_ones(served: Served) -> None:
    answer = await served.post("/api/v1/playbooks/nope/preapprovals", "alice", json=body(at(60), at(120)))
    doc = problem(answer, 404, "not-found")
    assert doc["detail"] == "no playbook 'nope' (known: trim-by-hand)"
    assert str(served.folder) not in doc["detail"]


async def test_a_playbook_that_does_not_load_is_a_409(served: Served) -> None:
    (served.folder / "broken.yaml").write_text("name: broken\nversion: one\n")
    answer = await served.post("/api/v1/playbooks/broken/preapprovals", "alice", json=body(at(60), at(120)))
    doc = problem(answer, 409, "playbook-invalid")
    assert "broken.yaml" in doc["detail"]


@pytest.mark.parametrize(
    ("run_in", "expires_in", "field", "words"),
    [
        (-60, 60, "run_at", "is in the past: pre-approve a run still to come"),
        (60, 60, "expires_at", "is not after run_at"),
        (60, 8 * 24 * 60, "expires_at", "is more than 7 days away"),
    ],
)
async def test_times_the_service_refuses_are_a_422_naming_the_field(
    served: Served, run_in: int, expires_in: int, field: str, words: str
) -> None:
    answer = await served.post(GIVE, "alice", json=body(at(run_in), at(expires_in)))
    doc = problem(answer, 422, "invalid-request")
    assert words in doc["detail"] and "--" not in doc["detail"], doc["detail"]
    assert [p["name"] for p in doc["invalid-params"]] == [f"body.{field}"]
    assert (await served.get(LIST, "alice")).json() == {"preapprovals": []}


async def test_a_time_without_a_zone_or_a_bad_body_is_a_422_naming_the_field(served: Served) -> None:
    naive = {"run_at": "2030-01-01T02:30:00", "expires_at": at(60).isoformat()}
    doc = problem(await served.post(GIVE, "alice", json=naive), 422, "invalid-request")
    assert [p["name"] for p in doc["invalid-params"]] == ["body.run_at"]
    extra = {**body(at(60), at(120)), "approver": "mallory"}
    doc = problem(await served.post(GIVE, "alice", json=extra), 422, "invalid-request")
    assert [p["name"] for p in doc["invalid-params"]] == ["body.approver"]
    # A name, never a path: the service reads <playbooks dir>/<name>.yaml.
    dotted = await served.post("/api/v1/playbooks/..secrets/preapprovals", "alice", json=body(at(60), at(120)))
    doc = problem(dotted, 422, "invalid-request")
    assert [p["name"] for p in doc["invalid-params"]] == ["path.name"]


async def test_a_viewer_cannot_pre_approve_and_nobody_anonymous_reads(served: Served) -> None:
    doc = problem(await served.post(GIVE, "vera", json=body(at(60), at(120))), 403, "forbidden")
    assert "needs the approver role" in doc["detail"]
    assert (await served.get(LIST, "vera")).json() == {"preapprovals": []}
    problem(await served.post(GIVE, None, json=body(at(60), at(120))), 401, "unauthenticated")
    problem(await served.get(LIST, None), 401, "unauthenticated")

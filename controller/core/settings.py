"""One frozen settings object for the whole controller, read from TWINOPS_* variables.

It is loaded once at the edge (CLI, worker, API) and passed down; nothing below
controller/ reads the environment.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]
DAY_SECONDS = 86400


class Settings(BaseSettings):
    """Every address, path and threshold twinops uses; override with TWINOPS_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="TWINOPS_", frozen=True, extra="ignore")

    # Local state
    home: Path = Field(default=Path(".twinops"), description="All local state lives here.")

    # Temporal
    temporal_address: str | None = Field(
        default=None, description="host:port of an existing Temporal server; unset starts the embedded dev server."
    )
    temporal_namespace: str = "default"
    # Only twinops' own services may reach Temporal: anyone who can start workflows or send updates there
    # bypasses the approval service. Production requires mTLS or an API key.
    temporal_tls_cert: Path | None = Field(default=None, description="Client certificate (PEM) for mTLS to Temporal.")
    temporal_tls_key: Path | None = Field(default=None, description="Client private key (PEM) for mTLS to Temporal.")
    temporal_tls_ca: Path | None = Field(
        default=None, description="CA bundle (PEM) that signed Temporal's server cert."
    )
    temporal_tls_server_name: str | None = Field(default=None, description="Server name to verify, if not the host.")
    temporal_api_key: SecretStr | None = Field(default=None, description="Temporal Cloud / server API key.")
    temporal_task_queue: str = "twinops"
    temporal_ui: bool = True
    temporal_port: int | None = Field(
        default=None, ge=1, le=65535, description="Embedded dev server's frontend port; unset: any free port."
    )
    temporal_ui_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Embedded Temporal UI port; unset: the one used last time, else 8233, whichever is free.",
    )
    temporal_start_timeout_seconds: float = 60.0
    # Modest slots: on a small machine the SDK defaults (100 workflow tasks) let tasks outlive their
    # 10 s timeout under load and retry forever (measured in benchmarks/bench_loop.py).
    worker_max_workflow_tasks: int = Field(default=8, ge=1)
    worker_max_activities: int = Field(default=32, ge=1)

    # Twin
    twin_id: str = "shop"
    twin_source: Literal["simulator", "file", "http", "prometheus", "push"] = Field(
        default="simulator",
        description="simulator | file | http | prometheus (PromQL over a twin model file) | push (the snapshots "
        "posted to POST /api/v1/twins/{id}/snapshots).",
    )
    twin_scenario: Path = REPO_ROOT / "twin" / "scenarios" / "hidden_downstream.yaml"
    twin_file: Path | None = None
    twin_url: str | None = None
    twin_http_timeout_seconds: float = 5.0
    twin_http_retries: int = 3
    twin_max_age_seconds: float = 120.0
    # Prometheus as the twin source (twin_source=prometheus): the model file declares the topology and a PromQL
    # template per metric; the source runs the instant queries concurrently within one deadline.
    prometheus_url: str | None = Field(default=None, description="Base URL of Prometheus, e.g. http://prom:9090.")
    twin_model: Path | None = Field(
        default=None, description="Twin model YAML (topology + PromQL per metric); needed by twin_source=prometheus."
    )
    prometheus_timeout_seconds: float = Field(
        default=5.0, gt=0.0, description="Deadline for all the queries of one snapshot (no snapshot after it)."
    )
    prometheus_concurrency: int = Field(default=16, ge=1, description="Queries in flight at once per snapshot.")
    # Event-driven ticks: a firing alert or a pushed/changed snapshot wakes the agent loop at once.
    alert_node_label: str = Field(
        default="service", description="The Alertmanager label whose value names a twin node."
    )
    twin_watch_seconds: float | None = Field(
        default=None,
        ge=0.0,
        description="Read the twin this often and wake the loop when it changed; unset: 0.5 s for the simulator, "
        "off otherwise; 0: off.",
    )
    desires_file: Path | None = Field(
        default=None, description="Desires YAML (targets, SLOs, budget); unset: defaults."
    )
    target_utilization: float = Field(default=0.8, gt=0.0, le=1.0)
    tick_seconds: float = Field(default=15.0, gt=0.0)
    # Demand history (table demand_history): what the agent's forecasts read, recorded every tick.
    demand_bucket_seconds: int = Field(
        default=300,
        gt=0,
        description="Width of a demand history bucket (each keeps the mean demand of its ticks); divides a day.",
    )
    demand_retention_days: float = Field(
        default=14.0, gt=0.0, description="Days of demand history kept (and read); two weeks covers weekly seasons."
    )

    # Policy
    policies_dir: Path = REPO_ROOT / "policies"
    opa_url: str | None = Field(default=None, description="OPA server URL; unset evaluates Rego in-process.")
    policy_timeout_seconds: float = 2.0
    policy_engine_processes: int = Field(
        default=2, ge=1, description="regorus engine processes (each killed and replaced when it overruns)."
    )

    # Playbooks
    playbooks_dir: Path = Field(
        default=REPO_ROOT / "playbooks", description="Where the playbooks are: every *.yaml in it is one."
    )

    # Audit + inbox store
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; unset uses SQLite under home.")
    audit_signing_key: Path | None = Field(default=None, description="Ed25519 private key; default home/audit.key.")
    audit_signing_command: str | None = Field(
        default=None,
        description="Signs heads instead of a key file (an HSM/KMS client): gets the checkpoint body on stdin, "
        "prints the base64 Ed25519 signature; needs audit_public_key.",
    )
    audit_public_key: Path | None = Field(
        default=None, description="The log's verifier key (or PEM public key) file; checked against the signer."
    )
    audit_witness_dir: Path | None = Field(
        default=None, description="Directory outside the database where each signed head is written as a file."
    )
    # Global, but it lives here because the audit key is what it guards first.
    mode: Literal["embedded", "production"] = Field(
        default="embedded",
        description="production refuses unsafe defaults: a created audit key, or one beside the database.",
    )
    audit_origin: str = "twinops.local/audit"
    audit_head_every_events: int = 100
    audit_head_every_seconds: float = 60.0

    # Approvals
    approval_signing_key: Path | None = Field(
        default=None,
        description="Ed25519 key the approval service signs decisions with; default home/approval.key. Workflows "
        "count only decisions it signed. In production keep it where only the approval service can read it.",
    )
    approval_timeout_seconds: float = 3600.0
    approval_expiry_seconds: float = 3600.0
    verification_window_seconds: float = 60.0
    verification_settle_seconds: float = Field(
        default=120.0,
        ge=0.0,
        description="After the window, how long the goals may take to show (polled) before a fix counts as failed.",
    )

    # Actuators and notifiers
    actuator: Literal["simulator", "webhook"] = "simulator"
    actuator_url: str | None = Field(default=None, description="Webhook that applies actions (actuator=webhook).")
    actuator_secret: SecretStr | None = Field(default=None, description="Shared HMAC-SHA256 key for actuator_url.")
    actuator_timeout_seconds: float = Field(default=10.0, gt=0.0)
    notifier: Literal["log", "webhook"] = "log"
    notifier_url: str | None = Field(default=None, description="Slack-compatible incoming webhook (notifier=webhook).")
    notifier_timeout_seconds: float = Field(default=5.0, gt=0.0)

    token: SecretStr | None = Field(default=None, description="API token of the CLI user (TWINOPS_TOKEN).")
    agent_name: str = "bdi"

    # API and web UI (`twinops serve`; `up` starts it beside the worker)
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8321, ge=0, le=65535, description="0: any free port (tests).")
    api_url: str | None = Field(
        default=None,
        description="Base URL of a twinops API (e.g. https://twinops.example.com); when set with TWINOPS_TOKEN, "
        "`queue`, `show`, `approve`, `reject` and `cancel` go through it instead of Temporal and the database.",
    )
    api_timeout_seconds: float = Field(default=30.0, gt=0.0)
    session_ttl_seconds: float = Field(default=8 * 3600.0, gt=0.0, description="Browser sessions end after this.")
    cookie_secure: bool | None = Field(
        default=None, description="Mark the session cookie Secure; unset: when the request came over https."
    )
    signin_failures_allowed: int = Field(default=5, ge=1, description="Failed sign-ins per client per window.")
    signin_window_seconds: float = Field(default=300.0, gt=0.0)
    # OIDC (optional): bearer JWTs and browser sign-in checked against the issuer's JWKS.
    oidc_issuer: str | None = Field(default=None, description="Issuer URL; its `iss` claim must equal this.")
    oidc_audience: str | None = Field(default=None, description="Expected `aud` (the client id).")
    oidc_jwks_url: str | None = Field(
        default=None, description="JWKS URL; unset: read from the issuer's /.well-known/openid-configuration."
    )
    oidc_role_claim: str = Field(default="twinops_role", description="Claim holding viewer, approver or admin.")
    oidc_team_claim: str = Field(default="team", description="Claim holding the user's team.")
    oidc_groups_claim: str = Field(default="groups", description="Claim holding the approver groups (a list).")
    oidc_name_claim: str = Field(default="preferred_username", description="Claim naming the user (else `sub`).")
    oidc_authorize_url: str | None = Field(
        default=None, description="Authorization endpoint for browser sign-in; unset: from the discovery document."
    )
    oidc_client_id: str | None = Field(default=None, description="Client id for browser sign-in (default: audience).")
    oidc_token_url: str | None = Field(
        default=None, description="Token endpoint for browser sign-in; unset: from the discovery document."
    )
    oidc_client_secret: SecretStr | None = Field(
        default=None,
        description="Client secret for the code exchange (HTTP Basic); unset: a public client, PKCE alone.",
    )

    # Telemetry
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = Field(
        default="INFO", description="Level of the log file; stderr shows warnings and up unless --verbose or set."
    )
    log_file: Path | None = Field(
        default=None, description="JSON Lines log of every event at log_level; `up` defaults to home/twinops.log."
    )
    otel_exporter: Literal["none", "console", "otlp"] = "none"
    # Prometheus metrics of twinops itself: the API serves /metrics on its own port; a worker serves its
    # own on worker_metrics_port and the Temporal SDK's on temporal_metrics_port (unset: not served).
    worker_metrics_port: int | None = Field(
        default=None, ge=0, le=65535, description="Worker's /metrics port (0: any free port); unset: none."
    )
    temporal_metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="Temporal SDK runtime metrics port (Prometheus); unset: none."
    )
    otel_endpoint: str | None = None

    @field_validator("demand_bucket_seconds")
    @classmethod
    def _bucket_divides_a_day(cls, value: int) -> int:
        if value > 0 and DAY_SECONDS % value:
            raise ValueError(
                f"must divide a day ({DAY_SECONDS} s) evenly, so a time of day is the same bucket every day "
                "(e.g. 60, 300, 600, 900, 3600)"
            )
        return value

    @cached_property
    def demand_retention_seconds(self) -> float:
        """`demand_retention_days` in seconds."""
        return self.demand_retention_days * DAY_SECONDS

    @cached_property
    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL in force: the configured one, else SQLite under home."""
        return self.database_url or f"sqlite:///{(self.home / 'twinops.db').resolve()}"

    @cached_property
    def resolved_approval_key(self) -> Path:
        """Where the approval service's signing key lives."""
        return self.approval_signing_key or self.home / "approval.key"

    @cached_property
    def resolved_signing_key(self) -> Path:
        """Where the audit signing key lives."""
        return self.audit_signing_key or self.home / "audit.key"


def load_settings() -> Settings:
    """Read settings from the environment once, at the edge."""
    return Settings()

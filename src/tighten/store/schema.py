"""Every table of the store, in one place (SQLAlchemy Core).

Tables are plural, ids are ``<noun>_id``, timestamps ``*_at`` in UTC. A change here needs
a new Alembic migration in ``migrations/versions`` (the test suite compares the migrated
database with this metadata, and a golden dump per dialect makes every change visible).

Transcripts are stored one row per session in ``messages`` (a JSON array): every step of
the loop reads a session whole, and one row per message caps ingest far below the rate a
production agent fleet needs. Tool calls, which people query across sessions, are rows.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect

__all__ = ["metadata"]

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

ID = String(200)
NAME = String(200)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite keeps no
    offset, so without this its values would come back naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            return value.astimezone(UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


Timestamp = UTCDateTime()

agents = Table(
    "agents",
    metadata,
    Column("name", NAME, primary_key=True),
    Column("description", Text),
    Column("created_at", Timestamp, nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("session_id", ID, primary_key=True),
    Column("agent", NAME, ForeignKey("agents.name"), nullable=False),
    Column("source", String(500)),
    Column("origin", String(40), nullable=False, comment="format the session came from"),
    Column("channel", String(100)),
    Column("task_category", String(200)),
    Column("model", String(200)),
    Column("started_at", Timestamp),
    Column("ended_at", Timestamp),
    Column("message_count", Integer, nullable=False),
    Column("tool_call_count", Integer, nullable=False),
    Column("tool_error_count", Integer, nullable=False),
    Column("span_count", Integer, nullable=False),
    Column("input_tokens", BigInteger),
    Column("output_tokens", BigInteger),
    Column("total_tokens", BigInteger),
    Column("cost_usd", Float),
    Column("outcome_success", Boolean),
    Column("outcome_reward", Float),
    Column("outcome", JSON),
    Column("artifact_versions", JSON),
    Column("attributes", JSON),
    Column("content_hash", String(64), nullable=False),
    Column("ingested_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    Index(None, "agent", "started_at"),
    Index(None, "ingested_at"),
)

messages = Table(
    "messages",
    metadata,
    Column(
        "session_id",
        ID,
        ForeignKey("sessions.session_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("message_count", Integer, nullable=False),
    Column("body", JSON, nullable=False, comment="the transcript: a JSON array of messages"),
)

tool_calls = Table(
    "tool_calls",
    metadata,
    Column("session_id", ID, ForeignKey("sessions.session_id", ondelete="CASCADE")),
    Column("position", Integer, comment="order of the call within its session"),
    Column("message_index", Integer, nullable=False),
    Column("call_id", String(200)),
    Column("name", NAME, nullable=False),
    Column("arguments", Text),
    Column("result", Text),
    Column("error", Text),
    Column("status", String(20), nullable=False, comment="ok, error or unknown"),
    Column("latency_ms", Float),
    Column("started_at", Timestamp),
    PrimaryKeyConstraint("session_id", "position"),
    Index(None, "name"),
)

spans = Table(
    "spans",
    metadata,
    Column("trace_id", String(32)),
    Column("span_id", String(16)),
    Column("parent_span_id", String(16)),
    Column("session_id", ID, nullable=False),
    Column("name", String(500), nullable=False),
    Column("kind", String(20)),
    Column("start_time_unix_nano", BigInteger),
    Column("end_time_unix_nano", BigInteger),
    Column("status_code", String(20)),
    Column("status_message", Text),
    Column("attributes", JSON),
    Column("events", JSON),
    Column("resource", JSON),
    Column("scope", JSON),
    Column("span_hash", String(64), nullable=False),
    Column("received_at", Timestamp, nullable=False),
    PrimaryKeyConstraint("trace_id", "span_id"),
    Index(None, "session_id"),
)

rejects = Table(
    "rejects",
    metadata,
    Column("reject_id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(1000), nullable=False, comment="file path, '-' or an endpoint"),
    Column("line", Integer, comment="1-based line (JSONL) or record number"),
    Column("format", String(40)),
    Column("reason", Text, nullable=False),
    Column("excerpt", Text, comment="the first characters of the record, for a human"),
    Column("record_hash", String(64), nullable=False),
    Column("received_at", Timestamp, nullable=False),
    UniqueConstraint("source", "line", "record_hash"),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("artifact_id", Integer, primary_key=True, autoincrement=True),
    Column("agent", NAME, ForeignKey("agents.name"), nullable=False),
    Column("name", NAME, nullable=False),
    Column(
        "kind", String(20), nullable=False, comment="prompt, playbook, soul, config, tool, code"
    ),
    Column("human_only", Boolean, nullable=False, default=False),
    Column("required_placeholders", JSON),
    Column("json_schema", JSON),
    Column("created_at", Timestamp, nullable=False),
    UniqueConstraint("agent", "name"),
)

artifact_versions = Table(
    "artifact_versions",
    metadata,
    Column("version_id", Integer, primary_key=True, autoincrement=True),
    Column("artifact_id", Integer, ForeignKey("artifacts.artifact_id"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("content", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("parent_version_id", Integer, ForeignKey("artifact_versions.version_id")),
    Column("author", NAME, nullable=False),
    Column("reason", Text),
    Column("created_at", Timestamp, nullable=False),
    UniqueConstraint("artifact_id", "number"),
)

labels = Table(
    "labels",
    metadata,
    Column("artifact_id", Integer, ForeignKey("artifacts.artifact_id")),
    Column("label", String(100)),
    Column("version_id", Integer, ForeignKey("artifact_versions.version_id"), nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    PrimaryKeyConstraint("artifact_id", "label"),
)

label_moves = Table(
    "label_moves",
    metadata,
    Column("move_id", Integer, primary_key=True, autoincrement=True),
    Column("artifact_id", Integer, ForeignKey("artifacts.artifact_id"), nullable=False),
    Column("label", String(100), nullable=False),
    Column("from_version_id", Integer, ForeignKey("artifact_versions.version_id")),
    Column("to_version_id", Integer, ForeignKey("artifact_versions.version_id"), nullable=False),
    Column("actor", NAME, nullable=False),
    Column("reason", Text),
    Column("moved_at", Timestamp, nullable=False),
    Column(
        "kind",
        String(20),
        nullable=False,
        server_default="deploy",
        comment="deploy, rollback or promote; rollbacks are skipped when stepping back",
    ),
)

signals = Table(
    "signals",
    metadata,
    Column("signal_id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", ID, ForeignKey("sessions.session_id", ondelete="CASCADE")),
    Column("agent", NAME, comment="set for every signal; the only key of window signals"),
    Column(
        "scope",
        String(10),
        nullable=False,
        server_default="session",
        comment="session, or window for an observation across sessions",
    ),
    Column("type", String(100), nullable=False),
    Column("polarity", String(10), nullable=False, comment="friction or delight"),
    Column("severity", Float, nullable=False),
    Column("target", String(500)),
    Column("description", Text, nullable=False),
    Column("evidence", JSON, comment="message indexes and quotes"),
    Column("detector", String(200), nullable=False, comment="rule id or judge model"),
    Column("confidence", Float, nullable=False),
    Column("quote", Text, comment="a short excerpt for a reviewer"),
    Column("sessions", JSON, comment="window signals: the sessions that show it"),
    Column("created_at", Timestamp, nullable=False),
    Index(None, "session_id"),
    Index(None, "type", "target"),
    Index(None, "agent", "scope"),
)

session_metrics = Table(
    "session_metrics",
    metadata,
    Column(
        "session_id", ID, ForeignKey("sessions.session_id", ondelete="CASCADE"), primary_key=True
    ),
    Column("agent", NAME, nullable=False),
    Column("analysed_hash", String(64), nullable=False, comment="content_hash when analysed"),
    Column("analysed_at", Timestamp, nullable=False),
    Column("message_count", Integer, nullable=False),
    Column("user_messages", Integer, nullable=False),
    Column("assistant_messages", Integer, nullable=False),
    Column("tool_calls", Integer, nullable=False),
    Column("tool_failures", Integer, nullable=False),
    Column("escalated", Boolean, nullable=False),
    Column("owner_corrected", Boolean, nullable=False),
    Column("unanswered_questions", Integer, nullable=False),
    Column("sentiment", Float, comment="-1 (frustrated) … 1 (satisfied)"),
    Column("media_types", JSON),
    Column("avg_response_ms", Float),
    Column("input_tokens", BigInteger),
    Column("output_tokens", BigInteger),
    Column("total_tokens", BigInteger),
    Column("cost_usd", Float),
    Column("duration_s", Float),
    Column("artifact_versions", JSON),
    Column("signal_types", JSON, comment="sorted distinct signal types"),
    Column("friction_count", Integer, nullable=False),
    Column("delight_count", Integer, nullable=False),
    Column("features", JSON, comment="the friction score's inputs"),
    Column("friction_score", Float, nullable=False, comment="estimated P(session failed)"),
    Index(None, "agent", "friction_score"),
)

calibrations = Table(
    "calibrations",
    metadata,
    Column("calibration_id", Integer, primary_key=True, autoincrement=True),
    Column("agent", NAME, comment="null: fitted on every agent"),
    Column("method", String(50), nullable=False),
    Column("features", JSON, nullable=False),
    Column("coefficients", JSON, nullable=False),
    Column("intercept", Float, nullable=False),
    Column("scaling", JSON, comment="feature means and scales applied before the weights"),
    Column("sessions", Integer, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("auroc", Float, comment="cross-validated"),
    Column("average_precision", Float, comment="cross-validated"),
    Column("active", Boolean, nullable=False),
    Column("created_at", Timestamp, nullable=False),
)

judgements = Table(
    "judgements",
    metadata,
    Column("judgement_id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", ID, ForeignKey("sessions.session_id", ondelete="CASCADE")),
    Column("model", String(200), nullable=False),
    Column("input_tokens", BigInteger),
    Column("output_tokens", BigInteger),
    Column("cost_usd", Float),
    Column("signal_count", Integer, nullable=False),
    Column("error", Text),
    Column("created_at", Timestamp, nullable=False),
    Index(None, "session_id"),
)

patterns = Table(
    "patterns",
    metadata,
    Column("pattern_id", Integer, primary_key=True, autoincrement=True),
    Column("agent", NAME, ForeignKey("agents.name")),
    Column("key", String(500), nullable=False, comment="type:target, or a cluster id"),
    Column("kind", String(20), nullable=False, comment="known or emergent"),
    Column("label", Text),
    Column("signal_count", Integer, nullable=False),
    Column("sessions_affected", Integer, nullable=False),
    Column("share", Float),
    Column("trend", Float, comment="relative change against the previous window"),
    Column("first_seen_at", Timestamp),
    Column("last_seen_at", Timestamp),
    Column("window_start", Timestamp),
    Column("window_end", Timestamp),
    Column("breakdown", JSON, comment="by artifact version and task category"),
    Column("examples", JSON, comment="example session ids"),
    Column("created_at", Timestamp, nullable=False),
    Index(None, "agent", "key"),
)

cycles = Table(
    "cycles",
    metadata,
    Column("cycle_id", Integer, primary_key=True, autoincrement=True),
    Column("agent", NAME, ForeignKey("agents.name")),
    Column("window_start", Timestamp),
    Column("window_end", Timestamp),
    Column("status", String(20), nullable=False, comment="open, reviewed, deployed, skipped"),
    Column("stats", JSON),
    Column("digest", Text),
    Column("created_at", Timestamp, nullable=False),
    Column("reviewed_at", Timestamp),
)

proposals = Table(
    "proposals",
    metadata,
    Column("proposal_id", Integer, primary_key=True, autoincrement=True),
    Column("cycle_id", Integer, ForeignKey("cycles.cycle_id")),
    Column("number", Integer, comment="the item number in its cycle's digest"),
    Column("agent", NAME, ForeignKey("agents.name")),
    Column("kind", String(100), nullable=False),
    Column("goal", String(20), comment="accuracy, capabilities or cost"),
    Column("target_artifact", NAME),
    Column("target_field", String(500)),
    Column("current_value", Text),
    Column("proposed_value", Text),
    Column("diff", Text),
    Column("rationale", Text),
    Column("evidence", JSON),
    Column("expected_impact", JSON),
    Column("confidence", Float),
    Column("deployability", String(10), nullable=False, comment="auto, semi or manual"),
    Column("status", String(20), nullable=False),
    Column("pattern_key", String(500)),
    Column("fingerprint", String(64), comment="stable identity across cycles"),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    Index(None, "fingerprint"),
)

feedback = Table(
    "feedback",
    metadata,
    Column("feedback_id", Integer, primary_key=True, autoincrement=True),
    Column("proposal_id", Integer, ForeignKey("proposals.proposal_id")),
    Column("session_id", ID, ForeignKey("sessions.session_id", ondelete="SET NULL")),
    Column("decision", String(20), nullable=False, comment="approve, reject, defer, score"),
    Column("score", Float),
    Column("reason", Text),
    Column("actor", NAME, nullable=False),
    Column("channel", String(50)),
    Column("learned", JSON),
    Column("created_at", Timestamp, nullable=False),
)

experiments = Table(
    "experiments",
    metadata,
    Column("experiment_id", Integer, primary_key=True, autoincrement=True),
    Column("name", NAME, nullable=False, unique=True),
    Column("agent", NAME, ForeignKey("agents.name"), nullable=False),
    Column("artifact_id", Integer, ForeignKey("artifacts.artifact_id")),
    Column("kind", String(20), nullable=False, comment="ab or bandit"),
    Column("variants", JSON, nullable=False),
    Column("traffic", JSON),
    Column("primary_metric", String(100)),
    Column("direction", String(10)),
    Column("guardrails", JSON),
    Column("min_samples", Integer),
    Column("alpha", Float),
    Column("max_duration_s", Integer),
    Column("seed", String(64), nullable=False),
    Column("status", String(20), nullable=False),
    Column("decision", JSON),
    Column("created_at", Timestamp, nullable=False),
    Column("started_at", Timestamp),
    Column("ended_at", Timestamp),
)

assignments = Table(
    "assignments",
    metadata,
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id")),
    Column("unit_id", ID),
    Column("variant", String(200), nullable=False),
    Column("version_id", Integer, ForeignKey("artifact_versions.version_id")),
    Column("session_id", ID),
    Column("category", String(200)),
    Column("assigned_at", Timestamp, nullable=False),
    PrimaryKeyConstraint("experiment_id", "unit_id"),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("event_id", Integer, primary_key=True, autoincrement=True),
    Column("occurred_at", Timestamp, nullable=False),
    Column("actor", NAME, nullable=False),
    Column("action", String(100), nullable=False),
    Column("entity_type", String(50), nullable=False),
    Column("entity_id", String(500)),
    Column("before", JSON),
    Column("after", JSON),
    Column("reason", Text),
    Index(None, "entity_type", "entity_id"),
)

"""Serializers: explicit field lists only (a new model field never leaks by default). Connections never
expose ``credentials_encrypted`` or ``credentials``. Cursors and versions are strings (they outgrow
JavaScript numbers); times are ISO 8601 with offset."""

from __future__ import annotations

import datetime as dt
import json
import re

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.http import outbound_url_validator
from core.redaction import redact, redact_data
from sync.models import (
    LineState,
    Origin,
    QueueState,
    StatusState,
    SyncActivity,
    SyncQueue,
    SyncQueueLine,
    SyncStatus,
)
from sync.progress import run_progress
from sync.registry import connection_model

RESOURCE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MAX_PARAMS_BYTES = 16_384
MAX_PARAMS_DEPTH = 8


# --- Errors (documentation only: api_exception_handler builds them) ------------------------------------
class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. not_found, invalid, throttled.")
    message = serializers.CharField(help_text="What went wrong and what to do about it.")
    details = serializers.JSONField(help_text="Field errors or extra facts (may be empty).")


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


class StrictSerializer(serializers.Serializer):
    """Rejects unknown fields with 400 instead of silently ignoring them."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object."]})
        unknown = sorted(str(k) for k in set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({k: ["Unknown field."] for k in unknown})
        return super().to_internal_value(data)


def _check_json_value(value, depth: int = 0) -> None:
    """Params are stored as JSON; PostgreSQL jsonb refuses NUL characters, so refuse them here."""
    if depth > MAX_PARAMS_DEPTH:
        raise serializers.ValidationError(f"nested deeper than {MAX_PARAMS_DEPTH} levels")
    if isinstance(value, str) and "\x00" in value:
        raise serializers.ValidationError("strings may not contain NUL characters")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_json_value(k, depth + 1)
            _check_json_value(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _check_json_value(v, depth + 1)


# --- Trigger -------------------------------------------------------------------------------------------
class TriggerRequestSerializer(StrictSerializer):
    full_scan = serializers.BooleanField(
        required=False, default=False, help_text="Ignore the stored cursor and fetch everything."
    )
    params = serializers.DictField(
        required=False,
        default=dict,
        child=serializers.JSONField(),
        help_text="Connector-specific parameters (JSON object), part of the idempotency fingerprint.",
    )

    def validate_full_scan(self, value):
        # BooleanField accepts "yes"/1; the API contract is a JSON boolean.
        if "full_scan" in self.initial_data and not isinstance(self.initial_data["full_scan"], bool):
            raise serializers.ValidationError("Must be true or false.")
        return value

    def validate_params(self, value: dict) -> dict:
        _check_json_value(value)
        if len(json.dumps(value, default=str)) > MAX_PARAMS_BYTES:
            raise serializers.ValidationError(f"params may not exceed {MAX_PARAMS_BYTES} bytes of JSON")
        return value


class TriggerQuerySerializer(serializers.Serializer):
    """``?full_scan=`` on a trigger: the form Lightspeed's original endpoint took, accepted on every route."""

    full_scan = serializers.BooleanField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Same as the body's full_scan (true/false); if both are given they must agree.",
    )


class TriggerResponseSerializer(serializers.Serializer):
    queue_id = serializers.IntegerField()
    state = serializers.ChoiceField(choices=QueueState.choices)
    result = serializers.ChoiceField(
        choices=[("created", "created"), ("idempotent", "idempotent"), ("running", "running")],
        help_text="created: a new run; idempotent: the queue this Idempotency-Key created before; "
        "running: a run of this resource was already active, this is it (no twin was started).",
    )
    created = serializers.BooleanField()
    message = serializers.CharField()
    connection_id = serializers.IntegerField()
    resource = serializers.CharField()
    poll_url = serializers.CharField(help_text="Same as the Location header: GET it for progress.")


# --- Connections ---------------------------------------------------------------------------------------
class ConnectionSerializer(serializers.ModelSerializer):
    organization = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    has_credentials = serializers.BooleanField(read_only=True)
    config = serializers.SerializerMethodField()
    last_error = serializers.SerializerMethodField()

    class Meta:
        model = connection_model()
        # Explicit and secret-free: credentials_encrypted / credentials are deliberately absent.
        fields = [
            "id",
            "organization",
            "kind",
            "name",
            "base_url",
            "external_account_id",
            "config",
            "is_active",
            "needs_reauth",
            "health",
            "consecutive_failures",
            "last_error",
            "last_checked_at",
            "has_credentials",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields
        # Read-only today; should base_url ever become writable, the outbound address rule applies at save.
        extra_kwargs = {"base_url": {"validators": [outbound_url_validator]}}

    @extend_schema_field({"type": "object", "additionalProperties": True})
    def get_config(self, obj) -> dict:
        return redact_data(obj.config or {})

    def get_last_error(self, obj) -> str:
        return redact(obj.last_error or "")


class ConnectionHealthSerializer(serializers.Serializer):
    connection_id = serializers.IntegerField()
    health = serializers.CharField()
    needs_reauth = serializers.BooleanField(help_text="True: the upstream refused our credentials; reconnect it.")
    is_active = serializers.BooleanField()
    consecutive_failures = serializers.IntegerField()
    last_error = serializers.CharField(allow_blank=True)
    last_checked_at = serializers.DateTimeField(allow_null=True)
    active_queues = serializers.IntegerField()
    failing_resources = serializers.ListField(child=serializers.CharField())


class TestConnectionResponseSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    message = serializers.CharField(help_text="What the upstream answered.")
    checked_at = serializers.DateTimeField()


# --- Statuses -------------------------------------------------------------------------------------------
class SyncStatusSerializer(serializers.ModelSerializer):
    connection_id = serializers.IntegerField(read_only=True)
    last_queue_id = serializers.IntegerField(read_only=True, allow_null=True)
    cursor = serializers.CharField(read_only=True, help_text="Opaque; a string even when it is a version number.")
    records_synced = serializers.CharField(read_only=True, help_text="64-bit count, as a string.")
    records_failed = serializers.CharField(read_only=True, help_text="64-bit count, as a string.")
    last_error = serializers.SerializerMethodField()

    class Meta:
        model = SyncStatus
        fields = [
            "id",
            "connection_id",
            "resource",
            "state",
            "cursor",
            "records_synced",
            "records_failed",
            "last_queue_id",
            "started_at",
            "finished_at",
            "last_success_at",
            "last_error",
            "updated_at",
        ]
        read_only_fields = fields

    def get_last_error(self, obj) -> str:
        return redact(obj.last_error or "")


# --- Queues ---------------------------------------------------------------------------------------------
class QueueSerializer(serializers.ModelSerializer):
    connection_id = serializers.IntegerField(read_only=True)
    connection_name = serializers.CharField(source="connection.name", read_only=True)
    kind = serializers.CharField(source="connection.kind", read_only=True)
    progress_percent = serializers.IntegerField(read_only=True)
    created_by = serializers.SerializerMethodField()
    cursor_from = serializers.CharField(read_only=True)
    cursor_to = serializers.CharField(read_only=True)
    last_error = serializers.SerializerMethodField()

    class Meta:
        model = SyncQueue
        fields = [
            "id",
            "connection_id",
            "connection_name",
            "kind",
            "resource",
            "origin",
            "lane",
            "state",
            "is_active",
            "action_required",
            "pending_deletions",
            "full_scan",
            "total_count",
            "draft_count",
            "processing_count",
            "done_count",
            "failed_count",
            "cancelled_count",
            "progress_percent",
            "cursor_from",
            "cursor_to",
            "last_error",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
            "cancelled_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_created_by(self, obj) -> str | None:
        return obj.created_by.get_username() if obj.created_by_id else None

    def get_last_error(self, obj) -> str:
        return redact(obj.last_error or obj.fetch_error or "")


class ProgressSerializer(serializers.Serializer):
    total = serializers.IntegerField(help_text="Lines known so far (or the upstream's announced total, if larger).")
    finished = serializers.IntegerField(help_text="done + failed + cancelled")
    percent = serializers.IntegerField(help_text="Share of the records that ended done (failed/cancelled excluded).")
    done = serializers.IntegerField()
    failed = serializers.IntegerField()
    cancelled = serializers.IntegerField(help_text="Cancelled lines, plus what a cancelled run never fetched.")
    label = serializers.CharField(help_text="The same text the admin shows beside the bar.")
    fetch_done = serializers.BooleanField()
    fetch_failed = serializers.BooleanField()
    pages_fetched = serializers.IntegerField()
    started_at = serializers.DateTimeField(allow_null=True)
    elapsed_seconds = serializers.FloatField(allow_null=True)
    active_seconds = serializers.FloatField(help_text="Time a worker spent on the run.")
    waiting_seconds = serializers.FloatField(help_text="Wall time since creation minus active time.")
    lines_per_second = serializers.FloatField(allow_null=True, help_text="Finished lines per active second.")
    estimated_finish_at = serializers.DateTimeField(
        allow_null=True, help_text="From the throughput so far; null until there is one, or when finished."
    )


def queue_progress(queue: SyncQueue, now: dt.datetime | None = None) -> dict:
    """The API's view of sync.progress.run_progress (the same function the admin and the CLI use)."""
    return run_progress(queue, now)


class QueueDetailSerializer(QueueSerializer):
    progress = serializers.SerializerMethodField()
    params = serializers.SerializerMethodField()
    idempotency_key = serializers.CharField(read_only=True)
    expected_total = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta(QueueSerializer.Meta):
        fields = [
            *QueueSerializer.Meta.fields,
            "progress",
            "params",
            "idempotency_key",
            "expected_total",
            "process_runs",
        ]
        read_only_fields = fields

    @extend_schema_field(ProgressSerializer)
    def get_progress(self, obj) -> dict:
        return ProgressSerializer(queue_progress(obj)).data

    @extend_schema_field({"type": "object", "additionalProperties": True})
    def get_params(self, obj) -> dict:
        return redact_data(obj.params or {})


class QueueLineSerializer(serializers.ModelSerializer):
    payload = serializers.SerializerMethodField()
    last_error = serializers.SerializerMethodField()

    class Meta:
        model = SyncQueueLine
        fields = [
            "id",
            "external_id",
            "action",
            "state",
            "attempts",
            "next_attempt_at",
            "lease_until",
            "last_error",
            "updated_at",
            "payload",
        ]
        read_only_fields = fields

    @extend_schema_field({"type": "object", "additionalProperties": True})
    def get_payload(self, obj) -> dict:
        return redact_data(obj.payload if isinstance(obj.payload, dict) else {"value": obj.payload})

    def get_last_error(self, obj) -> str:
        return redact(obj.last_error or "")


class ActivitySerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_label", read_only=True)
    data = serializers.SerializerMethodField()

    class Meta:
        model = SyncActivity
        fields = ["id", "created_at", "event", "level", "actor", "message", "data", "queue_id", "connection_id"]
        read_only_fields = fields

    @extend_schema_field({"type": "object", "additionalProperties": True})
    def get_data(self, obj) -> dict:
        return redact_data(obj.data or {})


# --- Query-string filters (validated: a bad value is a 400, never a 500) -----------------------------
class QueueFilterSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=QueueState.choices, required=False)
    connection = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    resource = serializers.RegexField(RESOURCE_RE, required=False)
    origin = serializers.ChoiceField(choices=Origin.choices, required=False)
    action_required = serializers.BooleanField(required=False, allow_null=True, default=None)


class LineFilterSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=LineState.choices, required=False)


class StatusFilterSerializer(serializers.Serializer):
    connection = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    state = serializers.ChoiceField(choices=StatusState.choices, required=False)
    resource = serializers.RegexField(RESOURCE_RE, required=False)


class ConnectionFilterSerializer(serializers.Serializer):
    kind = serializers.RegexField(RESOURCE_RE, required=False)
    needs_reauth = serializers.BooleanField(required=False, allow_null=True, default=None)


class OrganizationParamSerializer(serializers.Serializer):
    """``organization=<id>`` in a query string or a JSON body (customer and connector endpoints): an integer
    id in the same bounds as the path ids, so "abc", -3 or a 25-digit value is a 400, not a 500."""

    organization = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)

    @classmethod
    def organization_id(cls, data, *, required: bool = False, user=None) -> int | None:
        """Validate ``data`` (a QueryDict or a parsed body; a non-object body is a 400) and return the id.
        With ``user``, an organization that is not one of the caller's is a 404 (never an empty answer that
        would confirm it exists, never a 403)."""
        ser = cls(data=data)
        ser.fields["organization"].required = required
        ser.is_valid(raise_exception=True)
        org_id = ser.validated_data.get("organization")
        if org_id is not None and user is not None:
            from django.http import Http404

            from sync.selectors import organization_ids_for

            allowed = organization_ids_for(user)
            if allowed is not None and org_id not in allowed:
                raise Http404("No such organization among yours.")
        return org_id

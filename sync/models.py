"""The engine's tables: tenancy, per-resource status, queues of lines, the activity log, settings."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from core.http import outbound_url_validator


class Organization(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        ADMIN = "admin", "Admin"
        MEMBER = "member", "Member"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.MEMBER)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "organization"], name="uniq_membership")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.organization} ({self.role})"


class StatusState(models.TextChoices):
    IDLE = "idle", "Idle"
    SYNCING = "syncing", "Syncing"
    SUCCESS = "success", "Success"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


class SyncStatus(models.Model):
    """One row per (connection, resource): what happened last, and where the cursor stands."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="sync_statuses")
    connection = models.ForeignKey("connectors.Connection", on_delete=models.CASCADE, related_name="statuses")
    resource = models.CharField(max_length=64)
    state = models.CharField(max_length=16, choices=StatusState.choices, default=StatusState.IDLE)
    # Cursors are stored as text: Lightspeed versions outgrow JS numbers, timestamps are ISO 8601 UTC.
    cursor = models.CharField(max_length=255, blank=True, default="")
    # Which upstream the cursor belongs to (sync.identity.upstream_fingerprint): a cursor is never used
    # against another upstream (invariant 18). "" = not known yet (rows older than the field).
    upstream = models.CharField(max_length=64, blank=True, default="")
    records_synced = models.BigIntegerField(default=0)
    records_failed = models.BigIntegerField(default=0)
    last_queue = models.ForeignKey("SyncQueue", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "sync statuses"
        constraints = [models.UniqueConstraint(fields=["connection", "resource"], name="uniq_status_conn_resource")]
        indexes = [models.Index(fields=["organization", "state"])]

    def __str__(self) -> str:
        return f"{self.connection_id}/{self.resource}: {self.state}"


class QueueState(models.TextChoices):
    DRAFT = "draft", "Draft"
    PROCESSING = "processing", "Processing"
    DONE = "done", "Done"
    PARTIAL = "partial", "Partial"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class Origin(models.TextChoices):
    MANUAL = "manual", "Manual"
    SCHEDULE = "schedule", "Schedule"
    WEBHOOK = "webhook", "Webhook"
    API = "api", "API"
    LOGIN = "login", "Login"


class Lane(models.TextChoices):
    RUN = "run", "Fetch run"
    WEBHOOK = "webhook", "Webhook"


class SyncQueue(models.Model):
    """One run of one resource of one connection: a list of lines plus fetch progress."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="queues")
    connection = models.ForeignKey("connectors.Connection", on_delete=models.CASCADE, related_name="queues")
    resource = models.CharField(max_length=64)
    origin = models.CharField(max_length=16, choices=Origin.choices, default=Origin.MANUAL)
    # "run" queues fetch from upstream; "webhook" queues only hold pushed records. One active per lane.
    lane = models.CharField(max_length=16, choices=Lane.choices, default=Lane.RUN)
    state = models.CharField(max_length=16, choices=QueueState.choices, default=QueueState.DRAFT, db_index=True)
    # True while the run owns its (connection, resource): the partial unique constraint below makes
    # "one run at a time" a database fact rather than an in-memory flag.
    is_active = models.BooleanField(default=True)
    idempotency_key = models.CharField(max_length=255, blank=True, default="")
    # The first API response to the request that created this queue with an Idempotency-Key (status,
    # headers, body text): a replay with the same key answers exactly this, marked Idempotent-Replayed.
    idempotency_response = models.JSONField(null=True, blank=True, editable=False)
    params = models.JSONField(default=dict, blank=True)
    params_hash = models.CharField(max_length=64, blank=True, default="")
    full_scan = models.BooleanField(default=False)
    action_required = models.BooleanField(default=False)
    # A full scan whose mark-missing step the mass-deletion guard stopped: this many live rows were not seen
    # and wait for a person ("apply deletions"). 0 once applied, or when nothing waits.
    pending_deletions = models.IntegerField(default=0)
    # The upstream fingerprint the run started against (its cursor is only kept for that upstream).
    upstream = models.CharField(max_length=64, blank=True, default="")
    # Fetch progress: where paging stands (resumable after a crash) and the cursor range covered.
    fetch_done = models.BooleanField(default=False)
    fetch_token = models.JSONField(null=True, blank=True)
    fetch_lease_until = models.DateTimeField(null=True, blank=True)
    pages_fetched = models.IntegerField(default=0)
    expected_total = models.IntegerField(null=True, blank=True)
    fetch_error = models.TextField(blank=True, default="")
    cursor_from = models.CharField(max_length=255, blank=True, default="")
    cursor_to = models.CharField(max_length=255, blank=True, default="")
    # Per-state line counts, maintained in the same transaction as the line changes.
    total_count = models.IntegerField(default=0)
    draft_count = models.IntegerField(default=0)
    processing_count = models.IntegerField(default=0)
    done_count = models.IntegerField(default=0)
    failed_count = models.IntegerField(default=0)
    cancelled_count = models.IntegerField(default=0)
    process_runs = models.IntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    # Time a worker actually spent on the run (summed over its sessions), apart from time spent waiting for
    # a worker, a retry or a person: ``active_since`` is the start of the session in progress, if any.
    active_seconds = models.FloatField(default=0)
    active_since = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "resource", "lane"],
                condition=Q(is_active=True),
                name="uniq_active_queue_per_resource",
            ),
            models.UniqueConstraint(
                fields=["organization", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="uniq_queue_idempotency_key",
            ),
        ]
        indexes = [
            models.Index(fields=["connection", "resource", "-created_at"]),
            models.Index(fields=["organization", "state"]),
            models.Index(fields=["is_active", "state"]),
            models.Index(fields=["finished_at"]),
            # The queue list's default order: without it a fleet's list sorts every queue per page view.
            models.Index(fields=["-created_at", "-id"], name="sync_queue_newest"),
        ]

    def __str__(self) -> str:
        return f"Queue #{self.pk} {self.resource} ({self.state})"

    @property
    def progress_percent(self) -> int:
        from .progress import run_progress  # the one progress computation (admin, API, CLI)

        return run_progress(self)["percent"]


class LineState(models.TextChoices):
    DRAFT = "draft", "Draft"
    PROCESSING = "processing", "Processing"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class LineAction(models.TextChoices):
    UPSERT = "upsert", "Upsert"
    DELETE = "delete", "Delete"


class SyncQueueLine(models.Model):
    """A snapshot of one upstream record; the raw payload is kept so a retry needs no refetch."""

    # No index of its own: uniq_line_per_queue (queue, external_id) leads with it and serves every lookup by
    # queue. The extra index cost an insertion per line, and on a table planned without fresh statistics it
    # was chosen for "these ids of this queue", scanning the queue's every line per group.
    # No database constraint either: PostgreSQL checked it once per inserted line (a query each, ~4.4 us;
    # 0.22 s of every 50,000 lines' commit, on the path a first sync waits on; docs/performance.md). What
    # holds instead: every line is inserted after lock_queue in the same transaction, which raises when the
    # queue's row is gone; a queue's deletion (the ORM's cascade, or the purge under the queues' locks)
    # deletes its lines, and then, in the same transaction, any committed since the cascade read them
    # (sync.services.lines.lines_of_deleted_queue). Tests: tests/sync/test_line_queue_integrity.py.
    queue = models.ForeignKey(
        SyncQueue, on_delete=models.CASCADE, related_name="lines", db_index=False, db_constraint=False
    )
    external_id = models.CharField(max_length=255)
    action = models.CharField(max_length=8, choices=LineAction.choices, default=LineAction.UPSERT)
    payload = models.JSONField(default=dict)
    state = models.CharField(max_length=16, choices=LineState.choices, default=LineState.DRAFT)
    attempts = models.IntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    # Who holds the lease: a random token per claim. Settling a line checks it, so a worker whose lease
    # was reaped (and the line re-claimed by someone else) cannot finish a line it no longer owns.
    lease_token = models.CharField(max_length=32, blank=True, default="")
    last_error = models.TextField(blank=True, default="")
    updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["queue", "external_id"], name="uniq_line_per_queue")]
        # Partial indexes: a done (or cancelled) line is in none of them. Almost every line ends done, and
        # the fetcher inserts most lines done already, so each skips two index insertions (the bench's
        # largest remaining per-record database cost). Claims, retries and the reaper only look for
        # draft, processing and failed lines.
        indexes = [
            models.Index(
                fields=["queue", "state", "id"],
                condition=models.Q(state__in=["draft", "processing", "failed"]),
                name="sync_line_open_by_queue",
            ),
            models.Index(fields=["lease_until"], condition=models.Q(state="processing"), name="sync_line_leased"),
            models.Index(fields=["external_id"]),
        ]

    def __str__(self) -> str:
        return f"Line {self.external_id} ({self.state})"


class ActivityLevel(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    ERROR = "error", "Error"


class SyncActivity(models.Model):
    """Append-only audit log: who did what, when, with which counts and error."""

    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.CASCADE, related_name="activities"
    )
    connection = models.ForeignKey(
        "connectors.Connection", null=True, blank=True, on_delete=models.SET_NULL, related_name="activities"
    )
    queue = models.ForeignKey(SyncQueue, null=True, blank=True, on_delete=models.CASCADE, related_name="activities")
    line = models.ForeignKey(SyncQueueLine, null=True, blank=True, on_delete=models.SET_NULL, related_name="activities")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=150, blank=True, default="system")
    event = models.CharField(max_length=64)
    level = models.CharField(max_length=8, choices=ActivityLevel.choices, default=ActivityLevel.INFO)
    message = models.TextField(blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        verbose_name_plural = "sync activities"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["queue", "created_at"]),
            models.Index(fields=["organization", "event", "created_at"]),
            models.Index(fields=["connection", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.event}"

    def save(self, *args, **kwargs):
        if self.pk and not kwargs.pop("_allow_update", False):
            raise ValueError("SyncActivity is append-only")
        return super().save(*args, **kwargs)


class SystemSetting(models.Model):
    """A key/value setting, global (organization NULL) or per organization; editable in the admin."""

    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.CASCADE, related_name="settings"
    )
    key = models.CharField(max_length=100)
    value = models.JSONField(default=None, null=True, blank=True)
    description = models.CharField(max_length=255, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "key"], name="uniq_setting_org_key"),
            models.UniqueConstraint(
                fields=["key"], condition=Q(organization__isnull=True), name="uniq_setting_global_key"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.key}={self.value!r}"

    def clean(self) -> None:
        # A setting whose value is an http(s) URL names an endpoint we will call (MuleSoft's loyalty endpoint
        # becomes a Connection.base_url): the outbound address rule applies at save, as for base URLs.
        super().clean()
        if isinstance(self.value, str) and self.value.strip().lower().startswith(("http://", "https://")):
            try:
                outbound_url_validator(self.value.strip())
            except ValidationError as exc:
                raise ValidationError({"value": exc.messages}) from None


class ScheduleState(models.TextChoices):
    ACTIVE = "active", "Active"
    BACKOFF = "backoff", "Backing off"
    NEEDS_REAUTH = "needs_reauth", "Needs reconnect"
    DISCONNECTED = "disconnected", "Disconnected"
    PAUSED = "paused", "Paused by an operator"


class RunSchedule(models.Model):
    """Run-policy state of one schedulable unit (sync.runpolicy): a (connection, resource), or the whole
    connection (resource "") for a kind with priority tiers. It holds the failure streak, the backoff, the
    tier and the pause, and is mirrored into at most one django-q2 Schedule (``schedule_name``)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    connection = models.ForeignKey("connectors.Connection", on_delete=models.CASCADE, related_name="run_schedules")
    resource = models.CharField(max_length=64, blank=True, default="", help_text="Empty: the whole connection")
    tier = models.CharField(max_length=16, blank=True, default="")
    state = models.CharField(max_length=16, choices=ScheduleState.choices, default=ScheduleState.ACTIVE)
    failures_in_row = models.IntegerField(default=0)
    next_sync_at = models.DateTimeField(null=True, blank=True)
    last_sync_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    last_activity_at = models.DateTimeField(null=True, blank=True, help_text="Newest upstream change or webhook seen")
    last_error = models.TextField(blank=True, default="")
    # Set when a run is enqueued by hand / login / connect, cleared when it starts: no duplicate enqueues.
    queued_at = models.DateTimeField(null=True, blank=True)
    schedule_name = models.CharField(max_length=100, blank=True, default="")

    class Meta:
        ordering = ["organization_id", "connection_id", "resource"]
        constraints = [models.UniqueConstraint(fields=["connection", "resource"], name="run_schedule_unique")]
        indexes = [
            models.Index(fields=["failures_in_row"], name="run_schedule_failing"),
            # The scheduler tick (sync.scheduler) reads the oldest due units first.
            models.Index(fields=["next_sync_at"], name="run_schedule_due"),
        ]

    def __str__(self) -> str:
        return f"Schedule of {self.connection}{' / ' + self.resource if self.resource else ''}"


class RunSlot(models.Model):
    """The parallel cap of one kind as rows: a run holds one slot of its kind while it runs. ``connection``
    is unique across every kind, so the same connection never holds two slots (never runs twice at once)."""

    kind = models.CharField(max_length=32)
    number = models.PositiveIntegerField()
    connection = models.OneToOneField(
        "connectors.Connection", null=True, blank=True, on_delete=models.SET_NULL, related_name="run_slot"
    )
    acquired_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["kind", "number"]
        constraints = [models.UniqueConstraint(fields=["kind", "number"], name="run_slot_unique")]

    def __str__(self) -> str:
        return f"{self.kind} slot {self.number}"


class RunTally(models.Model):
    """Finished whole-connection runs per (kind, tier, minute): the scheduler status's throughput of the last
    hour and mean run time (so its capacity estimate) from a few dozen rows, not from run history. One
    UPSERT per finished run; rows older than a day are purged with the queues."""

    kind = models.CharField(max_length=32)
    tier = models.CharField(max_length=16, blank=True, default="")
    minute = models.DateTimeField()
    runs = models.IntegerField(default=0)
    failures = models.IntegerField(default=0)
    busy_seconds = models.FloatField(default=0.0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "tier", "minute"], name="run_tally_unique")]
        indexes = [models.Index(fields=["kind", "minute"], name="run_tally_recent")]

    def __str__(self) -> str:
        return f"{self.kind}/{self.tier or '-'} {self.minute:%Y-%m-%d %H:%M}: {self.runs} runs"


class PageMemo(models.Model):
    """What the engine derived from one fetched page, keyed by the page's digest (core.paging.Page.digest,
    taken with the mapping revision): each record's source hash by external id. A later run that fetches
    the very same page again (an unchanged full scan of WooCommerce customers, which have no date filter)
    reads the hashes here instead of hashing every record again. Pure memoisation: a memo says nothing
    about any row (the look-up of unchanged rows still compares every hash with the row's), and a lost memo
    costs only the hashing. Written by the fetch as it goes; a complete fetch deletes the resource's memos
    of pages it did not see (sync.services.pagememo). Body memos share the table (keys beginning with "~"):
    the ids of a response body's records, so a later full scan need not parse the same bytes again."""

    connection = models.ForeignKey("connectors.Connection", on_delete=models.CASCADE, related_name="+")
    resource = models.CharField(max_length=64)
    digest = models.CharField(max_length=64)  # hex: SHA-256 of the memo version, mapping revision, Page.digest
    hashes = models.BinaryField()  # the records' source hashes, 16 bytes each, in the page's order

    class Meta:
        constraints = [models.UniqueConstraint(fields=["connection", "resource", "digest"], name="page_memo_unique")]

    def __str__(self) -> str:
        return f"{self.resource} page {self.digest[:12]}"

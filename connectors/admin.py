"""Connections in the admin: write-only secrets, health, re-authorisation state, a test-connection action."""

from __future__ import annotations

import logging

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import RelatedOnlyFieldListFilter
from django.urls import reverse
from django.utils.html import format_html

from core.redaction import redact
from sync import recovery, services
from sync.admin import OrgScopedAdmin
from sync.admin_views import reconnect_url
from sync.registry import KINDS, get_connector

from .models import Connection

log = logging.getLogger(__name__)
SECRET_PREFIX = "secret__"


def secret_field_names(kind: str | None) -> tuple[str, ...]:
    """The credential keys a kind declares; for a new connection (kind not chosen yet) every kind's."""
    kinds = [kind] if kind else list(KINDS)
    names: list[str] = []
    for k in kinds:
        try:
            fields = get_connector(k).secret_fields
        except Exception:  # a kind that does not load yet must not break the form
            log.warning("connector kind %r does not load; its secret fields are not offered", k, exc_info=True)
            continue
        names += [f for f in fields if f not in names]
    return tuple(names)


class ConnectionForm(forms.ModelForm):
    """Secrets are inputs that never render a value back (not even masked). Empty = keep the stored value."""

    base_url = forms.URLField(max_length=500, required=False, assume_scheme="https")
    clear_secrets = forms.BooleanField(required=False, help_text="Remove every stored secret of this connection.")
    confirm_reset = forms.BooleanField(
        required=False,
        label="Confirm: this points the connection at another upstream",
        help_text="Needed when the kind, base URL, store / account id or the account behind the credentials "
        "changes: every cursor of the connection is reset and the next runs read from the beginning.",
    )

    class Meta:
        model = Connection
        fields = [
            "organization",
            "kind",
            "name",
            "base_url",
            "external_account_id",
            "config",
            "is_active",
            "needs_reauth",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # What the connection points at before this edit (invariant 18): compared in clean().
        self.identity_before = services.upstream_identity(self.instance) if self.instance.pk else None
        self.identity_changed: list[str] = []
        kind = self.instance.kind if self.instance.pk else None
        stored = set(self.instance.credentials) if self.instance.pk and self.instance.has_credentials else set()
        kind_choices = [(k, k) for k in KINDS]
        if self.instance.kind and self.instance.kind not in KINDS:
            kind_choices.append((self.instance.kind, self.instance.kind))
        self.fields["kind"] = forms.ChoiceField(choices=kind_choices, initial=self.instance.kind or None)
        for name in secret_field_names(kind):
            self.fields[SECRET_PREFIX + name] = forms.CharField(
                label=name.replace("_", " "),
                required=False,
                strip=False,
                widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
                help_text="A value is stored; leave empty to keep it." if name in stored else "Not set.",
            )

    def secret_changes(self) -> dict[str, str]:
        return {
            key[len(SECRET_PREFIX) :]: value
            for key, value in self.cleaned_data.items()
            if key.startswith(SECRET_PREFIX) and value
        }

    def _apply_secrets(self, connection) -> None:
        if self.cleaned_data.get("clear_secrets"):
            connection.credentials = {}
        changes = self.secret_changes()
        if changes:
            connection.update_credentials(**changes)  # goes through the encrypted credentials setter

    def _post_clean(self):
        super()._post_clean()
        if self.identity_before is None or self.errors:
            return
        self._apply_secrets(self.instance)  # the instance as it would be saved, secrets included
        self.identity_changed = services.identity_changes(self.identity_before, self.instance)
        if self.identity_changed and not self.cleaned_data.get("confirm_reset"):
            self.add_error(
                "confirm_reset",
                f"This changes which upstream the connection reads ({', '.join(self.identity_changed)}). Its "
                "cursors will be reset and the next runs read everything again; rows of the old upstream not "
                "found there are held by the mass-deletion guard. Tick the box to confirm.",
            )

    def save(self, commit=True):
        connection = super().save(commit=False)
        if self.identity_before is None:
            self._apply_secrets(connection)  # (an edit applied them in _post_clean)
        if commit:
            connection.save()
        return connection


@admin.register(Connection)
class ConnectionAdmin(OrgScopedAdmin):
    form = ConnectionForm
    list_display = ["name", "kind", "organization", "is_active", "health_badge", "reauth_marker", "last_checked_at"]
    list_select_related = ["organization"]
    list_filter = ["kind", "health", "needs_reauth", "is_active", ("organization", RelatedOnlyFieldListFilter)]
    search_fields = ["name", "external_account_id", "base_url"]
    readonly_fields = [
        "health",
        "consecutive_failures",
        "last_error",
        "last_checked_at",
        "reconnect",
        "created_at",
        "updated_at",
    ]
    actions = ["test_connection"]
    autocomplete_fields = ["organization"]
    operator_can_add = operator_can_change = True

    def get_fieldsets(self, request, obj=None):
        form = self.get_form(request, obj)
        secrets = [name for name in form.base_fields if name.startswith(SECRET_PREFIX)]
        return [
            (
                None,
                {
                    "fields": [
                        "organization",
                        "kind",
                        "name",
                        "base_url",
                        "external_account_id",
                        "config",
                        "is_active",
                        *(["confirm_reset"] if obj is not None else []),
                    ]
                },
            ),
            (
                "Secrets (write-only)",
                {
                    "fields": [*secrets, "clear_secrets"],
                    "description": "Stored values are never shown. Type a new value to replace one.",
                },
            ),
            (
                "Health",
                {
                    "fields": [
                        "health",
                        "needs_reauth",
                        "reconnect",
                        "consecutive_failures",
                        "last_error",
                        "last_checked_at",
                        "created_at",
                        "updated_at",
                    ]
                },
            ),
        ]

    def get_form(self, request, obj=None, change=False, **kwargs):
        # The secret fields are added per instance in ConnectionForm.__init__; declare them here too so the
        # admin's field checks accept them in the fieldsets.
        kwargs["fields"] = None
        form = super().get_form(request, obj, change=change, **kwargs)
        extra = {
            SECRET_PREFIX + n: forms.CharField(required=False, widget=forms.PasswordInput(render_value=False))
            for n in secret_field_names(obj.kind if obj else None)
        }
        return type("ScopedConnectionForm", (form,), extra)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and getattr(form, "identity_changed", None):
            services.connection_reset_cursors(
                connection=obj,
                actor=request.user,
                reason=f"points at another upstream: {', '.join(form.identity_changed)}",
            )
            messages.warning(request, "The connection points at another upstream: its cursors were reset.")

    @admin.display(description="health", ordering="health")
    def health_badge(self, obj: Connection) -> str:
        css = {"ok": "success", "degraded": "partial", "down": "failed"}.get(obj.health, "idle")
        return format_html('<span class="sh-badge sh-{}">{}</span>', css, obj.get_health_display())

    @admin.display(description="re-authorisation", ordering="needs_reauth")
    def reauth_marker(self, obj: Connection) -> str:
        if not obj.needs_reauth:
            return ""
        return format_html('<a class="sh-action-required" href="{}">&#9888; reconnect</a>', reconnect_url(obj))

    @admin.display(description="reconnect")
    def reconnect(self, obj: Connection) -> str:
        if not obj or not obj.pk or not obj.needs_reauth:
            return "-"
        return format_html('<a href="{}">Reconnect {}</a>', reconnect_url(obj), obj.name)

    @admin.action(description="Test connection (one cheap authenticated call)")
    def test_connection(self, request, queryset):
        for connection in queryset:
            self._test_one(request, connection)

    def _test_one(self, request, connection: Connection) -> None:
        from .base import AuthError, UpstreamError

        try:
            said = get_connector(connection.kind).test_connection(connection)
        except AuthError as exc:
            services.connection_mark_needs_reauth(connection=connection, reason=str(exc), actor=request.user)
            messages.error(request, f"{connection.name}: authentication refused: {redact(exc)}")
        except UpstreamError as exc:
            services.connection_record_result(connection=connection, ok=False, error=str(exc))
            messages.error(request, f"{connection.name}: upstream said: {redact(exc)}")
        except Exception as exc:  # an unknown kind or a bug in a client: report it, never a 500
            messages.error(request, f"{connection.name}: test failed: {exc.__class__.__name__}: {redact(exc)}")
        else:
            services.connection_record_result(connection=connection, ok=True)
            messages.success(request, f"{connection.name}: {redact(said)}")
            if recovery.connection_reauthorized(connection=connection, actor=request.user):
                self._offer_resume(request, connection)

    def _offer_resume(self, request, connection: Connection) -> None:
        """Re-authorisation cleared: say so and link the run the auth failure stopped (its Retry page)."""
        stopped = recovery.stopped_runs(connection).first()
        if stopped is None:
            messages.success(request, f"{connection.name}: re-authorisation cleared; syncing is back on.")
            return
        messages.success(
            request,
            format_html(
                '{}: re-authorisation cleared. <a href="{}" data-testid="resume-run">Resume run #{} ({})</a>',
                connection.name,
                reverse("admin:sync_syncqueue_action", args=[stopped.pk, "retry"]),
                stopped.pk,
                stopped.resource,
            ),
        )

"""Alerts in the admin, organization-scoped like every tenant page: incidents and their notifications
(read-only: the evaluation writes them) and per-connection alert rules (the webhook URL write-only)."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.admin import RelatedOnlyFieldListFilter
from django.core.exceptions import ValidationError

from core.http import BlockedDestination, validate_outbound_url
from sync.admin import OrgScopedAdmin, ReadOnlyScopedAdmin

from .models import AlertRule, Incident, Notification


class NotificationInline(admin.TabularInline):
    model = Notification
    extra = 0
    can_delete = False
    fields = ["created_at", "event", "channel", "status", "recipients", "error"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Incident)
class IncidentAdmin(ReadOnlyScopedAdmin):
    list_display = ["opened_at", "connection", "resource", "kind", "state", "threshold", "alert_sent_at", "closed_at"]
    list_select_related = ["connection", "organization"]
    list_filter = ["state", "kind", ("connection", RelatedOnlyFieldListFilter)]
    search_fields = ["connection__name", "resource"]
    date_hierarchy = "opened_at"
    inlines = [NotificationInline]
    fields = [
        "organization",
        "connection",
        "resource",
        "kind",
        "state",
        "opened_at",
        "closed_at",
        "failures_in_row",
        "threshold",
        "last_success_at",
        "detail",
        "alert_sent_at",
        "recovery_sent_at",
    ]
    readonly_fields = fields


class AlertRuleForm(forms.ModelForm):
    webhook_url = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text='Slack-compatible incoming webhook (POST {"text": ...}). Stored encrypted, never shown; '
        "type a new one to replace it.",
    )
    clear_webhook = forms.BooleanField(required=False, help_text="Remove the stored webhook URL")

    class Meta:
        model = AlertRule
        fields = ["organization", "connection", "enabled", "email_enabled", "failure_streak", "freshness"]

    def clean_webhook_url(self):
        url = (self.cleaned_data.get("webhook_url") or "").strip()
        if url:
            try:
                validate_outbound_url(url)  # the one address rule at save; the guard checks again at every send
            except BlockedDestination as exc:
                raise ValidationError(str(exc)) from None
        return url

    def clean(self):
        data = super().clean()
        conn = data.get("connection")
        if (
            conn is not None
            and data.get("organization") is not None
            and conn.organization_id != data["organization"].pk
        ):
            raise ValidationError("The connection belongs to another organization.")
        return data

    def save(self, commit=True):
        rule = super().save(commit=False)
        if self.cleaned_data.get("clear_webhook"):
            rule.webhook_url = ""
        elif self.cleaned_data.get("webhook_url"):
            rule.webhook_url = self.cleaned_data["webhook_url"]
        if commit:
            rule.save()
        return rule


@admin.register(AlertRule)
class AlertRuleAdmin(OrgScopedAdmin):
    form = AlertRuleForm
    list_display = ["connection", "organization", "enabled", "email_enabled", "failure_streak", "freshness", "webhook"]
    list_select_related = ["connection", "organization"]
    list_filter = ["enabled", ("organization", RelatedOnlyFieldListFilter)]
    fields = [
        "organization",
        "connection",
        "enabled",
        "email_enabled",
        "failure_streak",
        "freshness",
        "webhook_url",
        "clear_webhook",
    ]
    operator_can_add = operator_can_change = operator_can_delete = True

    @admin.display(description="webhook", boolean=True)
    def webhook(self, obj: AlertRule) -> bool:
        return obj.has_webhook

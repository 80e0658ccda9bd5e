"""MDM -> S3 export in the admin: run history (read-only), "Run export now", schedule pause/resume, and the
ineligible-items cache of this web process.

Who may see and drive it: the export is one installation-wide job reading one MDM account, so it belongs to
the organization of that account (``services.export_connection().organization``). Superusers always; staff
only when they are members of that organization. Everyone else gets no module, a 403, and no dashboard link.
Runs are additionally organization-scoped like every tenant row (``OrgScopedAdmin``).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.urls import path
from django.utils.html import format_html

from core.redaction import redact
from sync.admin import ReadOnlyScopedAdmin

from . import selectors, services
from .models import ExportRun, RunStatus

CHANGELIST = "admin:mdm_exportrun_changelist"


def can_operate_export(request: HttpRequest) -> bool:
    """The API's rule (selectors.export_operable_by), asked once per request."""
    if not hasattr(request, "_synchub_mdm_can_operate"):
        request._synchub_mdm_can_operate = selectors.export_operable_by(request.user)
    return request._synchub_mdm_can_operate


def export_panel(request: HttpRequest) -> dict:
    """What the changelist shows above the runs."""
    return {
        "schedule": services.schedule_show(),
        "cache": selectors.ineligible_items_cache_status(),
        "last_run": selectors.export_last_run(),
    }


@admin.register(ExportRun)
class ExportRunAdmin(ReadOnlyScopedAdmin):
    list_display = [
        "run",
        "status_badge",
        "success",
        "finished_at",
        "duration_ms",
        "item_count",
        "s3_location",
        "etag",
        "error",
        "origin",
        "actor",
    ]
    list_select_related = ["actor"]
    list_filter = ["status", "origin"]
    search_fields = ["=etag", "error_type", "error_message"]
    readonly_fields = [f.name for f in ExportRun._meta.fields] + ["s3_location"]
    change_list_template = "admin/mdm/exportrun/change_list.html"
    show_full_result_count = False

    def has_module_permission(self, request):
        return can_operate_export(request)

    def has_view_permission(self, request, obj=None):
        return can_operate_export(request)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("run/", wrap(self._run_view), name="mdm_exportrun_run"),
            path("schedule/<str:action>/", wrap(self._schedule_view), name="mdm_exportrun_schedule"),
        ] + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        if not can_operate_export(request):
            raise PermissionDenied
        extra_context = {**(extra_context or {}), "mdm": export_panel(request)}
        return super().changelist_view(request, extra_context)

    def _run_view(self, request: HttpRequest) -> HttpResponse:
        """POST: queue one export for a worker (MDM + S3 with retries can take minutes; never in a request)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not can_operate_export(request):
            raise PermissionDenied
        run = services.mdm_export_enqueue(actor=request.user, origin="admin")
        messages.success(request, f"MDM export #{run.pk} queued; this list shows its outcome when it finishes.")
        return redirect(CHANGELIST)

    def _schedule_view(self, request: HttpRequest, action: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not can_operate_export(request):
            raise PermissionDenied
        change = {"pause": services.schedule_pause, "resume": services.schedule_resume}.get(action)
        if change is None:
            messages.error(request, "Unknown schedule action.")
            return redirect(CHANGELIST)
        shown = change(actor=request.user)
        state = "paused" if shown["paused"] else f"active, next run {shown['next_run'] or '-'}"
        messages.success(request, f"MDM export schedule {action}d: {state}.")
        return redirect(CHANGELIST)

    @admin.display(description="run", ordering="id")
    def run(self, obj: ExportRun) -> str:
        return f"#{obj.pk}"

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: ExportRun) -> str:
        return format_html('<span class="sh-badge sh-{}">{}</span>', obj.status, obj.get_status_display())

    @admin.display(description="success", boolean=True)
    def success(self, obj: ExportRun) -> bool | None:
        if obj.status in (RunStatus.QUEUED, RunStatus.RUNNING):
            return None
        return obj.status == RunStatus.SUCCESS

    @admin.display(description="error")
    def error(self, obj: ExportRun) -> str:
        if obj.status == RunStatus.SKIPPED:
            return obj.skip_reason
        if not obj.error_type:
            return ""
        return redact(f"{obj.error_stage}: {obj.error_type}: {obj.error_message}")[:300]

"""Runs in the admin: read only. Runs change through the engine and their model methods,
so the only writes here are the cancel and retry actions, which call those methods."""
from django.contrib import admin, messages

from accounts.admin import OrgScopedAdmin

from .models import Artifact, DecisionError, Run, RunEvent, Step


class ReadOnlyAdmin(OrgScopedAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    list_display = ["short_id", "workflow", "status", "mode", "trigger", "created_at", "cost_usd", "tokens"]
    list_filter = ["status", "mode", "trigger", ("organization", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["id", "workflow__slug"]
    list_select_related = ["workflow"]
    date_hierarchy = "created_at"
    actions = ["cancel", "retry"]

    @admin.display(description="Run", ordering="id")
    def short_id(self, run):
        return str(run.pk)[:8]

    @admin.display(description="Tokens")
    def tokens(self, run):
        return run.total_tokens

    def has_operate_permission(self, request):
        # The forms stay read only; acting on runs takes the model's change permission.
        return request.user.has_perm("runs.change_run")

    @admin.action(description="Cancel selected runs", permissions=["operate"])
    def cancel(self, request, queryset):
        cancelled = 0
        for run in queryset:
            if run.is_terminal:
                continue
            run.request_cancel(actor=request.user)
            cancelled += 1
        self.message_user(request, f"Asked {cancelled} run(s) to cancel.", messages.SUCCESS)

    @admin.action(description="Retry selected failed runs", permissions=["operate"])
    def retry(self, request, queryset):
        retried = 0
        for run in queryset:
            try:
                run.retry(actor=request.user)
            except DecisionError as exc:
                self.message_user(request, f"{run}: {exc}", messages.WARNING)
            else:
                retried += 1
        self.message_user(request, f"Retried {retried} run(s).", messages.SUCCESS)


@admin.register(Step)
class StepAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "run", "node_type", "status", "attempt", "started_at", "duration_ms", "cost_usd"]
    list_filter = ["status", "node_type"]
    search_fields = ["node_id", "run__id"]
    list_select_related = ["run__workflow"]


@admin.register(RunEvent)
class RunEventAdmin(ReadOnlyAdmin):
    org_field = "run__organization"
    list_display = ["run", "seq", "type", "created_at"]
    list_filter = ["type"]
    search_fields = ["run__id", "type"]
    list_select_related = ["run__workflow"]


@admin.register(Artifact)
class ArtifactAdmin(ReadOnlyAdmin):
    list_display = ["name", "run", "content_type", "size", "created_at"]
    search_fields = ["name", "run__id"]
    list_select_related = ["run__workflow"]

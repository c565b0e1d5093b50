import json

from django.contrib import admin, messages
from django.utils.html import format_html

from accounts.admin import OrgScopedAdmin

from .models import InvalidSpec, Workflow, WorkflowVersion


class VersionInline(admin.TabularInline):
    model = WorkflowVersion
    fields = ["number", "state", "message", "author", "created_at", "published_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Workflow)
class WorkflowAdmin(OrgScopedAdmin):
    list_display = ["name", "slug", "organization", "category", "status", "updated_at"]
    # Related-only: the plain filter would list every organization's name to every staff user.
    list_filter = ["status", "category", ("organization", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["name", "slug", "description"]
    readonly_fields = ["created_by", "created_at", "updated_at"]
    inlines = [VersionInline]
    actions = ["archive", "publish_latest_draft"]

    def get_readonly_fields(self, request, obj=None):
        # The organization is chosen once; moving a workflow would orphan its runs.
        return self.readonly_fields + (["organization"] if obj else [])

    @admin.action(description="Archive selected workflows")
    def archive(self, request, queryset):
        for workflow in queryset:
            workflow.archive(actor=request.user)
        self.message_user(request, f"Archived {queryset.count()} workflow(s).", messages.SUCCESS)

    @admin.action(description="Publish the latest draft")
    def publish_latest_draft(self, request, queryset):
        for workflow in queryset:
            try:
                version = workflow.publish(author=request.user)
            except (ValueError, InvalidSpec) as exc:
                self.message_user(request, f"{workflow}: {exc}", messages.WARNING)
            else:
                self.message_user(request, f"{workflow}: published v{version.number}.", messages.SUCCESS)


@admin.register(WorkflowVersion)
class WorkflowVersionAdmin(OrgScopedAdmin):
    list_display = ["workflow", "number", "state", "organization", "author", "created_at", "published_at"]
    list_filter = ["state", ("organization", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["workflow__name", "workflow__slug", "message", "spec_hash"]
    fields = ["organization", "workflow", "number", "state", "message", "author", "created_at",
              "published_at", "published_by", "spec_hash", "pretty_spec"]
    readonly_fields = fields
    actions = ["publish"]

    def has_add_permission(self, request):
        return False  # versions are made by saving a workflow, never by hand

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Spec")
    def pretty_spec(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.spec, indent=2, ensure_ascii=False))

    @admin.action(description="Publish selected drafts")
    def publish(self, request, queryset):
        for version in queryset.select_related("workflow"):
            try:
                version.workflow.publish(version, author=request.user)
            except InvalidSpec as exc:
                self.message_user(request, f"{version}: {exc}", messages.WARNING)
        self.message_user(request, "Done.", messages.SUCCESS)

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import PermissionDenied

from .models import ApiKey, AuditEvent, LastOwnerError, Membership, Organization, Role, User


def admin_organizations(user):
    """Organizations whose rows a staff user may manage in the admin (superusers: all)."""
    if user.is_superuser:
        return Organization.objects.all()
    return Organization.objects.filter(
        memberships__user=user, memberships__role__in=[Role.ADMIN, Role.OWNER]
    )


class OrgScopedAdmin(admin.ModelAdmin):
    """Staff who are not superusers see and act on their own organizations' rows only."""

    org_field = "organization"

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs
        return qs.filter(**{f"{self.org_field}__in": admin_organizations(request.user)})

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "organization" and not request.user.is_superuser:
            kwargs["queryset"] = admin_organizations(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "first_name", "last_name", "is_staff", "is_active", "date_joined"]
    list_filter = ["is_staff", "is_superuser", "is_active"]
    search_fields = ["email", "first_name", "last_name"]
    readonly_fields = ["last_login", "date_joined"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        ("Personal info", {"fields": ["first_name", "last_name"]}),
        ("Permissions", {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]}),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "password1", "password2"]})]


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(OrgScopedAdmin):
    org_field = "pk"
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    list_filter = ["created_at"]
    readonly_fields = ["created_at"]
    inlines = [MembershipInline]

    def get_queryset(self, request):
        qs = admin.ModelAdmin.get_queryset(self, request)
        return qs if request.user.is_superuser else qs.filter(pk__in=admin_organizations(request.user))


@admin.register(Membership)
class MembershipAdmin(OrgScopedAdmin):
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role", "organization"]
    search_fields = ["user__email", "organization__name", "organization__slug"]
    autocomplete_fields = ["user", "organization"]
    readonly_fields = ["created_at"]

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields + (["user", "organization"] if obj else [])

    def save_model(self, request, obj, form, change):
        # Role changes go through the model so the last-owner and owner-only rules hold.
        if change and "role" in form.changed_data:
            new_role = obj.role
            obj.role = form.initial["role"]
            if Role.OWNER in (new_role, obj.role) and not _may_manage_owners(request.user, obj.organization):
                raise PermissionDenied("Only owners grant or take away the owner role.")
            try:
                obj.change_role(new_role, actor=request.user)
            except LastOwnerError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            return
        if not change and obj.role == Role.OWNER and not _may_manage_owners(request.user, obj.organization):
            raise PermissionDenied("Only owners grant the owner role.")
        super().save_model(request, obj, form, change)

    def delete_model(self, request, obj):
        try:
            obj.remove(actor=request.user)
        except LastOwnerError as exc:
            self.message_user(request, str(exc), messages.ERROR)

    def delete_queryset(self, request, queryset):
        for membership in queryset:
            self.delete_model(request, membership)


def _may_manage_owners(user, organization):
    if user.is_superuser:
        return True
    membership = user.membership_in(organization)
    return membership is not None and membership.can("manage_owners")


@admin.register(ApiKey)
class ApiKeyAdmin(OrgScopedAdmin):
    list_display = ["name", "prefix", "organization", "role", "scopes", "status", "last_used_at", "expires_at"]
    list_filter = ["role", "organization", "revoked_at"]
    search_fields = ["name", "prefix", "organization__slug"]
    # Keys are issued from the members page or `manage.py create_api_key` (shown once there).
    # A key's powers are fixed when it is issued; revoke and issue another to change them.
    readonly_fields = ["organization", "prefix", "role", "scopes", "created_by", "created_at", "revoked_at",
                       "last_used_at"]
    exclude = ["key_hash"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke selected API keys")
    def revoke(self, request, queryset):
        active = [key for key in queryset if key.revoked_at is None]
        for key in active:
            key.revoke(actor=request.user)
        self.message_user(request, f"Revoked {len(active)} key(s).", messages.SUCCESS)


@admin.register(AuditEvent)
class AuditEventAdmin(OrgScopedAdmin):
    list_display = ["created_at", "organization", "actor", "action", "target"]
    list_filter = ["action", "organization"]
    search_fields = ["action", "target", "actor__email"]
    readonly_fields = ["organization", "actor", "action", "target", "data", "created_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

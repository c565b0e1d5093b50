"""The organization/role/scope permission every API view uses by default."""
from rest_framework import exceptions, permissions

# What each kind of request needs: (action in the role matrix, API key scope).
READ = ("view", "read")
WRITE = ("edit", "write")
EXECUTE = ("run", "execute")


class OrganizationPermission(permissions.BasePermission):
    """Requires an organization, a role that allows the action and, for keys, the scope.

    Views may set `action_permissions = {"publish": WRITE, "run": EXECUTE, ...}`; otherwise
    safe methods need READ and the rest WRITE.
    """

    def has_permission(self, request, view):
        if not request.user or not request.user.is_authenticated:
            raise exceptions.NotAuthenticated()
        access = request.access
        if access.organization is None:
            raise exceptions.PermissionDenied("You are not a member of any organization.")
        action, scope = self.required(request, view)
        if not access.has_scope(scope):
            raise exceptions.PermissionDenied(f"This API key lacks the '{scope}' scope.")
        if not access.can(action):
            raise exceptions.PermissionDenied(f"Your role ({access.role}) may not {action} here.")
        return True

    @staticmethod
    def required(request, view):
        mapping = getattr(view, "action_permissions", {})
        name = getattr(view, "action", None)
        if name in mapping:
            return mapping[name]
        return READ if request.method in permissions.SAFE_METHODS else WRITE

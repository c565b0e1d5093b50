"""The one mechanism that says which organization a request acts in, and with what role.

Pages get `request.access` from `CurrentOrganizationMiddleware` (session users, with the
organization they last switched to); the API gets it from `ApiKeyAuthentication` (the key's
organization, role and scopes) or from the session. Views, the API, consumers and admin
actions read tenant rows only through `Model.objects.for_org(request.access.organization)`.
"""
from dataclasses import dataclass, field

from .models import ApiKeyScope, Membership, role_can

SESSION_KEY = "organization_id"


@dataclass
class Access:
    organization: object = None
    role: str | None = None
    user: object = None
    api_key: object = None
    scopes: frozenset = field(default_factory=lambda: frozenset(ApiKeyScope.values))

    def can(self, action):
        return self.organization is not None and role_can(self.role, action)

    def has_scope(self, scope):
        return scope in self.scopes

    @property
    def actor(self):
        """The user to record as author of a change (an API key acts for its creator)."""
        if getattr(self.user, "is_authenticated", False) and getattr(self.user, "pk", None):
            return self.user
        return getattr(self.api_key, "created_by", None)

    @property
    def actor_id(self):
        """`actor`'s id, without loading the user."""
        if getattr(self.user, "is_authenticated", False) and getattr(self.user, "pk", None):
            return self.user.pk
        return getattr(self.api_key, "created_by_id", None)


NO_ACCESS = Access()


def for_session(request):
    user = request.user
    if not user.is_authenticated:
        return NO_ACCESS
    memberships = Membership.objects.filter(user=user).select_related("organization")
    wanted = request.session.get(SESSION_KEY)
    membership = None
    if wanted is not None:
        membership = memberships.filter(organization_id=wanted).first()
    if membership is None:
        membership = memberships.order_by("created_at").first()
    if membership is None:
        return Access(user=user)
    return Access(organization=membership.organization, role=membership.role, user=user)


def for_api_key(key):
    # No `user`: `actor` reads the key's creator only when a change is recorded.
    return Access(
        organization=key.organization,
        role=key.role,
        api_key=key,
        scopes=frozenset(key.scopes),
    )


def switch(request, organization):
    """Make `organization` the session's current one; the user must be a member."""
    if not Membership.objects.filter(user=request.user, organization=organization).exists():
        return False
    request.session[SESSION_KEY] = organization.pk
    request.access = for_session(request)
    return True

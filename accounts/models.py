"""Organizations, members and their roles, API keys and the audit trail.

Every tenant-owned row in the product carries an `organization` and is read through
`Model.objects.for_org(org)` (see `OrgQuerySet`); another organization's row is simply
not found.
"""
import functools
import hashlib
import secrets

from django.conf import settings
from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.db import DEFAULT_DB_ALIAS, connections, models, transaction
from django.utils import timezone
from django.utils.text import slugify

from agentflow.db import Columns, fetch_one


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create(self, email, password, **extra):
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email, password=None, **extra):
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create(email, password, **extra)

    def create_superuser(self, email, password=None, **extra):
        extra.update(is_staff=True, is_superuser=True)
        return self._create(email, password, **extra)


class User(AbstractUser):
    """A person; signs in with an email address."""

    username = None
    email = models.EmailField("email address", unique=True)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS = []

    objects = UserManager()

    def __str__(self):
        return self.email

    def membership_in(self, org):
        return self.memberships.filter(organization=org).first()


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    EDITOR = "editor", "Editor"
    ADMIN = "admin", "Admin"
    OWNER = "owner", "Owner"

    @classmethod
    def rank(cls, role):
        return _ROLE_RANK[role]

    @classmethod
    def at_least(cls, role, minimum):
        return _ROLE_RANK[role] >= _ROLE_RANK[minimum]


_ROLE_RANK = {Role.VIEWER: 0, Role.EDITOR: 1, Role.ADMIN: 2, Role.OWNER: 3}

# The role matrix: the least role that may do each thing. Viewers read; editors create,
# edit and run; admins also manage members, API keys and credentials; owners everything.
PERMISSIONS = {
    "view": Role.VIEWER,
    "edit": Role.EDITOR,
    "run": Role.EDITOR,
    "approve": Role.EDITOR,
    "manage_members": Role.ADMIN,
    "manage_api_keys": Role.ADMIN,
    "manage_credentials": Role.ADMIN,
    "manage_owners": Role.OWNER,
    "delete_organization": Role.OWNER,
}


def role_can(role, action):
    return role is not None and Role.at_least(role, PERMISSIONS[action])


class OrgQuerySet(models.QuerySet):
    """The one way tenant rows are read: `Model.objects.for_org(org)`."""

    def for_org(self, org):
        if org is None:
            return self.none()
        return self.filter(organization=org)


class Organization(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=60, unique=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @classmethod
    @transaction.atomic
    def create_with_owner(cls, name, owner, slug=None):
        org = cls.objects.create(name=name, slug=slug or cls.unique_slug(name))
        Membership.objects.create(organization=org, user=owner, role=Role.OWNER)
        AuditEvent.record(org, owner, "organization.created", org)
        return org

    @classmethod
    def unique_slug(cls, name):
        base = slugify(name)[:50] or "org"
        slug, n = base, 1
        while cls.objects.filter(slug=slug).exists():
            n += 1
            slug = f"{base}-{n}"
        return slug

    def owners(self):
        return self.memberships.filter(role=Role.OWNER)


class LastOwnerError(Exception):
    """Raised when a change would leave an organization without an owner."""


class Membership(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.EDITOR)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = OrgQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "user"], name="unique_membership")]
        ordering = ["organization", "user__email"]

    def __str__(self):
        return f"{self.user} in {self.organization} ({self.role})"

    def can(self, action):
        return role_can(self.role, action)

    def _is_last_owner(self):
        return self.role == Role.OWNER and not self.organization.owners().exclude(pk=self.pk).exists()

    @transaction.atomic
    def change_role(self, role, actor=None):
        locked = Membership.objects.select_for_update().get(pk=self.pk)
        # Lock every owner row so two demotions cannot both see "another owner exists".
        list(self.organization.owners().select_for_update())
        if locked._is_last_owner() and role != Role.OWNER:
            raise LastOwnerError("An organization needs at least one owner.")
        locked.role = self.role = role
        locked.save(update_fields=["role"])
        AuditEvent.record(self.organization, actor, "member.role_changed", self, {"role": role})

    @transaction.atomic
    def remove(self, actor=None):
        list(self.organization.owners().select_for_update())
        if self._is_last_owner():
            raise LastOwnerError("The last owner cannot be removed.")
        AuditEvent.record(self.organization, actor, "member.removed", self, {"user": self.user.email})
        self.delete()


class ApiKeyScope(models.TextChoices):
    READ = "read", "Read"
    WRITE = "write", "Write"
    EXECUTE = "execute", "Execute"


class ApiKey(models.Model):
    """A bearer key for the API. Only its SHA-256 hash is stored; the key is shown once."""

    PREFIX = "af_"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    # The first characters of the key, shown in lists so people can tell keys apart.
    prefix = models.CharField(max_length=16, db_index=True, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.EDITOR)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = OrgQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def hash(raw):
        return hashlib.sha256(raw.encode()).hexdigest()

    @classmethod
    def issue(cls, organization, name, scopes, role=Role.EDITOR, expires_at=None, created_by=None):
        """Create a key; returns (api_key, raw_key). The raw key is never stored."""
        unknown = set(scopes) - set(ApiKeyScope.values)
        if unknown or not scopes:
            raise ValueError(f"Scopes must be a non-empty subset of {', '.join(ApiKeyScope.values)}.")
        raw = cls.PREFIX + secrets.token_urlsafe(32)
        key = cls.objects.create(
            organization=organization,
            name=name,
            prefix=raw[:10],
            key_hash=cls.hash(raw),
            scopes=sorted(set(scopes)),
            role=role,
            expires_at=expires_at,
            created_by=created_by,
        )
        AuditEvent.record(organization, created_by, "api_key.created", key, {"scopes": key.scopes, "role": role})
        return key, raw

    @classmethod
    def authenticate(cls, raw):
        """The active key for `raw`, or None when unknown, revoked or expired."""
        key = cls._by_hash(cls.hash(raw))
        if key is None or not key.is_active:
            return None
        now = timezone.now()
        # Record use at most once a minute to keep hot keys from writing on every request.
        if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
            cls.objects.filter(pk=key.pk).update(last_used_at=now)
            key.last_used_at = now
        return key

    @classmethod
    def _by_hash(cls, key_hash):
        # Every API call comes through here: one hand-written join instead of the ORM's
        # select_related, which costs several times the query itself.
        connection = connections[DEFAULT_DB_ALIAS]
        keys, orgs = _key_columns(), _org_columns()
        row = fetch_one(
            f"SELECT {keys.sql(connection)}, {orgs.sql(connection)} FROM {cls._meta.db_table} k "
            f"JOIN {Organization._meta.db_table} o ON o.id = k.organization_id WHERE k.key_hash = %s",
            [key_hash],
        )
        if row is None:
            return None
        key = keys.load(row[: len(keys)], connection)
        key.organization = orgs.load(row[len(keys):], connection)
        return key

    @property
    def is_active(self):
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > timezone.now())

    @property
    def status(self):
        if self.revoked_at:
            return "revoked"
        if self.expires_at and self.expires_at <= timezone.now():
            return "expired"
        return "active"

    def has_scope(self, scope):
        return scope in self.scopes

    def revoke(self, actor=None):
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])
            AuditEvent.record(self.organization, actor, "api_key.revoked", self)


class AuditEvent(models.Model):
    """Who did what to which object, for the security-relevant changes of an organization."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="audit_events")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    action = models.CharField(max_length=64)
    target = models.CharField(max_length=200, blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.action} {self.target}"

    @classmethod
    def record(cls, organization, actor, action, target=None, data=None):
        return cls.objects.create(
            organization=organization,
            actor=actor if getattr(actor, "is_authenticated", False) else None,
            action=action,
            target=str(target or "")[:200],
            data=data or {},
        )


@functools.cache
def _key_columns():
    return Columns(ApiKey, "k")


@functools.cache
def _org_columns():
    return Columns(Organization, "o")

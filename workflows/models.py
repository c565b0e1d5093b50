"""Workflows and their immutable versions.

A workflow's definition lives in WorkflowVersion rows: each save makes a new draft version
with a frozen spec; publishing turns a draft into a published version. Versions are never
edited, so a run pinned to a version always sees the spec it started with.
"""
import functools
import json

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, models, transaction
from django.db.models import Max
from django.db.models.functions import Cast
from django.dispatch import receiver
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import AuditEvent, OrgQuerySet, Organization
from agentflow.db import Columns, fetch_one
from providers import credentials
from providers.models import Credential, CredentialUse, credential_uses

from . import spec as specs


class InvalidSpec(Exception):
    """The spec did not validate; `errors` lists every problem."""

    def __init__(self, errors):
        super().__init__(f"The workflow spec has {len(errors)} problem(s).")
        self.errors = errors


def validate(data, organization=None):
    """Validate a spec (dict, str or bytes) for an organization; returns the typed spec.

    Raises InvalidSpec with every error at once.
    """
    names = credentials.credential_names(organization) if organization is not None else None
    report = specs.validate_spec(data, limits=specs.Limits(**settings.AGENTFLOW_SPEC_LIMITS), credential_names=names)
    if not report.valid:
        raise InvalidSpec(report.errors)
    return report.spec


class Workflow(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        ARCHIVED = "archived", "Archived"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="workflows")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80)
    description = models.TextField(blank=True)
    category = models.CharField(max_length=60, blank=True, db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE, db_index=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OrgQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["organization", "slug"], name="unique_workflow_slug")]

    def __str__(self):
        return self.name

    @classmethod
    def unique_slug(cls, organization, name):
        base = slugify(name)[:70] or "workflow"
        slug, n = base, 1
        while cls.objects.filter(organization=organization, slug=slug).exists():
            n += 1
            slug = f"{base}-{n}"
        return slug

    @classmethod
    @transaction.atomic
    def create_with_spec(cls, organization, spec, *, author=None, message="", **fields):
        """A new workflow with `spec` as its first draft. Raises InvalidSpec, saving nothing."""
        typed = validate(spec, organization)
        fields.setdefault("name", typed.name)
        fields.setdefault("description", typed.description)
        if not fields.get("slug"):
            fields["slug"] = cls.unique_slug(organization, fields["name"])
        workflow = cls.objects.create(organization=organization, created_by=author, **fields)
        workflow._add_version(typed, author=author, message=message or "Created")
        return workflow

    def save_draft(self, spec, *, author=None, message=""):
        """A new draft version holding `spec`, or the latest version when its spec is the same."""
        typed = validate(spec, self.organization)
        with transaction.atomic():
            latest = self.versions.order_by("-number").first()
            if latest and latest.spec_hash == specs.spec_hash(typed.to_json()):
                return latest
            return self._add_version(typed, author=author, message=message)

    @transaction.atomic
    def publish(self, version=None, *, author=None, message=""):
        """Publish `version` (default: the latest version); returns it. Publishing twice is a no-op.

        Without `version`, an already published latest version is returned as is: an older
        draft left behind is never published by accident. ValueError when there is no version.
        """
        if version is None:
            version = self.versions.order_by("-number").first()
            if version is None:
                raise ValueError("There is no draft to publish.")
        version = WorkflowVersion.objects.select_for_update().get(pk=version.pk, workflow=self)
        if version.state == WorkflowVersion.State.PUBLISHED:
            return version
        validate(version.spec, self.organization)  # credentials may have gone since the draft
        version.state = WorkflowVersion.State.PUBLISHED
        version.published_at = timezone.now()
        version.published_by = author
        if message:
            version.message = message
        version.save(update_fields=["state", "published_at", "published_by", "message"])
        AuditEvent.record(self.organization, author, "workflow.published", self, {"version": version.number})
        return version

    def _add_version(self, typed, *, author, message):
        data = typed.to_json()
        for _ in range(3):
            number = (self.versions.aggregate(n=Max("number"))["n"] or 0) + 1
            try:
                with transaction.atomic():
                    return WorkflowVersion.objects.create(
                        organization=self.organization,
                        workflow=self,
                        number=number,
                        spec=data,
                        spec_hash=specs.spec_hash(data),
                        message=message,
                        author=author,
                    )
            except IntegrityError:
                continue  # another save took this number; take the next one
        raise IntegrityError("Could not allocate a version number.")

    def archive(self, actor=None):
        if self.status != self.Status.ARCHIVED:
            self.status = self.Status.ARCHIVED
            self.save(update_fields=["status", "updated_at"])
            AuditEvent.record(self.organization, actor, "workflow.archived", self)

    def latest_version(self):
        return self.versions.order_by("-number").first()

    def latest_published(self):
        return self.versions.filter(state=WorkflowVersion.State.PUBLISHED).order_by("-number").first()


class WorkflowVersion(models.Model):
    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField(editable=False)
    state = models.CharField(max_length=16, choices=State.choices, default=State.DRAFT, db_index=True)
    spec = models.JSONField(editable=False)
    spec_hash = models.CharField(max_length=64, editable=False)
    message = models.CharField(max_length=500, blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    published_at = models.DateTimeField(null=True, blank=True, editable=False)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = OrgQuerySet.as_manager()

    class Meta:
        ordering = ["workflow", "-number"]
        constraints = [models.UniqueConstraint(fields=["workflow", "number"], name="unique_version_number")]

    def __str__(self):
        return f"{self.workflow} v{self.number} ({self.state})"

    PUBLISH_FIELDS = frozenset({"state", "published_at", "published_by", "message"})

    def save(self, *args, **kwargs):
        if self.pk:
            update_fields = kwargs.get("update_fields")
            # Only publish() writes an existing row: the publish fields of a stored draft.
            if update_fields is None or not set(update_fields) <= self.PUBLISH_FIELDS or (
                WorkflowVersion.objects.filter(pk=self.pk, state=self.State.PUBLISHED).exists()
            ):
                raise ValueError("Workflow versions are immutable; publish() is the only change.")
        super().save(*args, **kwargs)

    @property
    def is_published(self):
        return self.state == self.State.PUBLISHED

    def typed_spec(self):
        return specs.WorkflowSpec.model_validate(self.spec)

    @classmethod
    def latest_published_for(cls, organization_id, slug):
        """The latest published version of the organization's active workflow `slug`, with
        its workflow attached and its spec deferred; None when there is none.

        Starting a run asks this on every call, so it is one hand-written join."""
        connection = connections[DEFAULT_DB_ALIAS]
        versions, workflows = _version_columns(), _workflow_columns()
        row = fetch_one(
            f"SELECT {versions.sql(connection)}, {workflows.sql(connection)} FROM {cls._meta.db_table} v "
            f"JOIN {Workflow._meta.db_table} w ON w.id = v.workflow_id "
            "WHERE w.organization_id = %s AND w.slug = %s AND w.status = %s AND v.state = %s "
            "ORDER BY v.number DESC LIMIT 1",
            [organization_id, slug, Workflow.Status.ACTIVE, cls.State.PUBLISHED],
        )
        if row is None:
            return None
        version = versions.load(row[: len(versions)], connection)
        version.workflow = workflows.load(row[len(versions):], connection)
        return version

    def diff(self, other):
        """What changed from this version to `other` (see workflows.diff)."""
        from .diff import diff_specs

        return diff_specs(self.spec, other.spec)


@functools.cache
def _version_columns():
    return Columns(WorkflowVersion, "v", exclude=("spec",))


@functools.cache
def _workflow_columns():
    return Columns(Workflow, "w")


@receiver(credential_uses, sender=Credential, dispatch_uid="workflows.credential_uses")
def _published_uses(credential, **kwargs):
    """Published versions of workflows that are not archived whose sources name `credential`
    (archiving a workflow is how its published versions let go of a credential)."""
    versions = (WorkflowVersion.objects
                .filter(organization_id=credential.organization_id, state=WorkflowVersion.State.PUBLISHED)
                .exclude(workflow__status=Workflow.Status.ARCHIVED)
                .annotate(text=Cast("spec", models.TextField())).filter(text__contains=json.dumps(credential.name))
                .select_related("workflow"))
    return [CredentialUse(v.workflow.name, v.number, v.workflow_id) for v in versions
            if any(s.get("credential") == credential.name for s in v.spec.get("sources", {}).values())]

"""Workflows REST API: workflows, versions, diff, import/export and stateless validation."""
import re

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import IntegrityError, transaction
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import include, path
from django_filters import rest_framework as filters
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action, api_view, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from accounts.api import OrgScopedMixin, StrictSerializerMixin
from accounts.permissions import READ, WRITE, OrganizationPermission
from agentflow.api import ApiError

from . import spec as specs
from .models import InvalidSpec, Workflow, WorkflowVersion


# ASCII digits only, and no more than an int column holds: `\d` and str.isdigit() also
# accept characters such as "²" that int() refuses.
VERSION_NUMBER = r"[0-9]{1,9}"


def invalid_spec_error(exc):
    return ApiError(str(exc), code="invalid_spec", details=[e.as_dict() for e in exc.errors])


def _version_in_path(number):
    if not re.fullmatch(VERSION_NUMBER, number):
        raise Http404
    return int(number)


def _version_number(value, name):
    if not re.fullmatch(VERSION_NUMBER, value):
        raise ApiError(f"{name} must be a version number.", code="invalid")
    return int(value)


class VersionSummarySerializer(serializers.ModelSerializer):
    author = serializers.StringRelatedField()

    class Meta:
        model = WorkflowVersion
        fields = ["number", "state", "spec_hash", "message", "author", "created_at", "published_at"]


class VersionSerializer(VersionSummarySerializer):
    class Meta(VersionSummarySerializer.Meta):
        fields = VersionSummarySerializer.Meta.fields + ["spec"]


class WorkflowSerializer(StrictSerializerMixin, serializers.ModelSerializer):
    slug = serializers.SlugField(max_length=80, required=False)
    spec = serializers.JSONField(write_only=True, required=False)
    message = serializers.CharField(write_only=True, required=False, allow_blank=True, max_length=500)
    latest_version = serializers.SerializerMethodField()
    published_version = serializers.SerializerMethodField()

    class Meta:
        model = Workflow
        fields = [
            "id", "slug", "name", "description", "category", "status", "created_at", "updated_at",
            "latest_version", "published_version", "spec", "message",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]
        extra_kwargs = {"name": {"required": False}}

    def get_latest_version(self, obj):
        version = obj.latest_version()
        return VersionSummarySerializer(version).data if version else None

    def get_published_version(self, obj):
        version = obj.latest_published()
        return version.number if version else None

    def validate(self, attrs):
        org = self.context["request"].access.organization
        if self.instance is None and "spec" not in attrs:
            raise serializers.ValidationError({"spec": ["A workflow is created with its spec."]})
        if self.instance is not None and "spec" in attrs:
            raise serializers.ValidationError({"spec": ["Save a new version at versions/ to change the spec."]})
        slug = attrs.get("slug")
        if slug and Workflow.objects.for_org(org).filter(slug=slug).exclude(pk=getattr(self.instance, "pk", None)).exists():
            raise serializers.ValidationError({"slug": ["A workflow with this slug already exists."]})
        return attrs

    def create(self, validated):
        request = self.context["request"]
        spec = validated.pop("spec")
        message = validated.pop("message", "")
        organization = validated.pop("organization")
        try:
            return Workflow.create_with_spec(
                organization, spec, author=request.access.actor, message=message, **validated
            )
        except InvalidSpec as exc:
            raise invalid_spec_error(exc)

    def update(self, instance, validated):
        validated.pop("message", None)
        return super().update(instance, validated)


class DraftSerializer(StrictSerializerMixin, serializers.Serializer):
    spec = serializers.JSONField()
    message = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")


class PublishSerializer(StrictSerializerMixin, serializers.Serializer):
    message = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")


class ImportParamsSerializer(serializers.Serializer):
    """The query string of import/: checked like the fields of a created workflow."""

    slug = serializers.SlugField(max_length=80, required=False, allow_blank=True)
    category = serializers.CharField(max_length=60, required=False, allow_blank=True, default="")
    publish = serializers.BooleanField(required=False, default=False)


class WorkflowFilter(filters.FilterSet):
    class Meta:
        model = Workflow
        fields = ["status", "category"]


class WorkflowViewSet(OrgScopedMixin, mixins.ListModelMixin, mixins.CreateModelMixin,
                      mixins.RetrieveModelMixin, mixins.UpdateModelMixin, viewsets.GenericViewSet):
    """Workflows of the current organization, addressed by slug."""

    queryset = Workflow.objects.all()
    serializer_class = WorkflowSerializer
    lookup_field = "slug"
    filterset_class = WorkflowFilter
    search_fields = ["name", "slug", "description", "category"]
    # `versions` is absent on purpose: it serves GET (read) and POST (a new draft, a write),
    # and the default maps safe methods to READ and the rest to WRITE.
    action_permissions = {"diff": READ, "export": READ, "version_detail": READ,
                          "archive": WRITE, "publish": WRITE, "publish_version": WRITE, "import_spec": WRITE}

    def get_queryset(self):
        return super().get_queryset().prefetch_related("versions")

    @action(detail=True, methods=["post"])
    def archive(self, request, slug=None):
        workflow = self.get_object()
        workflow.archive(actor=request.access.actor)
        return Response(self.get_serializer(workflow).data)

    @action(detail=True, methods=["get", "post"])
    def versions(self, request, slug=None):
        """GET: every version, newest first. POST {spec, message}: save a new draft."""
        workflow = self.get_object()
        if request.method == "GET":
            versions = workflow.versions.order_by("-number")
            return Response({"results": VersionSummarySerializer(versions, many=True).data})
        body = DraftSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        previous = workflow.latest_version()
        try:
            version = workflow.save_draft(body.validated_data["spec"], author=request.access.actor,
                                          message=body.validated_data["message"])
        except InvalidSpec as exc:
            raise invalid_spec_error(exc)
        created = previous is None or version.pk != previous.pk
        return Response(VersionSerializer(version).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @action(detail=True, methods=["get"], url_path=r"versions/(?P<number>[0-9]+)")
    def version_detail(self, request, slug=None, number=None):
        version = get_object_or_404(self.get_object().versions, number=_version_in_path(number))
        return Response(VersionSerializer(version).data)

    @action(detail=True, methods=["post"], url_path=r"versions/(?P<number>[0-9]+)/publish")
    def publish_version(self, request, slug=None, number=None):
        workflow = self.get_object()
        return self._publish(request, workflow, get_object_or_404(workflow.versions, number=_version_in_path(number)))

    @action(detail=True, methods=["post"])
    def publish(self, request, slug=None):
        """Publish the latest draft."""
        return self._publish(request, self.get_object(), None)

    def _publish(self, request, workflow, version):
        body = PublishSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            version = workflow.publish(version, author=request.access.actor, message=body.validated_data["message"])
        except InvalidSpec as exc:
            raise invalid_spec_error(exc)
        except ValueError as exc:
            raise ApiError(str(exc), code="no_draft", status=409)
        return Response(VersionSerializer(version).data)

    @action(detail=True, methods=["get"])
    def diff(self, request, slug=None):
        """?from=N&to=M (default: the two latest versions)."""
        workflow = self.get_object()
        versions = list(workflow.versions.order_by("-number"))
        params = request.query_params
        to_number = _version_number(params["to"], "to") if "to" in params else (versions[0].number if versions else 0)
        if "from" in params:
            from_number = _version_number(params["from"], "from")
        else:
            from_number = versions[1].number if len(versions) > 1 else to_number
        before = get_object_or_404(workflow.versions, number=from_number)
        after = get_object_or_404(workflow.versions, number=to_number)
        return Response({"from": before.number, "to": after.number, **before.diff(after)})

    @action(detail=True, methods=["get"])
    def export(self, request, slug=None):
        """The spec JSON of ?version=N (default: latest published, else latest)."""
        workflow = self.get_object()
        number = request.query_params.get("version")
        if number is not None:
            version = get_object_or_404(workflow.versions, number=_version_number(number, "version"))
        else:
            version = workflow.latest_published() or workflow.latest_version()
            if version is None:
                raise ApiError("This workflow has no version.", code="not_found", status=404)
        response = JsonResponse(version.spec, json_dumps_params={"indent": 2, "ensure_ascii": False})
        response["Content-Disposition"] = f'attachment; filename="{workflow.slug}-v{version.number}.json"'
        return response

    @action(detail=False, methods=["post"], url_path="import")
    def import_spec(self, request):
        """A spec as the JSON body or as an uploaded `file`; ?slug=&category=&publish=true."""
        upload = request.FILES.get("file")
        if upload is not None:
            limit = settings.AGENTFLOW_SPEC_LIMITS["body_bytes"]
            if upload.size > limit:
                raise ApiError(f"The file is larger than {limit} bytes.", code="body_too_large", status=413)
            data = upload.read()
        else:
            data = request.data
        params = ImportParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        org = request.access.organization
        slug = params.validated_data.get("slug") or None
        conflict = ApiError("A workflow with this slug already exists.", code="conflict", status=409)
        if slug and Workflow.objects.for_org(org).filter(slug=slug).exists():
            raise conflict
        try:
            with transaction.atomic():
                workflow = Workflow.create_with_spec(
                    org, data, author=request.access.actor, message="Imported",
                    slug=slug, category=params.validated_data["category"],
                )
                if params.validated_data["publish"]:
                    workflow.publish(author=request.access.actor)
        except InvalidSpec as exc:
            raise invalid_spec_error(exc)
        except IntegrityError:
            raise conflict  # another import took the slug since the check above
        return Response(WorkflowSerializer(workflow, context={"request": request}).data, status=status.HTTP_201_CREATED)


class _ReadPermission(OrganizationPermission):
    """A POST that changes nothing: reading is enough."""

    @staticmethod
    def required(request, view):
        return READ


@api_view(["POST"])
@permission_classes([_ReadPermission])
def validate_spec(request):
    """Stateless: a spec in, {valid, errors} out. Reads the raw body so limits apply first."""
    try:
        raw = request._request.body
    except RequestDataTooBig:
        raise ApiError("The request body is too large.", code="body_too_large", status=413)
    report = specs.validate_spec(raw, limits=specs.Limits(**settings.AGENTFLOW_SPEC_LIMITS))
    return Response({"valid": report.valid, "errors": [e.as_dict() for e in report.errors]})


@api_view(["GET"])
@permission_classes([AllowAny])
def spec_schema(request):
    """The JSON Schema of WorkflowSpec v1."""
    return Response(specs.WorkflowSpec.json_schema())


router = DefaultRouter()
router.register("workflows", WorkflowViewSet, basename="workflow")

urlpatterns = [
    path("spec/validate", validate_spec, name="spec-validate"),
    path("spec/validate/", validate_spec),
    path("spec/schema", spec_schema, name="spec-schema"),
    path("spec/schema/", spec_schema),
    path("", include(router.urls)),
]

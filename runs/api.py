"""Runs REST API: start runs, read them with their steps and events, control them
(cancel, approve, reject, retry) and download their artifacts.

Starting answers at once with the queued run; a worker picks it up after commit. Every
lookup goes through the current organization, so another organization's run is a 404.
"""
import uuid

from django.http import FileResponse, Http404
from django.urls import reverse
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from accounts.api import OrgScopedMixin, StrictSerializerMixin
from accounts.permissions import EXECUTE, READ
from agentflow.api import ApiError
from workflows.models import Workflow, WorkflowVersion

from .engine import spec_of
from .models import ApproverRoleRequired, Artifact, DecisionError, Run, Step

APPROVE = ("approve", "execute")
EVENTS_PER_CALL = 1000


def _run_urls(run):
    # One reverse, then plain joins: every action lives under the run's detail URL.
    base = reverse("api:run-detail", kwargs={"pk": run.pk})
    return {
        "self": base,
        "events": f"{base}events/",
        "page": f"/runs/{run.pk}/",
        "cancel": f"{base}cancel/",
        "approve": f"{base}approve/",
        "reject": f"{base}reject/",
        "retry": f"{base}retry/",
        "artifacts": f"{base}artifacts/",
    }


class _TokensSerializer(serializers.Serializer):
    input = serializers.IntegerField()
    output = serializers.IntegerField()
    total = serializers.IntegerField()


class _StepTimingsSerializer(serializers.Serializer):
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class _RunTimingsSerializer(_StepTimingsSerializer):
    created_at = serializers.DateTimeField()
    duration_ms = serializers.IntegerField(allow_null=True)


class _RunUrlsSerializer(serializers.Serializer):
    self = serializers.CharField()
    events = serializers.CharField()
    page = serializers.CharField()
    cancel = serializers.CharField()
    approve = serializers.CharField()
    reject = serializers.CharField()
    retry = serializers.CharField()
    artifacts = serializers.CharField()


class StepSerializer(serializers.ModelSerializer):
    timings = serializers.SerializerMethodField()
    duration_ms = serializers.IntegerField(read_only=True, allow_null=True)
    tokens = serializers.SerializerMethodField()
    cost = serializers.DecimalField(source="cost_usd", max_digits=12, decimal_places=6)

    class Meta:
        model = Step
        fields = [
            "node_id", "node_type", "map_index", "attempt", "status", "input", "output", "error", "timings",
            "duration_ms", "tokens", "tokens_estimated", "cost", "source", "provider", "model", "queue_wait_ms",
        ]

    @extend_schema_field(_StepTimingsSerializer)
    def get_timings(self, step):
        return {"started_at": _iso(step.started_at), "finished_at": _iso(step.finished_at)}

    @extend_schema_field(_TokensSerializer)
    def get_tokens(self, step):
        return {"input": step.input_tokens, "output": step.output_tokens,
                "total": step.input_tokens + step.output_tokens}


def _iso(value):
    return serializers.DateTimeField().to_representation(value) if value else None


class RunSerializer(serializers.ModelSerializer):
    workflow = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    version = serializers.SlugRelatedField(slug_field="number", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="email", read_only=True)
    tokens = serializers.SerializerMethodField()
    cost = serializers.DecimalField(source="cost_usd", max_digits=12, decimal_places=6)
    timings = serializers.SerializerMethodField()
    urls = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = [
            "id", "workflow", "version", "status", "mode", "trigger", "error", "created_by", "created_at",
            "tokens", "cost", "step_count", "timings", "urls",
        ]

    @extend_schema_field(_TokensSerializer)
    def get_tokens(self, run):
        return {"input": run.input_tokens, "output": run.output_tokens, "total": run.total_tokens}

    @extend_schema_field(_RunTimingsSerializer)
    def get_timings(self, run):
        duration = run.duration_s
        return {
            "created_at": _iso(run.created_at),
            "started_at": _iso(run.started_at),
            "finished_at": _iso(run.finished_at),
            "duration_ms": int(duration * 1000) if duration is not None else None,
        }

    @extend_schema_field(_RunUrlsSerializer)
    def get_urls(self, run):
        return _run_urls(run)


def run_summary(run):
    """What RunSerializer gives for `run`, built by hand for the start-run answer, where
    building a ModelSerializer's fields costs more than the rest of the request."""
    duration = run.duration_s
    created_by = run.created_by.email if run.created_by_id else None
    return {
        "id": str(run.pk),
        "workflow": run.workflow.slug,
        "version": run.version.number,
        "status": run.status,
        "mode": run.mode,
        "trigger": run.trigger,
        "error": run.error,
        "created_by": created_by,
        "created_at": _iso(run.created_at),
        "tokens": {"input": run.input_tokens, "output": run.output_tokens, "total": run.total_tokens},
        "cost": f"{run.cost_usd:.6f}",
        "step_count": run.step_count,
        "timings": {
            "created_at": _iso(run.created_at),
            "started_at": _iso(run.started_at),
            "finished_at": _iso(run.finished_at),
            "duration_ms": int(duration * 1000) if duration is not None else None,
        },
        "urls": _run_urls(run),
    }


class RunDetailSerializer(RunSerializer):
    steps = StepSerializer(many=True, read_only=True)

    class Meta(RunSerializer.Meta):
        fields = RunSerializer.Meta.fields + ["inputs", "outputs", "cancel_requested_at", "last_seq", "steps"]


class StartRunSerializer(StrictSerializerMixin, serializers.Serializer):
    workflow = serializers.SlugField(max_length=80)
    version = serializers.IntegerField(min_value=1, max_value=2**31 - 1, required=False)
    inputs = serializers.JSONField(required=False, default=dict)
    mode = serializers.ChoiceField(choices=Run.Mode.choices, default=Run.Mode.FULL)

    def validate(self, attrs):
        """Resolves the workflow and version; adds them as `workflow` and `version` objects."""
        org = self.context["request"].access.organization
        if attrs.get("version") is None:
            # The common case in one query: an active workflow's latest published version.
            version = WorkflowVersion.latest_published_for(org.pk, attrs["workflow"])
            if version is not None:
                return {**attrs, "workflow": version.workflow, "version": version}
        workflow = Workflow.objects.for_org(org).filter(slug=attrs["workflow"]).first()
        if workflow is None:
            raise _invalid("workflow", f"There is no workflow '{attrs['workflow']}' in this organization.",
                           "not_found")
        if workflow.status != Workflow.Status.ACTIVE:
            raise ApiError(f"The workflow '{workflow.slug}' is {workflow.status}; it cannot start runs.",
                           code="workflow_inactive", status=409)
        number = attrs.get("version")
        if number is None:
            version = workflow.latest_published()
            if version is None:
                raise ApiError(f"The workflow '{workflow.slug}' has no published version; publish one, "
                               "or pass a draft version with mode \"test\".", code="not_published", status=409)
        else:
            version = workflow.versions.filter(number=number).first()
            if version is None:
                raise _invalid("version", f"The workflow '{workflow.slug}' has no version {number}.", "not_found")
            if version.state == WorkflowVersion.State.DRAFT and attrs["mode"] != Run.Mode.TEST:
                raise _invalid("version", f"Version {number} is a draft; drafts run only in mode \"test\".",
                               "draft")
        return {**attrs, "workflow": workflow, "version": version}


def _invalid(field, message, code):
    return serializers.ValidationError({field: [serializers.ErrorDetail(message, code=code)]})


class DecisionSerializer(StrictSerializerMixin, serializers.Serializer):
    node = serializers.CharField(max_length=64)
    comment = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class EventsQuerySerializer(serializers.Serializer):
    after = serializers.IntegerField(min_value=0, max_value=2**63 - 1, default=0)
    limit = serializers.IntegerField(min_value=1, max_value=EVENTS_PER_CALL, default=EVENTS_PER_CALL)


class ArtifactSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = Artifact
        fields = ["name", "content_type", "size", "sha256", "created_at", "url"]

    def get_url(self, artifact) -> str:
        return reverse("api:run-artifact-download", kwargs={"pk": artifact.run_id, "name": artifact.name})


class _ArtifactListSerializer(serializers.Serializer):
    results = ArtifactSerializer(many=True)


class _EventSerializer(serializers.Serializer):
    run = serializers.UUIDField()
    seq = serializers.IntegerField()
    type = serializers.CharField()
    data = serializers.JSONField()
    at = serializers.DateTimeField()


class _EventsSerializer(serializers.Serializer):
    results = _EventSerializer(many=True)
    last_seq = serializers.IntegerField()
    more = serializers.BooleanField()
    status = serializers.ChoiceField(choices=Run.Status.choices)


class RunFilter(filters.FilterSet):
    workflow = filters.CharFilter(field_name="workflow__slug")
    status = filters.ChoiceFilter(choices=Run.Status.choices)
    mode = filters.ChoiceFilter(choices=Run.Mode.choices)
    trigger = filters.ChoiceFilter(choices=Run.Trigger.choices)
    created_after = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Run
        fields = ["workflow", "status", "mode", "trigger", "created_after", "created_before"]


class RunViewSet(OrgScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Runs of the current organization, newest first."""

    queryset = Run.objects.all()
    serializer_class = RunSerializer
    filterset_class = RunFilter
    action_permissions = {
        "create": EXECUTE, "cancel": EXECUTE, "retry": EXECUTE, "approve": APPROVE, "reject": APPROVE,
        "events": READ, "artifacts": READ, "artifact_download": READ,
    }

    def get_queryset(self):
        qs = super().get_queryset().select_related("workflow", "version", "created_by")
        if self.action == "retrieve":
            qs = qs.prefetch_related("steps")
        return qs

    def get_serializer_class(self):
        return RunDetailSerializer if self.action == "retrieve" else RunSerializer

    def get_object(self):
        # A malformed id names no run: 404, not a database error.
        try:
            uuid.UUID(str(self.kwargs[self.lookup_field]))
        except ValueError:
            raise Http404
        return super().get_object()

    def _detail(self, run, status_code=status.HTTP_200_OK):
        run = self.get_queryset().prefetch_related("steps").get(pk=run.pk)
        return Response(RunDetailSerializer(run, context=self.get_serializer_context()).data, status=status_code)

    @extend_schema(request=StartRunSerializer, responses={201: RunSerializer})
    def create(self, request):
        """Start a run: {workflow, version?, inputs, mode?}. Answers 201 with the queued run."""
        body = StartRunSerializer(data=request.data, context={"request": request})
        body.is_valid(raise_exception=True)
        data = body.validated_data
        version = data["version"]
        clean, problems = spec_of(version).check_inputs(data["inputs"])
        if problems:
            raise ApiError(f"The inputs have {len(problems)} problem(s).", code="invalid_inputs", details=problems)
        run = Run.start(data["workflow"], version, clean, mode=data["mode"], trigger=Run.Trigger.API,
                        user_id=request.access.actor_id)
        response = Response(run_summary(run), status=status.HTTP_201_CREATED)
        response["Location"] = _run_urls(run)["self"]
        return response

    @extend_schema(parameters=[EventsQuerySerializer], responses=_EventsSerializer)
    @action(detail=True, methods=["get"])
    def events(self, request, pk=None):
        """Events after ?after=SEQ (default 0), oldest first, at most ?limit= (≤ 1000).

        `last_seq` is the seq of the last event returned (or `after` when none): pass it as
        the next `after`. `more` says whether further events were already there.
        """
        # The status is read before the events: a terminal status means the page holds
        # everything up to the run's last event.
        run = self.get_object()
        query = EventsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        after, limit = query.validated_data["after"], query.validated_data["limit"]
        found = list(run.events.filter(seq__gt=after).order_by("seq")[: limit + 1])
        page = found[:limit]
        return Response({
            "results": [event.as_message() for event in page],
            "last_seq": page[-1].seq if page else after,
            "more": len(found) > limit,
            "status": run.status,
        })

    @extend_schema(request=None, responses=RunDetailSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel: at once when queued or waiting; a running run stops at its next check."""
        run = self.get_object()
        if run.status in (Run.Status.SUCCEEDED, Run.Status.FAILED):
            raise ApiError(f"The run already {run.status}; there is nothing to cancel.", code="run_finished",
                           status=409)
        run.request_cancel(actor=request.access.actor)
        return self._detail(run)

    @extend_schema(request=DecisionSerializer, responses=RunDetailSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        return self._decide(request, approved=True)

    @extend_schema(request=DecisionSerializer, responses=RunDetailSerializer)
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        return self._decide(request, approved=False)

    def _decide(self, request, approved):
        run = self.get_object()
        body = DecisionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        node_id = body.validated_data["node"]
        try:
            run.decide(node_id, approved, body.validated_data["comment"], actor=request.access.actor,
                       role=request.access.role)
        except ApproverRoleRequired as exc:
            raise exceptions.PermissionDenied(f"{exc}.")
        except DecisionError as exc:
            raise ApiError(str(exc), code="decision_conflict", status=409)
        return self._detail(run)

    @extend_schema(request=None, responses=RunDetailSerializer)
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        """Run a failed or cancelled run again from its unfinished steps."""
        run = self.get_object()
        try:
            run.retry(actor=request.access.actor)
        except DecisionError as exc:
            raise ApiError(str(exc), code="not_retryable", status=409)
        return self._detail(run)

    @extend_schema(responses=_ArtifactListSerializer)
    @action(detail=True, methods=["get"])
    def artifacts(self, request, pk=None):
        run = self.get_object()
        return Response({"results": ArtifactSerializer(run.artifacts.order_by("name"), many=True).data})

    @extend_schema(operation_id="runs_artifact_download",
                   responses={(200, "*/*"): OpenApiResponse(OpenApiTypes.BINARY, description="The file.")})
    @action(detail=True, methods=["get"], url_path=r"artifacts/(?P<name>.+)")
    def artifact_download(self, request, pk=None, name=None):
        run = self.get_object()
        artifact = run.artifacts.filter(name=name).first()
        if artifact is None:
            raise Http404
        return FileResponse(artifact.file.open("rb"), as_attachment=True, filename=artifact.name,
                            content_type=artifact.content_type)


router = SimpleRouter()
router.register("runs", RunViewSet, basename="run")

urlpatterns = router.urls

"""Run pages: the dashboard, the run form on a workflow's page, the runs list, a run with its
steps, its controls (cancel, approve or reject, retry) and its artifact downloads.

Every row is read through `for_org(request.access.organization)`, so another organization's
run, workflow or artifact is a 404; an action the role does not allow is a 403. Pages work
without JavaScript; static/js/run.js keeps a live run current: it listens on the run's
WebSocket and re-fetches the page's live part (`?fragment=1`) when events arrive.
"""
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, F, Q, Sum
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from workflows.models import Workflow

from .engine import spec_of
from .forms import RunFilterForm, RunForm
from .graph import layout, timeline
from .models import ApproverRoleRequired, Artifact, DecisionError, Run, Step

RUNS_PER_PAGE = 50
RECENT = 20
# Artifacts the run page shows inline as <img>. Not SVG: it can carry script.
INLINE_IMAGES = ("image/png", "image/jpeg", "image/gif", "image/webp")


def _require(request, action):
    if not request.access.can(action):
        raise PermissionDenied


def _runs(request):
    return Run.objects.for_org(request.access.organization).select_related("workflow", "version", "created_by")


def _run(request, pk):
    return get_object_or_404(_runs(request), pk=pk)


@login_required
@require_GET
def dashboard(request):
    """What is running, what ran lately, what failed, and this month's tokens and spend."""
    _require(request, "view")
    org = request.access.organization
    runs = _runs(request)
    month_start = timezone.localtime().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    month = Run.objects.for_org(org).filter(created_at__gte=month_start).aggregate(
        runs=Count("pk"),
        tokens=Sum(F("input_tokens") + F("output_tokens")),
        cost=Sum("cost_usd"),
        failed=Count("pk", filter=Q(status=Run.Status.FAILED)),
    )
    context = {
        "active_runs": runs.filter(status__in=Run.ACTIVE).order_by("created_at")[:RECENT],
        "recent_runs": runs[:RECENT],
        "recent_failures": runs.filter(status=Run.Status.FAILED)[:10],
        "month": month,
        "month_start": month_start,
        "workflows": Workflow.objects.for_org(org).exclude(status=Workflow.Status.ARCHIVED)
        .annotate(run_count=Count("runs"))[:12],
    }
    return render(request, "dashboard.html", context)


def _run_target(workflow):
    """(version the form runs, modes offered): the published version in any mode, else the
    latest draft in test or validate mode only; (None, ()) when there is no version."""
    published = workflow.latest_published()
    if published is not None:
        return published, (Run.Mode.FULL, Run.Mode.TEST, Run.Mode.VALIDATE)
    latest = workflow.latest_version()
    if latest is not None:
        return latest, (Run.Mode.TEST, Run.Mode.VALIDATE)
    return None, ()


@login_required
@require_http_methods(["GET", "POST"])
def workflow_detail(request, slug):
    """A workflow: description, the graph of the version it runs, versions, recent runs, and
    (for editors) the run form.

    A valid POST starts a run and redirects to it; an invalid one shows every problem next
    to its field and starts nothing.
    """
    org = request.access.organization
    workflow = get_object_or_404(Workflow.objects.for_org(org), slug=slug)
    _require(request, "view")
    can_run = request.access.can("run") and workflow.status != Workflow.Status.ARCHIVED
    version, modes = _run_target(workflow)
    spec = version.typed_spec() if version is not None else None
    form = None
    if request.method == "POST":
        _require(request, "run")
        if not can_run or version is None:
            messages.error(request, "This workflow cannot be run: it is archived or has no version.")
            return redirect("workflows:detail", slug=workflow.slug)
        form = RunForm(spec, request.POST, modes=modes)
        if form.is_valid():
            run = Run.start(workflow, version, form.cleaned_data["inputs"], mode=form.cleaned_data["mode"],
                            trigger=Run.Trigger.MANUAL, user=request.user)
            messages.success(request, f"Run started: {workflow.name} v{version.number}, {run.get_mode_display().lower()} mode.")
            return redirect("runs:detail", pk=run.pk)
    elif can_run and version is not None:
        form = RunForm(spec, modes=modes)

    context = {
        "graph": layout(spec) if spec is not None else None,
        "workflow": workflow,
        "versions": workflow.versions.select_related("author").order_by("-number"),
        "run_version": version,
        "is_draft_run": version is not None and not version.is_published,
        "form": form,
        "can_run": can_run,
        "recent_runs": _runs(request).filter(workflow=workflow)[:10],
    }
    return render(request, "workflows/detail.html", context)


@login_required
@require_GET
def run_list(request):
    """Runs of the organization, newest first, filtered and 50 to a page."""
    _require(request, "view")
    org = request.access.organization
    workflows = Workflow.objects.for_org(org).order_by("name")
    filters = RunFilterForm(request.GET or None, workflows=workflows)
    runs = filters.filter(_runs(request))
    page = Paginator(runs, RUNS_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {"filters": filters, "page": page, "query": query.urlencode(), "filtered": bool(query)}
    return render(request, "runs/list.html", context)


def _steps(run):
    return (Step.objects.for_org(run.organization).filter(run=run)
            .order_by(F("started_at").asc(nulls_last=True), "map_index", "id"))


def _decisions(request, steps):
    """The human steps waiting for a decision, each with its prompt and whether this user may decide."""
    access = request.access
    waiting = []
    for step in steps:
        if step.node_type == "human" and step.status == Step.Status.WAITING and step.map_index is None:
            info = step.input if isinstance(step.input, dict) else {}
            waiting.append({
                "step": step,
                "prompt": info.get("prompt", ""),
                "approver_role": step.approver_role,
                "allowed": access.can("approve") and step.may_be_decided_by(access.role),
            })
    return waiting


def _titles(spec):
    """{node id: title} of the spec's nodes (a map's item steps carry the map's id)."""
    return {node.id: node.title for node in spec.nodes}


@never_cache
@login_required
@require_GET
def run_detail(request, pk):
    """A run: header, graph, timeline, steps, outputs, artifacts and controls.

    `?fragment=1` returns only the live part (everything below the page title), which
    run.js fetches when the run's events say something changed, or every few seconds
    when it cannot listen. The live part carries the seq of the last event it reflects.
    """
    run = _run(request, pk)
    _require(request, "view")
    now = timezone.now()
    steps = list(_steps(run))
    spec = spec_of(run.version)
    titles = _titles(spec)
    notes = run.step_notes(steps)
    for step in steps:
        step.title = titles.get(step.node_id, "")
        step.note = notes.get(step.pk, "")
    artifacts = list(Artifact.objects.for_org(run.organization).filter(run=run))
    for artifact in artifacts:
        artifact.inline = artifact.content_type in INLINE_IMAGES
    can_run = request.access.can("run")
    context = {
        "run": run,
        "steps": steps,
        "graph": layout(spec, steps),
        "timeline": timeline(run, steps, now),
        "decisions": _decisions(request, steps),
        "artifacts": artifacts,
        "can_cancel": can_run and run.status in Run.ACTIVE,
        "can_retry": can_run and run.status in (Run.Status.FAILED, Run.Status.CANCELLED),
        "outputs": sorted((run.outputs or {}).items()),
    }
    if request.GET.get("fragment"):
        return render(request, "runs/_live.html", context)
    return render(request, "runs/detail.html", context)


@login_required
@require_POST
def run_cancel(request, pk):
    run = _run(request, pk)
    _require(request, "run")
    status = run.request_cancel(actor=request.access.actor)
    if status == Run.Status.CANCELLED:
        messages.success(request, "The run is cancelled.")
    elif status in Run.TERMINAL:
        messages.info(request, f"The run had already {status}.")
    else:
        messages.info(request, "Cancel requested; the run stops at its next step boundary.")
    return redirect("runs:detail", pk=run.pk)


@login_required
@require_POST
def run_decide(request, pk, node_id):
    """Approve or reject a waiting human step (POST `decision` = approve | reject, `comment`)."""
    run = _run(request, pk)
    _require(request, "approve")
    get_object_or_404(_steps(run), node_id=node_id, map_index__isnull=True, node_type="human")
    decision = request.POST.get("decision")
    if decision not in ("approve", "reject"):
        messages.error(request, "Choose approve or reject.")
        return redirect("runs:detail", pk=run.pk)
    comment = request.POST.get("comment", "").strip()[:2000]
    try:
        run.decide(node_id, decision == "approve", comment, actor=request.access.actor, role=request.access.role)
    except ApproverRoleRequired:
        raise PermissionDenied
    except DecisionError as error:
        messages.error(request, f"Could not record the decision: {error}.")
    else:
        messages.success(request, f"Step “{node_id}” {'approved' if decision == 'approve' else 'rejected'}.")
    return redirect("runs:detail", pk=run.pk)


@login_required
@require_POST
def run_retry(request, pk):
    run = _run(request, pk)
    _require(request, "run")
    try:
        run.retry(actor=request.access.actor)
    except DecisionError as error:
        messages.error(request, f"Could not retry: {error}.")
    else:
        messages.success(request, "The run is queued again; succeeded steps are kept.")
    return redirect("runs:detail", pk=run.pk)


@login_required
@require_GET
def artifact_download(request, pk, name):
    """The artifact's file as a download; `?inline=1` serves an image (INLINE_IMAGES) for an
    <img> on the run page instead. Every other type is always an attachment, so no file a
    run wrote is ever opened as a page of this site."""
    run = _run(request, pk)
    _require(request, "view")
    artifact = get_object_or_404(Artifact.objects.for_org(run.organization), run=run, name=name)
    try:
        handle = artifact.file.open("rb")
    except FileNotFoundError:
        raise Http404("The artifact's file is missing.")
    inline = bool(request.GET.get("inline")) and artifact.content_type in INLINE_IMAGES
    response = FileResponse(handle, as_attachment=not inline, filename=artifact.name,
                            content_type=artifact.content_type)
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response

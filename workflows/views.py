"""Workflow pages. The list lives here; a workflow's own page carries the run form, so it is
a run page (runs.views.workflow_detail), routed from workflows.urls."""
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Max, Q
from django.shortcuts import render
from django.views.decorators.http import require_GET

from .models import Workflow, WorkflowVersion


@login_required
@require_GET
def workflow_list(request):
    """Workflows of the organization with their latest and published version numbers,
    filtered by `category` and `status` and searched with `q` (name, slug, description)."""
    if not request.access.can("view"):
        raise PermissionDenied
    all_workflows = Workflow.objects.for_org(request.access.organization)
    workflows = all_workflows.annotate(
        latest_number=Max("versions__number"),
        published_number=Max("versions__number", filter=Q(versions__state=WorkflowVersion.State.PUBLISHED)),
    )
    category = request.GET.get("category", "")
    status = request.GET.get("status", "")
    q = request.GET.get("q", "").strip()
    if category:
        workflows = workflows.filter(category=category)
    if status in Workflow.Status.values:
        workflows = workflows.filter(status=status)
    if q:
        workflows = workflows.filter(Q(name__icontains=q) | Q(slug__icontains=q) | Q(description__icontains=q))
    categories = all_workflows.exclude(category="").order_by("category").values_list("category", flat=True).distinct()
    context = {
        "workflows": workflows,
        "categories": list(categories),
        "statuses": Workflow.Status.choices,
        "category": category,
        "status": status,
        "q": q,
        "filtered": bool(category or status or q),
    }
    return render(request, "workflows/list.html", context)

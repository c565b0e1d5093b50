"""Settings pages for provider credentials: list, add, edit, test connection and delete.

Only admins and owners reach them (viewers and editors get a 403); another
organization's credential is a 404. Secrets are never rendered, only their masks.
"""
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from .forms import CredentialForm
from .models import Credential, CredentialInUse


def _require_manager(request):
    if not request.access.can("manage_credentials"):
        raise PermissionDenied


def _credential(request, pk):
    _require_manager(request)
    return get_object_or_404(Credential.objects.for_org(request.access.organization), pk=pk)


def _back(request, default):
    """The page to return to: the form's `next` when it is a local URL, else `default`."""
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        target = default
    return redirect(target)


@login_required
@require_GET
def credential_list(request):
    _require_manager(request)
    credentials = Credential.objects.for_org(request.access.organization).select_related("created_by")
    return render(request, "providers/credentials.html", {"credentials": credentials})


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def credential_add(request):
    _require_manager(request)
    form = CredentialForm(request.POST or None, organization=request.access.organization)
    if request.method == "POST" and form.is_valid() and (credential := form.save(actor=request.access.actor)):
        messages.success(request, f"The credential “{credential.name}” was added. Test it to check the key works.")
        return redirect("providers:credentials")
    return render(request, "providers/credential_form.html", {"form": form, "credential": None})


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def credential_edit(request, pk):
    credential = _credential(request, pk)
    form = CredentialForm(request.POST or None, instance=credential)
    if request.method == "POST" and form.is_valid() and (saved := form.save(actor=request.access.actor)):
        messages.success(request, f"The credential “{saved.name}” was saved.")
        return redirect("providers:credentials")
    return render(request, "providers/credential_form.html", {"form": form, "credential": credential})


@login_required
@require_POST
def credential_test(request, pk):
    credential = _credential(request, pk)
    result = credential.test_connection(actor=request.access.actor)
    if result.ok:
        messages.success(request, f"“{credential.name}” connected in {result.latency_ms} ms.")
    else:
        messages.error(request, f"“{credential.name}” failed its test: {result.message}")
    return _back(request, reverse("providers:credentials"))


@login_required
@require_POST
def credential_delete(request, pk):
    credential = _credential(request, pk)
    try:
        credential.remove(actor=request.access.actor)
    except CredentialInUse as error:
        messages.error(request, f"{error} Publish versions that use another credential first.")
        return _back(request, reverse("providers:credentials"))
    messages.success(request, f"The credential “{credential.name}” was deleted.")
    return redirect("providers:credentials")

"""Account pages: sign-up, organization switching, members and API keys.

Every page reads the organization and role from `request.access`; a missing role is a 403
and another organization's row a 404.
"""
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from . import tenancy
from .forms import ApiKeyForm, InviteForm, RoleForm, SignupForm, grantable_roles, may_manage_member
from .models import ApiKey, LastOwnerError, Membership, Organization, Role


def _require(request, action):
    if not request.access.can(action):
        raise PermissionDenied


@never_cache
@require_http_methods(["GET", "POST"])
def signup(request):
    if request.user.is_authenticated:
        return redirect(settings.LOGIN_REDIRECT_URL)
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user, org = form.save()
        if user is not None:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            tenancy.switch(request, org)
            messages.success(request, f"Welcome to AgentFlow. {org.name} is ready.")
            return redirect(settings.LOGIN_REDIRECT_URL)
    return render(request, "accounts/signup.html", {"form": form})


@login_required
@require_POST
def switch(request):
    try:
        pk = int(request.POST.get("organization", ""))
    except ValueError:
        raise Http404("No such organization.")
    org = get_object_or_404(Organization.objects.filter(memberships__user=request.user), pk=pk)
    tenancy.switch(request, org)
    messages.info(request, f"You are now working in {org.name}.")
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        target = settings.LOGIN_REDIRECT_URL
    return redirect(target)


@login_required
@require_http_methods(["GET", "POST"])
def members(request):
    """The member list; admins and owners also invite (POST) from here."""
    _require(request, "view")
    access = request.access
    can_manage = access.can("manage_members")
    form = None
    if request.method == "POST":
        _require(request, "manage_members")
        form = InviteForm(request.POST, access=access)
        if form.is_valid() and (membership := form.save()):
            messages.success(request, f"{membership.user.email} joined as {membership.get_role_display().lower()}.")
            return redirect("accounts:members")
    elif can_manage:
        form = InviteForm(access=access)

    memberships = Membership.objects.for_org(access.organization).select_related("user").order_by("user__email")
    labels = dict(Role.choices)
    rows = [
        {
            "membership": m,
            "editable": may_manage_member(access, m),
            "is_me": m.user_id == request.user.pk,
        }
        for m in memberships
    ]
    context = {
        "rows": rows,
        "form": form,
        "can_manage": can_manage,
        "role_choices": [(r, labels[r]) for r in grantable_roles(access)],
    }
    return render(request, "accounts/members.html", context)


def _member(request, pk):
    _require(request, "manage_members")
    return get_object_or_404(Membership.objects.for_org(request.access.organization).select_related("user"), pk=pk)


@login_required
@require_POST
def member_role(request, pk):
    membership = _member(request, pk)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a valid role.")
        return redirect("accounts:members")
    role = form.cleaned_data["role"]
    if not may_manage_member(request.access, membership, role):
        raise PermissionDenied
    if role != membership.role:
        try:
            membership.change_role(role, actor=request.access.actor)
        except LastOwnerError as error:
            messages.error(request, f"{error} Make someone else an owner first.")
        else:
            messages.success(request, f"{membership.user.email} is now {membership.get_role_display().lower()}.")
    return redirect("accounts:members")


@login_required
@require_POST
def member_remove(request, pk):
    membership = _member(request, pk)
    if not may_manage_member(request.access, membership):
        raise PermissionDenied
    try:
        membership.remove(actor=request.access.actor)
    except LastOwnerError as error:
        messages.error(request, f"{error} Make someone else an owner first.")
    else:
        messages.success(request, f"{membership.user.email} was removed from {membership.organization.name}.")
    return redirect("accounts:members")


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def api_keys(request):
    """API keys of the organization; a POST issues one and shows it, once, on the result page."""
    _require(request, "manage_api_keys")
    access = request.access
    form = ApiKeyForm(request.POST or None, access=access)
    if request.method == "POST" and form.is_valid():
        key, raw = form.save()
        return render(request, "accounts/api_key_created.html", {"key": key, "raw_key": raw})
    keys = ApiKey.objects.for_org(access.organization).select_related("created_by")
    return render(request, "accounts/api_keys.html", {"form": form, "keys": keys})


@login_required
@require_POST
def api_key_revoke(request, pk):
    _require(request, "manage_api_keys")
    key = get_object_or_404(ApiKey.objects.for_org(request.access.organization), pk=pk)
    key.revoke(actor=request.access.actor)
    messages.success(request, f"The key “{key.name}” ({key.prefix}…) is revoked.")
    return redirect("accounts:api_keys")

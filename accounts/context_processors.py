def organization(request):
    """The current organization, role and the user's other organizations, for base.html."""
    access = getattr(request, "access", None)
    if access is None or not getattr(request.user, "is_authenticated", False):
        return {}
    memberships = request.user.memberships.select_related("organization").order_by("organization__name")
    return {"access": access, "current_org": access.organization, "my_memberships": memberships}

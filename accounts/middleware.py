from django.utils.functional import SimpleLazyObject

from . import tenancy


class CurrentOrganizationMiddleware:
    """Sets `request.access` (organization, role, user) for signed-in users, lazily."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.access = SimpleLazyObject(lambda: tenancy.for_session(request))
        return self.get_response(request)

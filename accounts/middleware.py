from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.utils.functional import SimpleLazyObject

from . import tenancy


class CurrentOrganizationMiddleware:
    """Sets `request.access` (organization, role, user) for signed-in users, lazily.

    Both sync and async, like Django's own middleware: under ASGI a sync-only middleware in
    the middle of the stack costs every request two extra thread hand-offs."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.__acall__(request)
        request.access = SimpleLazyObject(lambda: tenancy.for_session(request))
        return self.get_response(request)

    async def __acall__(self, request):
        request.access = SimpleLazyObject(lambda: tenancy.for_session(request))
        return await self.get_response(request)

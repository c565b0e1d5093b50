"""Bearer API keys for the API; the request then acts in the key's organization.

Kept apart from accounts/api.py because DRF imports the authentication and permission
classes named in settings while it loads `rest_framework.views`: a module that defines
viewsets cannot be one of them.
"""
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions

from . import tenancy
from .models import ApiKey


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer af_…`; the request then acts in the key's organization."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(_("Malformed Authorization header."))
        try:
            raw = header[1].decode()
        except UnicodeError:
            raise exceptions.AuthenticationFailed(_("Malformed API key."))
        key = ApiKey.authenticate(raw)
        if key is None:
            raise exceptions.AuthenticationFailed(_("Invalid, expired or revoked API key."))
        request._request.access = tenancy.for_api_key(key)
        return (_ApiKeyUser(key), key)

    def authenticate_header(self, request):
        return self.keyword


class _ApiKeyUser:
    """request.user for key-authenticated requests: authenticated, but not a person."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = is_superuser = False
    pk = id = None

    def __init__(self, key):
        self.key = key
        self.email = f"api-key:{key.prefix}"

    def __str__(self):
        return self.email

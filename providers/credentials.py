"""Where a workflow source's key comes from: an organization's credential or an environment variable.

`resolve(org_id, source)` is what the engine calls before it builds a provider; it takes
any object with the attributes of `workflows.spec.Source` (provider, credential,
api_key_env, base_url), so this app does not depend on workflows.
"""
import fnmatch
import os

from django.conf import settings

from .base import ProviderError
from .models import UNREADABLE, Credential

# The deployment's own secrets: never handed to a provider, whatever the allow-list says.
_NEVER_READ = frozenset({
    "SECRET_KEY", "CRYPTOGRAPHY_KEY", "CRYPTOGRAPHY_KEY_FALLBACKS", "DATABASE_URL", "REDIS_URL",
})


def credential_names(org):
    """The names of `org`'s credentials (an empty set for no organization)."""
    return set(Credential.objects.for_org(org).values_list("name", flat=True))


def env_name_allowed(name):
    """Whether a source may read its key from the environment variable `name`.

    Workflow editors choose the name, so only names matching PROVIDER_KEY_ENV_ALLOWED
    (shell patterns, default `*_API_KEY`) are read, and never the deployment's own secrets.
    """
    patterns = getattr(settings, "PROVIDER_KEY_ENV_ALLOWED", ["*_API_KEY"])
    return name not in _NEVER_READ and any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def resolve(org_id, source):
    """(secret, base_url) for a source of the organization `org_id`.

    - `credential`: the credential's decrypted secret and its base URL. The secret only
      goes where whoever manages credentials said: a source `base_url` other than the
      credential's is refused, as is a credential of another provider.
    - `api_key_env`: the variable's value and the source's base URL.
    - neither (the mock provider, keyless local servers): (None, the source's base URL).

    Raises ProviderError (not retryable) for a missing credential or variable, a refused
    variable name, or a secret no configured key decrypts. Messages never hold a secret.
    """
    provider = source.provider
    base_url = source.base_url or None
    name = getattr(source, "credential", None)
    env_name = getattr(source, "api_key_env", None)
    if name:
        credential = Credential.objects.filter(organization_id=org_id, name=name).first()
        if credential is None:
            raise ProviderError(f"there is no credential named '{name}' in this organization", provider=provider)
        if credential.provider != provider:
            raise ProviderError(
                f"the credential '{name}' is for {credential.provider}, not {provider}", provider=provider
            )
        if base_url and base_url.rstrip("/") != (credential.base_url or "").rstrip("/"):
            raise ProviderError(
                f"a source using the credential '{name}' cannot set its own base_url; "
                "set the base URL on the credential instead",
                provider=provider,
            )
        if credential.secret is UNREADABLE:
            raise ProviderError(
                f"the credential '{name}' cannot be decrypted with CRYPTOGRAPHY_KEY; "
                "rotate keys with rotate_credentials_key or enter the secret again",
                provider=provider,
            )
        return credential.secret, credential.base_url or None
    if env_name:
        if not env_name_allowed(env_name):
            raise ProviderError(
                f"the environment variable {env_name} may not hold provider keys "
                "(see PROVIDER_KEY_ENV_ALLOWED)",
                provider=provider,
            )
        secret = os.environ.get(env_name)
        if not secret:
            raise ProviderError(f"the environment variable {env_name} is not set", provider=provider)
        return secret, base_url
    return None, base_url

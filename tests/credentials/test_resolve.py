"""resolve(org_id, source): where the engine gets a source's secret and base URL."""
from dataclasses import dataclass

import pytest

from providers.base import ProviderError
from providers.credentials import credential_names, resolve
from providers.models import Credential

from .conftest import SECRET


@dataclass
class Source:
    provider: str = "mock"
    credential: str | None = None
    api_key_env: str | None = None
    base_url: str | None = None


def test_a_credential_gives_its_secret_and_base_url(acme):
    Credential.add(acme, name="prod", provider="mock", secret=SECRET, base_url="https://llm.example.com/v1")

    assert resolve(acme.pk, Source(credential="prod")) == (SECRET, "https://llm.example.com/v1")
    assert resolve(acme.pk, Source(credential="prod", base_url="https://llm.example.com/v1/")) == (
        SECRET, "https://llm.example.com/v1")


def test_a_missing_credential_is_a_clear_error(acme, globex):
    Credential.add(globex, name="prod", provider="mock", secret=SECRET)

    with pytest.raises(ProviderError, match="no credential named 'prod'") as caught:
        resolve(acme.pk, Source(credential="prod"))
    assert caught.value.retryable is False


def test_a_source_cannot_send_a_credential_elsewhere(acme):
    Credential.add(acme, name="prod", provider="mock", secret=SECRET)

    with pytest.raises(ProviderError, match="cannot set its own base_url") as caught:
        resolve(acme.pk, Source(credential="prod", base_url="https://collector.example.net"))
    assert SECRET not in str(caught.value)


def test_a_credential_of_another_provider_is_refused(acme):
    Credential.add(acme, name="prod", provider="mock", secret=SECRET)

    with pytest.raises(ProviderError, match="is for mock, not openai"):
        resolve(acme.pk, Source(provider="openai", credential="prod"))


def test_an_environment_variable_gives_its_value(monkeypatch, acme):
    monkeypatch.setenv("ACME_OPENAI_API_KEY", "sk-from-env-0000")

    assert resolve(acme.pk, Source(api_key_env="ACME_OPENAI_API_KEY", base_url="http://127.0.0.1:9")) == (
        "sk-from-env-0000", "http://127.0.0.1:9")


def test_a_missing_environment_variable_is_a_clear_error(monkeypatch, acme):
    monkeypatch.delenv("UNSET_API_KEY", raising=False)

    with pytest.raises(ProviderError, match="UNSET_API_KEY is not set"):
        resolve(acme.pk, Source(api_key_env="UNSET_API_KEY"))


@pytest.mark.parametrize("name", ["SECRET_KEY", "CRYPTOGRAPHY_KEY", "DATABASE_URL", "HOME"])
def test_a_source_cannot_read_the_deployments_own_secrets(monkeypatch, settings, acme, name):
    monkeypatch.setenv(name, "do-not-leak")
    settings.PROVIDER_KEY_ENV_ALLOWED = ["*_API_KEY", "*_KEY", "*_URL"]

    with pytest.raises(ProviderError, match="may not hold provider keys") as caught:
        resolve(acme.pk, Source(api_key_env=name))
    assert "do-not-leak" not in str(caught.value)


def test_a_source_without_a_key_gets_none(acme):
    assert resolve(acme.pk, Source(base_url="http://127.0.0.1:8765")) == (None, "http://127.0.0.1:8765")
    assert resolve(acme.pk, Source()) == (None, None)


def test_credential_names_are_the_organizations_own(acme, globex):
    Credential.add(acme, name="a", provider="mock", secret=SECRET)
    Credential.add(acme, name="b", provider="mock", secret=SECRET)
    Credential.add(globex, name="c", provider="mock", secret=SECRET)

    assert credential_names(acme) == {"a", "b"}
    assert credential_names(None) == set()

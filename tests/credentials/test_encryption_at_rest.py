"""Secrets are stored encrypted under CRYPTOGRAPHY_KEY, survive a SECRET_KEY change, and
move to a new key with rotate_credentials_key."""
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from providers.credentials import resolve
from providers.base import ProviderError
from providers.models import UNREADABLE, Credential

from .conftest import SECRET


def _stored(credential):
    """The raw bytes of the secret column."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT secret FROM {Credential._meta.db_table} WHERE id = %s", [credential.pk])
        return bytes(cursor.fetchone()[0])


class _Source:
    provider = "mock"
    credential = "prod-mock"
    api_key_env = None
    base_url = None


def test_the_database_holds_ciphertext_not_the_secret(credential):
    stored = _stored(credential)

    assert SECRET.encode() not in stored
    assert SECRET[-8:].encode() not in stored
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {Credential._meta.db_table}")
        assert not any(SECRET in str(value) for row in cursor.fetchall() for value in row)
    assert Credential.objects.get(pk=credential.pk).secret == SECRET


def test_each_save_uses_a_fresh_iv(acme):
    one = Credential.add(acme, name="one", provider="mock", secret=SECRET)
    two = Credential.add(acme, name="two", provider="mock", secret=SECRET)

    assert _stored(one) != _stored(two)


def test_changing_secret_key_leaves_credentials_readable(settings, credential):
    settings.SECRET_KEY = "a-completely-different-secret-key-for-signing-sessions"

    assert Credential.objects.get(pk=credential.pk).secret == SECRET


def test_another_cryptography_key_cannot_read_the_secret(settings, credential):
    settings.CRYPTOGRAPHY_KEY = "some-other-key"

    again = Credential.objects.get(pk=credential.pk)

    assert again.secret is UNREADABLE
    assert again.mask == "(unreadable)"
    with pytest.raises(ProviderError, match="cannot be decrypted") as caught:
        resolve(credential.organization_id, _Source())
    assert SECRET not in str(caught.value)


def test_rotation_moves_every_secret_to_the_new_key(settings, acme, globex):
    settings.CRYPTOGRAPHY_KEY = "the-old-key"
    ours = Credential.add(acme, name="prod-mock", provider="mock", secret=SECRET)
    theirs = Credential.add(globex, name="theirs", provider="mock", secret="sk-globex-000011112222")
    before = _stored(ours)
    # Step 2 of the procedure: the new key is current, the old one a fallback.
    settings.CRYPTOGRAPHY_KEY = "the-new-key"
    settings.CRYPTOGRAPHY_KEY_FALLBACKS = ["the-old-key"]
    assert Credential.objects.get(pk=ours.pk).secret == SECRET  # readable before rotating

    call_command("rotate_credentials_key", stdout=open("/dev/null", "w"))

    settings.CRYPTOGRAPHY_KEY_FALLBACKS = []
    assert Credential.objects.get(pk=ours.pk).secret == SECRET
    assert Credential.objects.get(pk=theirs.pk).secret == "sk-globex-000011112222"
    assert _stored(ours) != before
    settings.CRYPTOGRAPHY_KEY = "the-old-key"
    assert Credential.objects.get(pk=ours.pk).secret is UNREADABLE


def test_rotation_changes_nothing_when_a_secret_cannot_be_read(settings, acme):
    settings.CRYPTOGRAPHY_KEY = "key-one"
    lost = Credential.add(acme, name="lost", provider="mock", secret=SECRET)
    settings.CRYPTOGRAPHY_KEY = "key-two"
    kept = Credential.add(acme, name="kept", provider="mock", secret="sk-kept-key-000011112222")
    stored = {c.pk: _stored(c) for c in (lost, kept)}

    with pytest.raises(CommandError, match="acme/lost"):
        call_command("rotate_credentials_key")

    assert {c.pk: _stored(c) for c in (lost, kept)} == stored


def test_a_credential_with_an_unreadable_secret_can_be_given_a_new_one(settings, credential):
    settings.CRYPTOGRAPHY_KEY = "a-key-it-was-not-written-with"
    credential = Credential.objects.get(pk=credential.pk)

    credential.change(name="renamed")  # other fields still save; the stored secret is untouched
    credential.change(secret="sk-entered-again-00001234")

    assert Credential.objects.get(pk=credential.pk).secret == "sk-entered-again-00001234"


def test_serializing_never_writes_the_secret(credential):
    from django.core import serializers

    dumped = serializers.serialize("json", Credential.objects.all())

    assert SECRET not in dumped


def test_the_pages_show_an_unreadable_secret_instead_of_failing(settings, client, alice, credential):
    settings.CRYPTOGRAPHY_KEY = "a-key-it-was-not-written-with"
    client.force_login(alice)

    listing = client.get("/settings/credentials/")
    api = client.get(f"/api/v1/credentials/{credential.pk}/")

    assert listing.status_code == 200
    assert "(unreadable)" in listing.content.decode() and "cannot be decrypted" in listing.content.decode()
    assert api.json()["secret_mask"] == "(unreadable)"

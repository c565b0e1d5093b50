"""Provider credentials (secrets encrypted at rest) and the editable price table.

Secrets are encrypted with django_cryptography's AES-CBC + HMAC-SHA256 token format under
keys derived from `settings.CRYPTOGRAPHY_KEY` alone. The library, left to itself, signs its
tokens with SECRET_KEY (see `django_cryptography.core.signing.FernetSigner`), so rotating
SECRET_KEY would make every stored secret unreadable; `SecretField` gives it both keys.
`settings.CRYPTOGRAPHY_KEY_FALLBACKS` lists old keys that still decrypt while
`manage.py rotate_credentials_key` re-encrypts everything under the current one.
"""
import hmac
import re
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator, URLValidator
from django.db import models, transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import Signal, receiver
from django.utils import timezone
from django_cryptography.core.signing import BadSignature, FernetSigner
from django_cryptography.fields import get_encrypted_field
from django_cryptography.utils.crypto import FernetBytes, InvalidToken, pbkdf2

from accounts.models import AuditEvent, OrgQuerySet, Organization

from .base import ProviderError, known_providers, provider_class

# -- encryption keys -------------------------------------------------------------------


def _key_material(key):
    """The 32 bytes a configured key stands for.

    Importing django_cryptography replaces `settings.CRYPTOGRAPHY_KEY` with its PBKDF2
    derivation (bytes); a key given as text (a fallback key, or a setting overridden later)
    is derived the same way here, so both spellings of one key give the same material.
    """
    if isinstance(key, (bytes, bytearray)):
        return bytes(key)
    if not key:
        raise ValueError("An empty CRYPTOGRAPHY_KEY cannot encrypt credentials.")
    salt = getattr(settings, "CRYPTOGRAPHY_SALT", b"django-cryptography")
    return pbkdf2(key, salt, 30000)  # the library's own parameters (django_cryptography.conf)


@lru_cache(maxsize=16)
def _cipher(key):
    """A cipher for one key: separate encryption and signing keys derived from it, so
    SECRET_KEY plays no part (PBKDF2 is slow on purpose, hence the cache)."""
    material = _key_material(key)
    encryption = hmac.digest(material, b"agentflow.credentials.encrypt", "sha256")
    signing = hmac.digest(material, b"agentflow.credentials.sign", "sha256")
    return FernetBytes(encryption, FernetSigner(signing))


def _ciphers():
    """The current key's cipher first, then one per fallback key (decryption only)."""
    fallbacks = [key for key in getattr(settings, "CRYPTOGRAPHY_KEY_FALLBACKS", []) if key]
    return [_cipher(settings.CRYPTOGRAPHY_KEY), *(_cipher(key) for key in fallbacks)]


class _Unreadable:
    """What a secret reads as when no configured key decrypts it (a key changed without
    rotation). Pages show it as such; using or saving it is refused."""

    def __bool__(self):
        return False

    def __str__(self):
        return ""

    def __repr__(self):
        return "UNREADABLE"


UNREADABLE = _Unreadable()


class SecretField(get_encrypted_field(models.TextField, True)):
    """A text column stored encrypted; reads return the text, or UNREADABLE.

    It keeps django_cryptography's storage (binary column, only `isnull` lookups) and token
    format, but the text is stored as UTF-8 rather than pickled, and the keys come from
    `_ciphers()` at each use, so a changed setting takes effect without a restart.
    """

    def _dump(self, value):
        if value is UNREADABLE:
            raise ValueError("An unreadable secret cannot be saved; enter the secret again.")
        return _ciphers()[0].encrypt(value.encode())

    def _load(self, value):
        for cipher in _ciphers():
            try:
                return cipher.decrypt(value).decode()
            except (BadSignature, InvalidToken):
                continue
        return UNREADABLE

    def value_to_string(self, obj):
        # dumpdata and other serializers never write a secret; re-enter it after loading.
        return ""


# -- credentials -----------------------------------------------------------------------

NAME_RE = r"^[a-z0-9][a-z0-9_.-]*$"


def validate_provider(value):
    if value not in known_providers():
        raise ValidationError(
            "Unknown provider %(value)s; choose one of %(known)s.",
            code="unknown_provider",
            params={"value": repr(value), "known": ", ".join(known_providers())},
        )


def validate_secret(value):
    # A key travels in an HTTP header: whitespace or control characters would break it
    # (and usually mean a paste went wrong).
    if re.search(r"[\s\x00-\x1f\x7f]", value):
        raise ValidationError("A secret cannot contain spaces, line breaks or control characters.", code="invalid")


def mask_secret(secret):
    """`sk-…abcd`: the prefix up to the first dash (when short) and the last four characters.

    Secrets shorter than 16 characters, and unreadable ones, show no character at all.
    """
    if secret is UNREADABLE:
        return "(unreadable)"
    if not secret or len(secret) < 16:
        return "••••••••"
    head, dash, _ = secret.partition("-")
    prefix = head + dash if dash and len(head) <= 6 else ""
    return f"{prefix}…{secret[-4:]}"


@dataclass(frozen=True, order=True)
class CredentialUse:
    """A published workflow version whose sources name a credential."""

    workflow: str
    version: int
    workflow_id: int = 0

    def __str__(self):
        return f"“{self.workflow}” version {self.version}"


# Sent (sender=Credential, credential=...) to ask which published workflow versions name a
# credential; each receiver returns a list of CredentialUse. Workflows answer it, so this
# app does not depend on them.
credential_uses = Signal()


class CredentialInUse(Exception):
    """Deleting, renaming or changing the provider of a credential that published workflow
    versions use. `uses` lists them."""

    def __init__(self, credential, uses, change="deleted"):
        self.uses = uses
        names = ", ".join(str(use) for use in uses[:10]) + (f" and {len(uses) - 10} more" if len(uses) > 10 else "")
        super().__init__(
            f"The credential “{credential.name}” cannot be {change}: published workflow versions use it ({names})."
        )


@dataclass(frozen=True)
class ConnectionCheck:
    ok: bool
    latency_ms: int | None
    message: str


class Credential(models.Model):
    """A named provider secret of an organization, referenced by name from workflow sources."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="credentials")
    name = models.CharField(
        max_length=64,
        validators=[RegexValidator(NAME_RE, "Use lower-case letters, digits, “.”, “_” and “-”.", code="invalid_name")],
        help_text="What workflow sources name, e.g. “prod-openai”.",
    )
    provider = models.CharField(max_length=64, validators=[validate_provider])
    base_url = models.URLField(
        "base URL",
        max_length=500,
        blank=True,
        validators=[URLValidator(schemes=["http", "https"])],
        help_text="Leave empty for the provider's own API.",
    )
    secret = SecretField(validators=[validate_secret])
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    last_tested_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_test_ok = models.BooleanField(null=True, editable=False)
    last_test_message = models.CharField(max_length=500, blank=True, editable=False)
    last_test_latency_ms = models.PositiveIntegerField(null=True, blank=True, editable=False)

    objects = OrgQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="unique_credential_name")]

    def __str__(self):
        return self.name

    @property
    def mask(self):
        return mask_secret(self.secret)

    @property
    def is_readable(self):
        return self.secret is not UNREADABLE

    @classmethod
    def name_taken(cls, organization, name, exclude_pk=None):
        return cls.objects.for_org(organization).filter(name=name).exclude(pk=exclude_pk).exists()

    @classmethod
    def add(cls, organization, *, name, provider, secret, base_url="", created_by=None):
        """Create a credential and record who did; returns it. IntegrityError on a taken name."""
        with transaction.atomic():
            credential = cls.objects.create(
                organization=organization, name=name, provider=provider, secret=secret,
                base_url=base_url or "", created_by=created_by,
            )
            AuditEvent.record(organization, created_by, "credential.created", credential, {"provider": provider})
        return credential

    def _lock(self):
        # Serializes changes to one credential (a rename racing a delete, say).
        list(Credential.objects.select_for_update().filter(pk=self.pk).values_list("pk", flat=True))

    def uses(self):
        """Published workflow versions of the organization that name this credential."""
        found = set()
        for _, response in credential_uses.send(sender=Credential, credential=self):
            found.update(response or [])
        return sorted(found)

    @transaction.atomic
    def change(self, actor=None, **changes):
        """Apply `changes` (name, provider, base_url, secret); returns the names of the fields
        that changed. Raises CredentialInUse when a rename or a new provider would break
        published versions. A new secret clears the last test result."""
        allowed = {"name", "provider", "base_url", "secret"}
        if set(changes) - allowed:
            raise TypeError(f"Only {', '.join(sorted(allowed))} can be changed.")
        self._lock()
        changed = [field for field, value in changes.items() if value != getattr(self, field)]
        if {"name", "provider"} & set(changed) and (uses := self.uses()):
            raise CredentialInUse(self, uses, "renamed or moved to another provider")
        for field in changed:
            setattr(self, field, changes[field])
        if not changed:
            return []
        update = [*changed, "updated_at"]
        if "secret" in changed:
            self.last_tested_at = self.last_test_ok = self.last_test_latency_ms = None
            self.last_test_message = ""
            update += ["last_tested_at", "last_test_ok", "last_test_latency_ms", "last_test_message"]
        # Only the changed columns are written: an unreadable secret stays as it is stored.
        self.save(update_fields=update)
        AuditEvent.record(self.organization, actor, "credential.updated", self, {"changed": sorted(changed)})
        return changed

    @transaction.atomic
    def remove(self, actor=None):
        """Delete the credential. Raises CredentialInUse while published versions name it."""
        self._lock()
        if uses := self.uses():
            raise CredentialInUse(self, uses)
        AuditEvent.record(self.organization, actor, "credential.deleted", self, {"provider": self.provider})
        self.delete()

    def provider_for(self, model="", options=None):
        """A provider instance that uses this credential's secret and base URL."""
        if self.secret is UNREADABLE:
            raise ProviderError(
                f"the credential '{self.name}' cannot be decrypted; was CRYPTOGRAPHY_KEY changed without "
                "rotate_credentials_key? Enter its secret again.",
                provider=self.provider,
            )
        return provider_class(self.provider)(
            model=model, options=options or {}, secret=self.secret, base_url=self.base_url or None
        )

    def scrub(self, text):
        """`text` with this credential's secret, if it appears, replaced by its mask."""
        text = str(text)
        if self.secret:
            text = text.replace(self.secret, self.mask)
        return text

    def test_connection(self, model="", actor=None):
        """Make the provider's smallest call with this secret; records and returns a ConnectionCheck.

        A failure is a result, not an exception: its message is the provider's error with
        the secret masked should the provider have echoed it.
        """
        try:
            latency = self.provider_for(model).check()
        except ProviderError as error:
            result = ConnectionCheck(False, None, self.scrub(error)[:500])
        except Exception as error:  # a failed test must be shown, not answered with a 500
            result = ConnectionCheck(False, None, self.scrub(f"unexpected error: {type(error).__name__}: {error}")[:500])
        else:
            result = ConnectionCheck(True, max(0, round(latency)), "Connected.")
        self.last_tested_at = timezone.now()
        self.last_test_ok = result.ok
        self.last_test_latency_ms = result.latency_ms
        self.last_test_message = result.message
        self.save(update_fields=["last_tested_at", "last_test_ok", "last_test_latency_ms", "last_test_message"])
        AuditEvent.record(
            self.organization, actor, "credential.tested", self,
            {"ok": result.ok, "latency_ms": result.latency_ms, "message": result.message},
        )
        return result

    @classmethod
    def reencrypt_all(cls):
        """Re-encrypt every secret under the current CRYPTOGRAPHY_KEY, in one transaction;
        returns how many. Raises ValueError, changing nothing, when some secret no
        configured key decrypts (its organization and name are listed)."""
        with transaction.atomic():
            credentials = list(cls.objects.select_for_update().select_related("organization").order_by("pk"))
            unreadable = [f"{c.organization.slug}/{c.name}" for c in credentials if c.secret is UNREADABLE]
            if unreadable:
                raise ValueError(
                    "No configured key decrypts these credentials: " + ", ".join(unreadable)
                    + ". Add the key they were written with to CRYPTOGRAPHY_KEY_FALLBACKS, or enter them again."
                )
            for credential in credentials:
                # Saving writes fresh ciphertext under the first (current) key.
                credential.save(update_fields=["secret"])
        return len(credentials)


# -- prices ----------------------------------------------------------------------------

PRICE = {"max_digits": 12, "decimal_places": 6, "validators": [MinValueValidator(0), MaxValueValidator(1_000_000)]}


class ModelPrice(models.Model):
    """USD per million tokens for the models of a provider whose name starts with
    `model_prefix` (the longest matching prefix wins)."""

    provider = models.CharField(max_length=64)
    model_prefix = models.CharField(max_length=200, blank=True, help_text="Empty matches every model of the provider.")
    input_per_million = models.DecimalField("input USD / 1M tokens", **PRICE)
    output_per_million = models.DecimalField("output USD / 1M tokens", **PRICE)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["provider", "model_prefix"]
        constraints = [models.UniqueConstraint(fields=["provider", "model_prefix"], name="unique_model_price")]

    def __str__(self):
        return f"{self.provider} {self.model_prefix or '*'}"


@receiver([post_save, post_delete], sender=ModelPrice)
def _forget_prices(**kwargs):
    from . import pricing  # pricing reads this module's table

    pricing.clear_cache()

"""The credential form of the settings pages (and, with the organization field, of the admin)."""
from django import forms
from django.core.exceptions import ValidationError
from django.db import IntegrityError

from .base import known_providers
from .models import Credential, CredentialInUse, validate_secret


class CredentialForm(forms.ModelForm):
    """Name, provider, base URL and a write-only secret.

    The secret field never shows the stored secret; on an existing credential it may be
    left blank to keep it. A rename or a new provider is refused while published workflow
    versions use the credential.
    """

    provider = forms.ChoiceField(label="Provider")
    base_url = forms.URLField(
        label="Base URL", required=False, max_length=500, assume_scheme="https",
        help_text="Leave empty for the provider's own API. The secret is only ever sent here.",
    )
    new_secret = forms.CharField(
        label="Secret",
        max_length=4096,
        validators=[validate_secret],
        widget=forms.PasswordInput(attrs={"autocomplete": "off", "spellcheck": "false"}, render_value=False),
        help_text="The provider's API key. It is stored encrypted and never shown again.",
    )

    class Meta:
        model = Credential
        fields = ["name", "provider", "base_url"]

    def __init__(self, *args, organization=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.organization = organization if organization is not None else getattr(self.instance, "organization", None)
        self.fields["provider"].choices = [(name, name) for name in known_providers()]
        self.fields["name"].widget.attrs.update({"autocomplete": "off", "spellcheck": "false"})
        self.fields["base_url"].widget.attrs.update({"placeholder": "https://…"})
        if self.instance.pk:
            self.fields["new_secret"].required = False
            self.fields["new_secret"].help_text = (
                f"Leave blank to keep the current secret ({self.instance.mask}). A new one is stored encrypted."
            )

    def clean_name(self):
        name = self.cleaned_data["name"]
        if self.organization is not None and Credential.name_taken(self.organization, name, exclude_pk=self.instance.pk):
            raise ValidationError("A credential with this name already exists.", code="unique")
        return name

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk and {"name", "provider"} & set(self.changed_data) and (uses := self.instance.uses()):
            error = CredentialInUse(self.instance, uses, "renamed or moved to another provider")
            raise ValidationError(str(error), code="credential_in_use")
        return cleaned

    def save(self, actor=None):
        """Create or change the credential; returns it, or None when the name was taken
        meanwhile or it came into use (the form then carries the error)."""
        data = {field: self.cleaned_data[field] for field in ("name", "provider", "base_url")}
        secret = self.cleaned_data.get("new_secret")
        try:
            if self.instance.pk is None:
                self.instance = Credential.add(self.organization, secret=secret, created_by=actor, **data)
            else:
                if secret:
                    data["secret"] = secret
                # Validation already copied the new values onto self.instance; change() works
                # from the stored row so it can tell what changed.
                credential = Credential.objects.get(pk=self.instance.pk)
                credential.change(actor=actor, **data)
                self.instance = credential
        except IntegrityError:
            self.add_error("name", ValidationError("A credential with this name already exists.", code="unique"))
            return None
        except CredentialInUse as error:
            self.add_error(None, ValidationError(str(error), code="credential_in_use"))
            return None
        return self.instance

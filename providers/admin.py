from django.contrib import admin, messages

from accounts.admin import OrgScopedAdmin

from .forms import CredentialForm
from .models import Credential, CredentialInUse, ModelPrice


class CredentialAdminForm(CredentialForm):
    """The settings-page form plus the organization; the secret stays write-only."""

    class Meta(CredentialForm.Meta):
        fields = ["organization", "name", "provider", "base_url"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["organization"].disabled = True

    def clean(self):
        self.organization = self.cleaned_data.get("organization") or self.organization
        cleaned = super().clean()
        name = cleaned.get("name")
        if self.organization is not None and name and Credential.name_taken(
            self.organization, name, exclude_pk=self.instance.pk
        ):
            self.add_error("name", "A credential with this name already exists in this organization.")
        return cleaned


@admin.register(Credential)
class CredentialAdmin(OrgScopedAdmin):
    form = CredentialAdminForm
    list_display = ["name", "organization", "provider", "secret_mask", "base_url", "last_test", "updated_at"]
    list_filter = ["provider", "organization", "last_test_ok"]
    search_fields = ["name", "organization__slug", "provider"]
    readonly_fields = ["secret_mask", "created_by", "created_at", "updated_at", "last_tested_at", "last_test_ok",
                       "last_test_latency_ms", "last_test_message"]
    actions = ["test_connection"]

    def get_fieldsets(self, request, obj=None):
        main = ["organization", "name", "provider", "base_url", "new_secret"]
        if obj is None:
            return [(None, {"fields": main})]
        return [
            (None, {"fields": [*main, "secret_mask"]}),
            ("Last test", {"fields": ["last_tested_at", "last_test_ok", "last_test_latency_ms", "last_test_message"]}),
            ("History", {"fields": ["created_by", "created_at", "updated_at"]}),
        ]

    @admin.display(description="secret")
    def secret_mask(self, obj):
        return obj.mask

    @admin.display(description="last test")
    def last_test(self, obj):
        if obj.last_tested_at is None:
            return "not tested"
        return f"OK, {obj.last_test_latency_ms} ms" if obj.last_test_ok else f"failed: {obj.last_test_message}"

    def save_form(self, request, form, change):
        return form.instance  # stored by save_model, through the model's methods

    def save_model(self, request, obj, form, change):
        # Through the form, and so Credential.add/change: the audit trail and the in-use
        # rule hold here as on the settings pages.
        saved = form.save(actor=request.user)
        if saved is None:
            self.message_user(request, " ".join(form.non_field_errors()) or "Not saved: the name was taken meanwhile.",
                              messages.ERROR)
        else:
            obj.pk = saved.pk

    def save_related(self, request, form, formsets, change):
        pass  # a credential has no related objects to save

    def delete_model(self, request, obj):
        try:
            obj.remove(actor=request.user)
        except CredentialInUse as error:
            self.message_user(request, str(error), messages.ERROR)

    def delete_queryset(self, request, queryset):
        for credential in queryset:
            self.delete_model(request, credential)

    @admin.action(description="Test connection of selected credentials")
    def test_connection(self, request, queryset):
        for credential in queryset:
            result = credential.test_connection(actor=request.user)
            if result.ok:
                self.message_user(request, f"{credential.name}: connected in {result.latency_ms} ms.", messages.SUCCESS)
            else:
                self.message_user(request, f"{credential.name}: {result.message}", messages.ERROR)


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    """Prices the engine charges runs with (cached for a minute by each worker)."""

    list_display = ["provider", "model_prefix", "input_per_million", "output_per_million", "updated_at"]
    list_editable = ["input_per_million", "output_per_million"]
    list_filter = ["provider"]
    search_fields = ["provider", "model_prefix"]
    readonly_fields = ["updated_at"]

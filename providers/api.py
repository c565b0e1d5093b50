"""The credentials API, /api/v1/credentials/: admins and owners only, reading included.

Secrets are write-only: requests may send `secret`, responses only ever carry
`secret_mask` (`sk-…abcd`). API keys need the `read` scope to list and the `write` scope
to change or test.
"""
from django.core.validators import URLValidator
from django.db import IntegrityError
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, routers, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.api import OrgScopedMixin, StrictSerializerMixin
from agentflow.api import ApiError

from .models import Credential, CredentialInUse, validate_secret

MANAGE_READ = ("manage_credentials", "read")
MANAGE_WRITE = ("manage_credentials", "write")


def _in_use(error):
    return ApiError(
        str(error),
        code="credential_in_use",
        status=409,
        details=[
            {"path": "$", "code": "credential_in_use", "message": f"{use} uses it"} for use in error.uses
        ],
    )


def _name_taken(name):
    return ApiError(
        f"A credential named “{name}” already exists.",
        details=[{"path": "$.name", "code": "unique", "message": "A credential with this name already exists."}],
    )


class CredentialSerializer(StrictSerializerMixin, serializers.ModelSerializer):
    secret = serializers.CharField(
        write_only=True, max_length=4096, validators=[validate_secret],
        help_text="The provider key. Write-only: responses show `secret_mask`.",
    )
    # Declared: DRF would swap the model's http(s)-only check for one that also takes ftp.
    base_url = serializers.CharField(
        required=False, allow_blank=True, max_length=500, validators=[URLValidator(schemes=["http", "https"])],
        help_text="Where the secret is sent; empty for the provider's own API.",
    )
    secret_mask = serializers.CharField(source="mask", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="email", read_only=True)

    class Meta:
        model = Credential
        fields = [
            "id", "name", "provider", "base_url", "secret", "secret_mask", "created_by", "created_at", "updated_at",
            "last_tested_at", "last_test_ok", "last_test_message", "last_test_latency_ms",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance is not None:
            self.fields["secret"].required = False  # omitted: the stored secret is kept

    def validate_name(self, name):
        organization = self.context["request"].access.organization
        if Credential.name_taken(organization, name, exclude_pk=getattr(self.instance, "pk", None)):
            raise serializers.ValidationError("A credential with this name already exists.", code="unique")
        return name

    def create(self, validated_data):
        try:
            return Credential.add(**validated_data)
        except IntegrityError:  # the same name taken between validation and insert
            raise _name_taken(validated_data["name"])

    def update(self, credential, validated_data):
        try:
            credential.change(actor=self.context["request"].access.actor, **validated_data)
        except CredentialInUse as error:
            raise _in_use(error)
        except IntegrityError:
            raise _name_taken(validated_data.get("name", credential.name))
        return credential


class CredentialTestRequestSerializer(StrictSerializerMixin, serializers.Serializer):
    model = serializers.CharField(
        required=False, allow_blank=True, max_length=200,
        help_text="A model to call, for providers whose check needs one; default: the provider's choice.",
    )


class CredentialTestSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    latency_ms = serializers.IntegerField(allow_null=True)
    message = serializers.CharField(help_text="“Connected.” or the provider's error (never the secret).")
    tested_at = serializers.DateTimeField()


class CredentialViewSet(
    OrgScopedMixin,
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Provider credentials of the organization.

    DELETE, and a change of name or provider, answer 409 `credential_in_use` while
    published workflow versions name the credential; `details` lists them.
    """

    queryset = Credential.objects.all()
    serializer_class = CredentialSerializer
    action_permissions = {
        "list": MANAGE_READ,
        "retrieve": MANAGE_READ,
        "create": MANAGE_WRITE,
        "update": MANAGE_WRITE,
        "partial_update": MANAGE_WRITE,
        "destroy": MANAGE_WRITE,
        "test": MANAGE_WRITE,
    }

    def get_queryset(self):
        return super().get_queryset().select_related("created_by")

    def perform_create(self, serializer):
        serializer.save(organization=self.request.access.organization, created_by=self.request.access.actor)

    def perform_destroy(self, credential):
        try:
            credential.remove(actor=self.request.access.actor)
        except CredentialInUse as error:
            raise _in_use(error)

    @extend_schema(request=CredentialTestRequestSerializer, responses=CredentialTestSerializer)
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        """Call the provider with this credential (its smallest request) and record the result."""
        credential = self.get_object()
        body = CredentialTestRequestSerializer(data=request.data if request.data is not None else {})
        body.is_valid(raise_exception=True)
        result = credential.test_connection(body.validated_data.get("model", ""), actor=request.access.actor)
        return Response(CredentialTestSerializer({
            "ok": result.ok,
            "latency_ms": result.latency_ms,
            "message": result.message,
            "tested_at": credential.last_tested_at,
        }).data)


router = routers.SimpleRouter()
router.register("credentials", CredentialViewSet, basename="credential")

urlpatterns = router.urls

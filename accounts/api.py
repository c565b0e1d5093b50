"""The account API: /me/, /api-keys/ and /members/, and what every API view shares.

This module is also the URLconf mounted under /api/v1/. Authentication and the default
permission live in accounts/authentication.py and accounts/permissions.py (named in
settings) and are re-exported here.
"""
from django.urls import path
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, mixins, permissions, routers, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from agentflow.api import ApiError

from .authentication import ApiKeyAuthentication
from .forms import may_manage_member
from .models import ApiKey, ApiKeyScope, LastOwnerError, Membership, Role


class OrgScopedMixin:
    """For viewsets: reads only the current organization's rows; creates rows in it."""

    def get_queryset(self):
        return self.queryset.model.objects.for_org(self.request.access.organization)

    def perform_create(self, serializer):
        serializer.save(organization=self.request.access.organization)


class StrictSerializerMixin:
    """Refuses fields the serializer does not know (e.g. organization, author, role)."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - {name for name, f in self.fields.items() if not f.read_only})
            if unknown:
                raise serializers.ValidationError(
                    {name: [serializers.ErrorDetail("This field is not allowed.", code="unknown_field")] for name in unknown}
                )
        return super().to_internal_value(data)


# The account endpoints; this module is also the URLconf mounted under /api/v1/.

MANAGE_API_KEYS = ("manage_api_keys", "write")
MANAGE_MEMBERS = ("manage_members", "write")


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Describes the Bearer API key in the OpenAPI schema."""

    target_class = ApiKeyAuthentication
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An AgentFlow API key: `Bearer af_…`."}


class _MeUserSerializer(serializers.Serializer):
    email = serializers.EmailField()


class _MeKeySerializer(serializers.Serializer):
    name = serializers.CharField()
    prefix = serializers.CharField()
    expires_at = serializers.DateTimeField(allow_null=True)


class _MeOrganizationSerializer(serializers.Serializer):
    slug = serializers.SlugField()
    name = serializers.CharField()


class MeSerializer(serializers.Serializer):
    user = _MeUserSerializer(allow_null=True, help_text="The signed-in person; null for API keys.")
    api_key = _MeKeySerializer(allow_null=True, help_text="The key in use; null for sessions.")
    organization = _MeOrganizationSerializer(allow_null=True)
    role = serializers.ChoiceField(choices=Role.choices, allow_null=True)
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=ApiKeyScope.choices))


class MeView(APIView):
    """Who is calling: the person or API key, the organization, role and scopes."""

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses=MeSerializer)
    def get(self, request):
        access = request.access
        key = access.api_key
        me = {
            "user": None if key else request.user,
            "api_key": key,
            "organization": access.organization,
            "role": access.role,
            "scopes": sorted(access.scopes),
        }
        return Response(MeSerializer(me).data)


class ApiKeySerializer(StrictSerializerMixin, serializers.ModelSerializer):
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=ApiKeyScope.choices), allow_empty=False)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.EDITOR)
    status = serializers.CharField(read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="email", read_only=True)

    class Meta:
        model = ApiKey
        fields = [
            "id", "name", "prefix", "scopes", "role", "status",
            "created_by", "created_at", "expires_at", "last_used_at", "revoked_at",
        ]

    def validate_role(self, role):
        access = self.context["request"].access
        if not Role.at_least(access.role, role):
            raise serializers.ValidationError(f"A key's role cannot be above your own ({access.role}).")
        return role

    def validate_scopes(self, scopes):
        # A key may issue keys, but never with a scope it does not hold itself.
        missing = sorted(set(scopes) - self.context["request"].access.scopes)
        if missing:
            raise serializers.ValidationError(f"You cannot grant scopes you do not have: {', '.join(missing)}.")
        return sorted(set(scopes))

    def validate_expires_at(self, value):
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("Must be in the future.")
        return value

    def create(self, validated_data):
        key, raw = ApiKey.issue(**validated_data)
        key.raw_key = raw
        return key

    def to_representation(self, instance):
        data = super().to_representation(instance)
        # Only the response to the creating request carries the key; it is not stored.
        raw = getattr(instance, "raw_key", None)
        if raw:
            data["key"] = raw
        return data


class ApiKeyViewSet(
    OrgScopedMixin, mixins.ListModelMixin, mixins.CreateModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """API keys of the organization; POST returns the new key once, in `key`."""

    queryset = ApiKey.objects.all()
    serializer_class = ApiKeySerializer
    action_permissions = {name: MANAGE_API_KEYS for name in ("list", "retrieve", "create", "revoke")}

    def get_queryset(self):
        return super().get_queryset().select_related("created_by")

    def perform_create(self, serializer):
        serializer.save(organization=self.request.access.organization, created_by=self.request.access.actor)

    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        key = self.get_object()
        key.revoke(actor=request.access.actor)
        return Response(self.get_serializer(key).data)


class MemberSerializer(StrictSerializerMixin, serializers.ModelSerializer):
    email = serializers.EmailField(source="user.email", read_only=True)
    role = serializers.ChoiceField(choices=Role.choices)

    class Meta:
        model = Membership
        fields = ["id", "email", "role", "created_at"]


class MemberViewSet(
    OrgScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Members of the organization: everyone reads; admins change roles and remove.

    Only owners grant or take away the owner role; the last owner stays (409 `last_owner`).
    """

    queryset = Membership.objects.all()
    serializer_class = MemberSerializer
    action_permissions = {name: MANAGE_MEMBERS for name in ("update", "partial_update", "destroy")}

    def get_queryset(self):
        return super().get_queryset().select_related("user")

    def perform_update(self, serializer):
        membership = serializer.instance
        role = serializer.validated_data.get("role", membership.role)
        if not may_manage_member(self.request.access, membership, role):
            raise exceptions.PermissionDenied("Only owners may grant or remove the owner role.")
        try:
            membership.change_role(role, actor=self.request.access.actor)
        except LastOwnerError as error:
            raise ApiError(str(error), code="last_owner", status=409)

    def perform_destroy(self, membership):
        if not may_manage_member(self.request.access, membership):
            raise exceptions.PermissionDenied("Only owners may remove an owner.")
        try:
            membership.remove(actor=self.request.access.actor)
        except LastOwnerError as error:
            raise ApiError(str(error), code="last_owner", status=409)


router = routers.SimpleRouter()
router.register("api-keys", ApiKeyViewSet, basename="api-key")
router.register("members", MemberViewSet, basename="member")

urlpatterns = [path("me/", MeView.as_view(), name="me"), *router.urls]

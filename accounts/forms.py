"""Forms of the account pages: sign-up, sign-in, members and API keys."""
from datetime import datetime, time

from django import forms
from django.contrib.auth import password_validation
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from .models import ApiKey, ApiKeyScope, AuditEvent, Membership, Organization, Role, User


def grantable_roles(access):
    """The roles `access` may give to a member: any role, but owner only by owners."""
    return [value for value in Role.values if value != Role.OWNER or access.can("manage_owners")]


def may_manage_member(access, membership, role=None):
    """Whether `access` may change `membership` (to `role`, when given) or remove it.

    Managing members needs an admin; touching the owner role (an owner's membership, or
    making someone owner) needs an owner.
    """
    if not access.can("manage_members") or membership.organization_id != access.organization.pk:
        return False
    if Role.OWNER in (membership.role, role):
        return access.can("manage_owners")
    return True


def _role_choices(values):
    labels = dict(Role.choices)
    return [(value, labels[value]) for value in values]


class SignupForm(forms.Form):
    email = forms.EmailField(
        label="Email address",
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}),
    )
    password = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validation.password_validators_help_text_html(),
    )
    organization = forms.CharField(
        label="Organization name",
        max_length=200,
        help_text="Your team or company. You can invite people to it later.",
        widget=forms.TextInput(attrs={"autocomplete": "organization"}),
    )

    def clean_email(self):
        email = User.objects.normalize_email(self.cleaned_data["email"]).lower()
        if User.objects.filter(email__iexact=email).exists():
            raise ValidationError("An account with this email address already exists.", code="taken")
        return email

    def clean(self):
        cleaned = super().clean()
        password = cleaned.get("password")
        if password:
            try:
                password_validation.validate_password(password, User(email=cleaned.get("email") or ""))
            except ValidationError as error:
                self.add_error("password", error)
        return cleaned

    def save(self):
        """Creates the user and their organization; returns (user, organization)."""
        try:
            with transaction.atomic():
                user = User.objects.create_user(self.cleaned_data["email"], self.cleaned_data["password"])
                org = Organization.create_with_owner(self.cleaned_data["organization"], user)
        except IntegrityError:
            # Someone signed up with the same email between validation and insert.
            self.add_error("email", ValidationError("An account with this email address already exists.", code="taken"))
            return None, None
        return user, org


class LoginForm(AuthenticationForm):
    """Sign-in by email; addresses are stored lower-case, so the lookup is too."""

    def __init__(self, request=None, *args, **kwargs):
        super().__init__(request, *args, **kwargs)
        self.fields["username"].label = "Email address"
        self.fields["username"].widget.attrs.update({"type": "email", "autocomplete": "email"})

    def clean_username(self):
        return self.cleaned_data["username"].strip().lower()


class InviteForm(forms.Form):
    """Adds an existing user to the organization with a role."""

    email = forms.EmailField(label="Email address", help_text="They need an AgentFlow account already.")
    role = forms.ChoiceField(label="Role", initial=Role.EDITOR)

    def __init__(self, *args, access, **kwargs):
        super().__init__(*args, **kwargs)
        self.access = access
        self.fields["role"].choices = _role_choices(grantable_roles(access))

    def clean_email(self):
        email = self.cleaned_data["email"]
        user = User.objects.filter(email__iexact=email.strip()).first()
        if user is None:
            raise ValidationError(
                "No AgentFlow account uses this email address. Ask them to sign up, then invite them.",
                code="no_such_user",
            )
        if Membership.objects.filter(organization=self.access.organization, user=user).exists():
            raise ValidationError(f"{user.email} is already a member of this organization.", code="already_member")
        self.user = user
        return user.email

    def save(self):
        org = self.access.organization
        try:
            with transaction.atomic():
                membership = Membership.objects.create(organization=org, user=self.user, role=self.cleaned_data["role"])
                AuditEvent.record(
                    org, self.access.actor, "member.invited", membership, {"user": self.user.email, "role": membership.role}
                )
        except IntegrityError:
            self.add_error("email", ValidationError("They are already a member of this organization.", code="already_member"))
            return None
        return membership


class RoleForm(forms.Form):
    role = forms.ChoiceField(label="Role", choices=Role.choices)


class ApiKeyForm(forms.Form):
    name = forms.CharField(label="Name", max_length=100, help_text="What uses this key, e.g. “CI deploys”.")
    scopes = forms.MultipleChoiceField(
        label="Scopes",
        choices=ApiKeyScope.choices,
        initial=[ApiKeyScope.READ],
        widget=forms.CheckboxSelectMultiple,
        help_text="Read: list and view. Write: create and change. Execute: start runs.",
    )
    role = forms.ChoiceField(label="Role", initial=Role.EDITOR, help_text="Up to your own role.")
    expires_on = forms.DateField(
        label="Expires on",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="The key stops working at the start of this day (server time zone).",
    )

    def __init__(self, *args, access, **kwargs):
        super().__init__(*args, **kwargs)
        self.access = access
        self.fields["role"].choices = _role_choices([r for r in Role.values if Role.at_least(access.role, r)])

    def clean_expires_on(self):
        day = self.cleaned_data["expires_on"]
        if day is not None and day <= timezone.localdate():
            raise ValidationError("Choose a day after today.", code="past")
        return day

    def save(self):
        """Issues the key; returns (api_key, raw_key)."""
        day = self.cleaned_data["expires_on"]
        expires_at = timezone.make_aware(datetime.combine(day, time.min)) if day else None
        return ApiKey.issue(
            self.access.organization,
            self.cleaned_data["name"],
            self.cleaned_data["scopes"],
            role=self.cleaned_data["role"],
            expires_at=expires_at,
            created_by=self.access.actor,
        )

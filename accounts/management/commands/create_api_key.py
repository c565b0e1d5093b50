from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts.models import ApiKey, ApiKeyScope, Organization, Role


class Command(BaseCommand):
    help = "Issue an API key for an organization; the key is printed alone on the last line."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="organization slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--scopes", default="read", help="comma-separated: read,write,execute")
        parser.add_argument("--role", default=Role.EDITOR, choices=Role.values)
        parser.add_argument("--expires-days", type=int, help="expire after this many days")

    def handle(self, org, name, scopes, role, expires_days=None, **options):
        organization = Organization.objects.filter(slug=org).first()
        if organization is None:
            raise CommandError(f"No organization '{org}'.")
        wanted = [s.strip() for s in scopes.split(",") if s.strip()]
        unknown = sorted(set(wanted) - set(ApiKeyScope.values))
        if unknown or not wanted:
            raise CommandError(f"Unknown scopes {unknown}; choose from {', '.join(ApiKeyScope.values)}.")
        expires_at = timezone.now() + timedelta(days=expires_days) if expires_days else None
        key, raw = ApiKey.issue(organization, name, wanted, role=role, expires_at=expires_at)
        self.stdout.write(f"API key '{key.name}' ({key.prefix}…) for {organization.slug}, role {role}, "
                          f"scopes {','.join(key.scopes)}. Store it now; it is not shown again:")
        self.stdout.write(raw)

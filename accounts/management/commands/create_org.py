from django.core.management.base import BaseCommand, CommandError

from accounts.models import Organization, User


class Command(BaseCommand):
    help = "Create an organization owned by an existing user (or a new one, with --password)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--owner", required=True, help="email of the owner")
        parser.add_argument("--name", help="display name (default: from the slug)")
        parser.add_argument("--password", help="create the owner with this password if missing")

    def handle(self, slug, owner, name=None, password=None, **options):
        if Organization.objects.filter(slug=slug).exists():
            raise CommandError(f"Organization '{slug}' already exists.")
        user = User.objects.filter(email__iexact=owner).first()
        if user is None:
            if not password:
                raise CommandError(f"No user with email {owner}; pass --password to create one.")
            user = User.objects.create_user(owner, password)
        org = Organization.create_with_owner(name or slug.replace("-", " ").title(), user, slug=slug)
        self.stdout.write(f"Created organization {org.slug} owned by {user.email}")

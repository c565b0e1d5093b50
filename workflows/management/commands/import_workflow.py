from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_slug
from django.db import transaction

from accounts.models import Organization
from workflows.management.commands.validate_workflow import spec_bytes
from workflows.models import InvalidSpec, Workflow


class Command(BaseCommand):
    help = "Import a spec file as a new workflow (a draft, or published with --publish)."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--org", required=True, help="organization slug")
        parser.add_argument("--slug", help="slug of the new workflow (default: from its name)")
        parser.add_argument("--category", default="")
        parser.add_argument("--publish", action="store_true")

    def handle(self, file, org, slug=None, category="", publish=False, **options):
        organization = Organization.objects.filter(slug=org).first()
        if organization is None:
            raise CommandError(f"No organization '{org}'.")
        if slug:
            try:
                validate_slug(slug)
            except ValidationError:
                raise CommandError(f"'{slug}' is not a slug (letters, digits, '-' and '_').")
            if len(slug) > Workflow._meta.get_field("slug").max_length:
                raise CommandError(f"'{slug}' is longer than 80 characters.")
        if slug and Workflow.objects.for_org(organization).filter(slug=slug).exists():
            raise CommandError(f"A workflow '{slug}' already exists in '{org}'.")
        try:
            data = spec_bytes(Path(file))
        except OSError as exc:
            raise CommandError(f"{file}: cannot read: {exc.strerror}")
        try:
            with transaction.atomic():
                workflow = Workflow.create_with_spec(organization, data, slug=slug, category=category,
                                                     message="Imported")
                version = workflow.publish() if publish else workflow.latest_version()
        except InvalidSpec as exc:
            for error in exc.errors:
                self.stderr.write(f"{error.path}: {error.code}: {error.message}")
            raise CommandError(str(exc))
        self.stdout.write(f"Imported {workflow.slug} v{version.number} ({version.state})")

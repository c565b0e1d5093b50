import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import Organization
from workflows import spec as specs
from workflows.models import Workflow

CATALOG_DIR = Path(__file__).resolve().parents[2] / "catalog"


def catalog_entries():
    """Every catalog file as a dict {slug, title, description, category, persona, spec}."""
    return [json.loads(path.read_text()) for path in sorted(CATALOG_DIR.glob("*.json"))]


@transaction.atomic
def install(organization, entry, author=None):
    """Create or update the catalog workflow in `organization`; returns (workflow, what happened).

    Idempotent: when the published spec already matches, nothing is written.
    """
    workflow = Workflow.objects.for_org(organization).filter(slug=entry["slug"]).first()
    if workflow is None:
        workflow = Workflow.create_with_spec(
            organization, entry["spec"], author=author, message="From the catalog",
            slug=entry["slug"], name=entry["title"], description=entry["description"], category=entry["category"],
        )
        workflow.publish(author=author)
        return workflow, "created"
    published = workflow.latest_published()
    if published and published.spec_hash == specs.spec_hash(workflow_spec_json(entry["spec"])):
        return workflow, "unchanged"
    workflow.save_draft(entry["spec"], author=author, message="Catalog update")
    workflow.publish(author=author)
    return workflow, "updated"


def workflow_spec_json(data):
    return specs.WorkflowSpec.model_validate(data).to_json()


class Command(BaseCommand):
    help = "Load the example workflows of workflows/catalog/ into an organization (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--org", default="demo", help="organization slug (default: demo)")

    def handle(self, org, **options):
        organization = Organization.objects.filter(slug=org).first()
        if organization is None:
            raise CommandError(f"No organization '{org}'. Create it with create_org first.")
        owner = organization.owners().select_related("user").first()
        for entry in catalog_entries():
            workflow, what = install(organization, entry, author=owner.user if owner else None)
            self.stdout.write(f"{what:9} {workflow.slug}")

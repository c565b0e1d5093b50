import json

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Organization
from workflows.models import Workflow


class Command(BaseCommand):
    help = "Print (or write) a workflow's spec JSON: the latest published version unless --version."

    def create_parser(self, prog_name, subcommand, **kwargs):
        # Django's own --version (print the Django version) would clash with the workflow
        # version below; "resolve" lets this command's --version take it over.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--org", required=True, help="organization slug")
        parser.add_argument("--version", type=int, help="version number")
        parser.add_argument("-o", "--output", help="file to write instead of standard output")

    def handle(self, slug, org, version=None, output=None, **options):
        organization = Organization.objects.filter(slug=org).first()
        workflow = Workflow.objects.for_org(organization).filter(slug=slug).first()
        if workflow is None:
            raise CommandError(f"No workflow '{slug}' in organization '{org}'.")
        if version is not None:
            chosen = workflow.versions.filter(number=version).first()
        else:
            chosen = workflow.latest_published() or workflow.latest_version()
        if chosen is None:
            raise CommandError("No such version.")
        text = json.dumps(chosen.spec, indent=2, ensure_ascii=False)
        if output:
            with open(output, "w", encoding="utf-8") as f:
                f.write(text + "\n")
            self.stderr.write(f"Wrote {workflow.slug} v{chosen.number} to {output}")
        else:
            self.stdout.write(text)

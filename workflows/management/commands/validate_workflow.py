import json
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from workflows import spec as specs


def spec_bytes(path):
    """The spec in a file: a bare spec, or a catalog entry wrapping one under "spec"."""
    raw = Path(path).read_bytes()
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return raw  # let the validator report the problem with its position
    if isinstance(data, dict) and "spec" in data and "nodes" not in data:
        return json.dumps(data["spec"]).encode()
    return raw


class Command(BaseCommand):
    help = "Validate workflow spec files; prints `path: code: message` per error, exits 1 if any is invalid."

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+")

    def handle(self, files, **options):
        limits = specs.Limits(**settings.AGENTFLOW_SPEC_LIMITS)
        failed = 0
        for name in files:
            try:
                data = spec_bytes(name)
            except OSError as exc:
                self.stderr.write(f"{name}: cannot read: {exc.strerror}")
                failed += 1
                continue
            report = specs.validate_spec(data, limits=limits)
            if report.valid:
                self.stdout.write(f"{name}: valid")
                continue
            failed += 1
            self.stdout.write(f"{name}: {len(report.errors)} error(s)")
            for error in report.errors:
                self.stdout.write(f"{error.path}: {error.code}: {error.message}")
        if failed:
            sys.exit(1)

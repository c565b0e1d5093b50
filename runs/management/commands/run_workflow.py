"""`python manage.py run_workflow SLUG_OR_FILE --org SLUG --input k=v ... [--mode test|full] [--json]`

Runs a workflow through the same engine and database as the web and the API: the run is
created (and enqueued, so a worker may take it), executed here when no worker got to it
first, and followed from its events until it ends. Exit status 0 on success, 1 otherwise.
"""
import json
import sys
import threading
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from accounts.models import Organization
from runs import engine
from runs.models import Run, RunEvent
from workflows.management.commands.validate_workflow import spec_bytes
from workflows.models import InvalidSpec, Workflow, validate


def _execute_here(run_id):
    try:
        engine.execute(run_id)
    finally:
        connection.close()


class Command(BaseCommand):
    help = "Run a workflow (by slug, or a spec file) and print its steps and outputs."

    def create_parser(self, prog_name, subcommand, **kwargs):
        # This command's --version (a workflow version) takes over Django's.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("workflow", help="workflow slug in the organization, or a spec JSON file")
        parser.add_argument("--org", required=True, help="organization slug")
        parser.add_argument("--input", action="append", default=[], metavar="KEY=VALUE",
                            help="an input value (repeatable); arrays take one item per line or JSON")
        parser.add_argument("--inputs-json", help="all inputs as one JSON object")
        parser.add_argument("--mode", choices=["full", "test", "validate"], default="full")
        parser.add_argument("--version", dest="number", type=int, help="version number (default: latest published)")
        parser.add_argument("--json", action="store_true", help="end with one JSON line describing the run")
        parser.add_argument("--timeout", type=float, default=3600, help="stop following after this many seconds")

    def handle(self, workflow, org, input, inputs_json, mode, number, json, timeout, **options):
        self.as_json = json
        organization = Organization.objects.filter(slug=org).first()
        if organization is None:
            raise CommandError(f"No organization '{org}'.")
        wf, chosen = self._workflow_and_version(organization, workflow, number, mode)
        spec = chosen.typed_spec()
        values = self._inputs(input, inputs_json)
        inputs, problems = spec.check_inputs(values, from_text=True)
        if problems:
            for problem in problems:
                self.stderr.write(f"{problem['path']}: {problem['code']}: {problem['message']}")
            raise CommandError(f"{len(problems)} input problem(s).")

        run = Run.start(wf, chosen, inputs, mode=mode, trigger=Run.Trigger.CLI)
        self._say(f"Run {run.pk} of {wf.slug} v{chosen.number} ({mode})")
        worker = None
        if mode != Run.Mode.VALIDATE:
            worker = threading.Thread(target=_execute_here, args=(run.pk,), daemon=True)
            worker.start()
        run = self._follow(run, timeout)
        if worker is not None:
            worker.join(timeout=5)
        self._report(run)
        if run.status != Run.Status.SUCCEEDED:
            sys.exit(1)

    def _say(self, text):
        self.stdout.write(text)
        self.stdout.flush()

    def _workflow_and_version(self, organization, name, number, mode):
        path = Path(name)
        if path.suffix == ".json" and path.exists():
            try:
                spec = validate(spec_bytes(path), organization)
            except InvalidSpec as exc:
                for error in exc.errors:
                    self.stderr.write(f"{error.path}: {error.code}: {error.message}")
                raise CommandError(str(exc))
            slug = path.stem
            wf = Workflow.objects.for_org(organization).filter(slug=slug).first()
            if wf is None:
                wf = Workflow.create_with_spec(organization, spec.to_json(), slug=slug, message="From the command line")
                return wf, wf.latest_version()
            return wf, wf.save_draft(spec.to_json(), message="From the command line")
        wf = Workflow.objects.for_org(organization).filter(slug=name).first()
        if wf is None:
            raise CommandError(f"No workflow '{name}' in '{organization.slug}' and no such file.")
        if number is not None:
            chosen = wf.versions.filter(number=number).first()
            if chosen is None:
                raise CommandError(f"{name} has no version {number}.")
            if not chosen.is_published and mode == Run.Mode.FULL:
                raise CommandError(f"v{number} is a draft; run drafts with --mode test.")
            return wf, chosen
        chosen = wf.latest_published()
        if chosen is None:
            if mode == Run.Mode.FULL:
                raise CommandError(f"{name} has no published version; publish it or use --mode test.")
            chosen = wf.latest_version()
        return wf, chosen

    def _inputs(self, pairs, inputs_json):
        values = {}
        if inputs_json:
            try:
                values.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in json.loads(inputs_json).items()})
            except (ValueError, AttributeError) as exc:
                raise CommandError(f"--inputs-json is not a JSON object: {exc}")
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep:
                raise CommandError(f"--input takes KEY=VALUE, not {pair!r}")
            values[key.strip()] = value
        return values

    def _follow(self, run, timeout):
        """Print events as they come until the run ends or waits for a person."""
        after, deadline = 0, time.monotonic() + timeout
        while True:
            for event in RunEvent.objects.filter(run=run, seq__gt=after).order_by("seq"):
                after = event.seq
                self._print_event(event)
                if event.type in ("run.succeeded", "run.failed", "run.cancelled", "run.waiting"):
                    run.refresh_from_db()
                    return run
            if time.monotonic() > deadline:
                self.stderr.write("Stopped following: timeout. The run goes on.")
                run.refresh_from_db()
                return run
            time.sleep(0.05)

    def _print_event(self, event):
        data = event.data
        name = data.get("node", "")
        if data.get("map_index") is not None:
            name += f"[{data['map_index']}]"
        if event.type == "step.started":
            self._say(f"  > {name} ({data.get('type')}) started" + (f", attempt {data['attempt']}" if data.get("attempt", 1) > 1 else ""))
        elif event.type.startswith("step."):
            status = event.type.split(".", 1)[1]
            parts = [f"  {'✓' if status == 'succeeded' else '·' if status in ('skipped', 'waiting') else '✗'} {name} {status}"]
            if data.get("duration_ms") is not None:
                parts.append(f"{data['duration_ms']} ms")
            tokens = (data.get("input_tokens") or 0) + (data.get("output_tokens") or 0)
            if tokens:
                parts.append(f"{tokens} tokens")
            if data.get("cost_usd") and data["cost_usd"] not in ("0", "0.000000"):
                parts.append(f"${data['cost_usd']}")
            if data.get("error"):
                parts.append(data["error"])
            if event.type == "step.waiting":
                parts.append("waiting for approval")
            self._say(", ".join(parts))
        elif event.type == "run.waiting":
            self._say(f"Waiting for a person: approve or reject at {settings.BASE_URL}/runs/{event.run_id}/")

    def _report(self, run):
        steps = list(run.steps.order_by("started_at", "id"))
        self._say(f"Run {run.status}" + (f": {run.error}" if run.error else "")
                  + f" — {run.input_tokens + run.output_tokens} tokens, ${run.cost_usd}")
        for name, value in (run.outputs or {}).items():
            text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
            self._say(f"--- {name} ---\n{text}")
        if self.as_json:
            summary = {
                "run": str(run.pk),
                "status": run.status,
                "outputs": run.outputs,
                "steps": [{"node": s.node_id, "map_index": s.map_index, "status": s.status,
                           "duration_ms": s.duration_ms, "tokens": s.input_tokens + s.output_tokens,
                           "cost": str(s.cost_usd)} for s in steps],
                "tokens": run.input_tokens + run.output_tokens,
                "cost": str(run.cost_usd),
            }
            self._say(json.dumps(summary, ensure_ascii=False, default=str))

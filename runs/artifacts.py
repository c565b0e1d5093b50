"""A run's files: each output as a document (markdown for text, JSON otherwise) and
trace.json, the whole story of the run. Sizes are capped; nothing secret is written
(specs hold no secrets, and steps record rendered prompts, never keys)."""
import hashlib
import json

from django.conf import settings
from django.core.files.base import ContentFile
from django.utils.text import get_valid_filename

from .models import Artifact


def _json(data):
    return json.dumps(data, indent=2, ensure_ascii=False, default=str).encode()


def _trace(run, about, steps):
    return {
        "run": str(run.pk),
        "workflow": about["workflow"],
        "version": about["version"],
        "spec_hash": about["spec_hash"],
        "mode": run.mode,
        "trigger": run.trigger,
        "inputs": run.inputs,
        "steps": [
            {
                "node": s.node_id, "type": s.node_type, "map_index": s.map_index, "status": s.status,
                "attempts": s.attempt, "input": s.input, "output": s.output, "error": s.error,
                "started_at": s.started_at, "finished_at": s.finished_at, "duration_ms": s.duration_ms,
                "input_tokens": s.input_tokens, "output_tokens": s.output_tokens,
                "tokens_estimated": s.tokens_estimated, "cost_usd": str(s.cost_usd),
                "source": s.source, "provider": s.provider, "model": s.model, "queue_wait_ms": s.queue_wait_ms,
            }
            for s in sorted(steps, key=lambda s: (s.started_at is None, s.started_at or 0, s.map_index or 0))
        ],
    }


def prepare(run, about, steps, outputs):
    """[(name, content type, bytes)] for the run's outputs and its trace, each under the cap.

    `about` names the workflow and version: {"workflow": slug, "version": n, "spec_hash"}."""
    cap = settings.ARTIFACT_MAX_BYTES
    files = []
    for name, value in outputs.items():
        if isinstance(value, str):
            files.append((f"{name}.md", "text/markdown", value.encode()))
        else:
            files.append((f"{name}.json", "application/json", _json(value)))
    files.append(("trace.json", "application/json", _json(_trace(run, about, steps))))
    kept = []
    for name, content_type, body in files:
        if len(body) > cap:
            note = f"{name} was {len(body)} bytes, over the {cap}-byte artifact limit; see the steps instead.\n"
            kept.append((name + ".truncated.txt", "text/plain", note.encode()))
        else:
            kept.append((name, content_type, body))
    return kept


def save(run, files, writer, replace=True):
    """Store the prepared files as the run's artifacts (replacing those of an earlier try).

    `replace=False` when the run cannot have any yet. The artifact keeps its name as given (an output may be called "notes/today"); the file
    on disk gets a safe name of its own."""
    # Files the steps stored themselves (generated images) stay; the documents are remade.
    for old in Artifact.objects.filter(run=run).exclude(pk__in=_stored_by_steps(run)) if replace else ():
        old.file.delete(save=False)
        old.delete()
    Artifact.insert_all([_artifact(run, name, content_type, body) for name, content_type, body in files])
    if files:
        writer.emit("log", {"message": f"saved {len(files)} artifact(s)", "artifacts": [f[0] for f in files]})


def _artifact(run, name, content_type, body):
    artifact = Artifact(organization_id=run.organization_id, run=run, name=name, content_type=content_type,
                        size=len(body), sha256=hashlib.sha256(body).hexdigest())
    artifact.file.save(get_valid_filename(name.replace("/", "_")) or "artifact", ContentFile(body), save=False)
    return artifact


def _stored_by_steps(run):
    return Artifact.objects.filter(run=run, content_type__startswith="image/").values("pk")


def store(run, name, content_type, body):
    """Store one file a step made (a generated image) as artifact `name` at once, replacing
    the file of an earlier attempt of that step. Refused over the size cap."""
    cap = settings.ARTIFACT_MAX_BYTES
    if len(body) > cap:
        raise ValueError(f"{name} is {len(body)} bytes, over the {cap}-byte artifact limit")
    for old in Artifact.objects.filter(run=run, name=name):
        old.file.delete(save=False)
        old.delete()
    Artifact.insert_all([_artifact(run, name, content_type, body)])

import json

import pytest

from runs.models import Artifact, Run

from .helpers import linear, llm, mock_source, run_to_end, spec

pytestmark = pytest.mark.django_db(transaction=True)


def test_each_output_is_a_file_and_the_trace_has_every_step(acme):
    document = spec(
        [llm("write", "Write it"),
         {"id": "facts", "type": "transform", "template": '{"n": 3}', "output_format": "json"}],
        linear("write", "facts"),
        sources={"model": mock_source(responses=[{"match": "Write", "text": "# Title\n\nBody"}])},
        outputs={"article": "{{ nodes.write.output }}", "facts": "{{ nodes.facts.output | tojson }}"},
    )
    run = run_to_end(acme, document)

    assert run.status == Run.Status.SUCCEEDED, run.error
    artifacts = {a.name: a for a in Artifact.objects.filter(run=run)}
    assert set(artifacts) == {"article.md", "facts.md", "trace.json"}
    assert artifacts["article.md"].content_type == "text/markdown"
    assert artifacts["article.md"].file.read().decode() == "# Title\n\nBody"
    trace = json.loads(artifacts["trace.json"].file.read())
    assert trace["run"] == str(run.pk)
    assert [s["node"] for s in trace["steps"]] == ["start", "write", "facts"]
    assert all(s["status"] == "succeeded" for s in trace["steps"])
    assert trace["steps"][1]["provider"] == "mock"
    assert all(a.organization_id == acme.pk and a.size > 0 for a in artifacts.values())


def test_non_text_outputs_are_json_files(acme):
    document = spec([{"id": "out", "type": "output", "format": "json", "value": '{"ok": true}'}], linear("out"))
    run = run_to_end(acme, document)

    artifacts = {a.name: a for a in Artifact.objects.filter(run=run)}
    assert set(artifacts) == {"out.json", "trace.json"}
    assert json.loads(artifacts["out.json"].file.read()) == {"ok": True}


def test_a_failed_run_still_has_its_trace(acme):
    document = spec([{"id": "bad", "type": "transform", "template": "{{ inputs.nope }}"}], linear("bad"),
                    inputs={"nope": {"type": "string"}})
    run = run_to_end(acme, document)

    assert run.status == Run.Status.FAILED
    trace = json.loads(Artifact.objects.get(run=run, name="trace.json").file.read())
    assert trace["steps"][-1]["status"] == "failed" and "nope" in trace["steps"][-1]["error"]

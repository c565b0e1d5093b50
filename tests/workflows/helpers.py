"""What the workflow API tests share: URLs, a quick way to make a workflow, and checks."""
import json

from workflows.management.commands.load_catalog import CATALOG_DIR
from workflows.models import Workflow, WorkflowVersion

from .spec_samples import linear_spec

LIST = "/api/v1/workflows/"
IMPORT = "/api/v1/workflows/import/"
VALIDATE = "/api/v1/spec/validate"
SCHEMA = "/api/v1/spec/schema"


def detail(slug, rest=""):
    return f"{LIST}{slug}/{rest}"


def make_workflow(org, spec=None, *, author=None, publish=False, **fields):
    workflow = Workflow.create_with_spec(org, spec or linear_spec(), author=author, **fields)
    if publish:
        workflow.publish(author=author)
    return workflow


def catalog_spec(slug):
    return json.loads((CATALOG_DIR / f"{slug}.json").read_text())["spec"]


def revised_spec():
    """linear_spec() with one node added, one removed, one changed, and a new name."""
    spec = linear_spec()
    spec["name"] = "Linear, revised"
    spec["nodes"][1]["prompt"] = "Outline {{ inputs.topic }} in five points"
    spec["nodes"] = [node for node in spec["nodes"] if node["id"] != "draft"]
    spec["nodes"].insert(2, {"id": "polish", "type": "llm", "source": "writer",
                             "prompt": "Polish {{ nodes.outline.output }}"})
    spec["nodes"][3]["value"] = "{{ nodes.polish.output }}"
    spec["edges"] = [
        {"from": "start", "to": "outline"},
        {"from": "outline", "to": "polish"},
        {"from": "polish", "to": "done"},
    ]
    return spec


def counts():
    """(workflows, versions) in the whole database."""
    return Workflow.objects.count(), WorkflowVersion.objects.count()


def error_of(response, status, code=None):
    """The {"code", "message", "details"} of an error response, after checking its status."""
    assert response.status_code == status, response.content[:500]
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    if code is not None:
        assert error["code"] == code, error
    return error

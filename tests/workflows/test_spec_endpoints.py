"""The stateless spec endpoints: validate a document, and read the spec's JSON Schema."""
import json

from workflows.nodes import NODE_TYPES

from .helpers import SCHEMA, VALIDATE, catalog_spec, counts, error_of
from .spec_samples import linear_spec


def test_a_valid_spec_validates(api_as, bob, acme):
    response = api_as(bob).post(VALIDATE, catalog_spec("ticket-triage"), format="json")

    assert response.status_code == 200
    assert response.json() == {"valid": True, "errors": []}
    assert counts() == (0, 0)


def test_an_invalid_spec_gets_every_error_with_a_200(api_as, bob, acme):
    spec = linear_spec()
    spec["version"] = 2
    spec["nodes"][1]["source"] = "ghost"
    spec["nodes"][2]["prompt"] = "Draft from {{ nodes.nowhere.output }}"
    spec["edges"].append({"from": "done", "to": "start"})

    response = api_as(bob).post(VALIDATE, spec, format="json")

    assert response.status_code == 200
    body = response.json()
    assert body["valid"] is False
    assert all(set(e) == {"path", "code", "message"} and e["message"] for e in body["errors"])
    found = {(e["path"], e["code"]) for e in body["errors"]}
    assert {("$.version", "schema.literal_error"), ("$.nodes[1].source", "reference.unknown_source"),
            ("$.nodes[2].prompt", "template.unknown_node")} <= found
    assert any(code.startswith("graph.") for _, code in found)


def test_validate_reports_malformed_json_in_the_body(api_as, bob, acme):
    response = api_as(bob).post(VALIDATE, '{"version": 1,', content_type="application/json")

    assert response.status_code == 200
    assert [e["code"] for e in response.json()["errors"]] == ["json.invalid"]


def test_a_viewer_and_a_read_only_key_may_validate(api_as, vera, key_client):
    for client in (api_as(vera), key_client(["read"], role="viewer")):
        response = client.post(VALIDATE, linear_spec(), format="json")
        assert response.status_code == 200
        assert response.json()["valid"] is True


def test_validate_needs_a_signed_in_caller(client, db):
    response = client.post(VALIDATE, json.dumps(linear_spec()), content_type="application/json")

    assert response.status_code in (401, 403)
    assert response.json()["error"]["code"] == "not_authenticated"


def test_the_schema_describes_every_node_type(client, db):
    response = client.get(SCHEMA)

    assert response.status_code == 200
    schema = response.json()
    assert schema["$id"] == "urn:agentflow:workflow-spec:v1"
    assert {"version", "name", "nodes"} <= set(schema["required"])
    text = json.dumps(schema)
    for node_type in NODE_TYPES:
        assert f'"{node_type}"' in text, node_type

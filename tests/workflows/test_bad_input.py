"""Whatever arrives, the API answers in its error format, never with a 500, and saves nothing."""
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from .helpers import IMPORT, LIST, VALIDATE, counts, detail, error_of, make_workflow
from .spec_samples import linear_spec

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture
def client(api_as, bob):
    return api_as(bob)


@pytest.fixture
def flow(acme):
    return make_workflow(acme, slug="flow")


def _post_raw(client, url, body, content_type="application/json"):
    return client.post(url, body, content_type=content_type)


def _write_urls():
    return [LIST, detail("flow", "versions/"), IMPORT]


def test_malformed_json_is_a_400(client, flow):
    before = counts()

    for url in _write_urls():
        for body in ('{"spec": {', "{'spec': 1}", '{"spec": 1} trailing', "\xff"):
            error = error_of(_post_raw(client, url, body), 400, "parse_error")
            assert error["message"]

    assert counts() == before


def test_nan_and_infinity_are_not_json(client, flow):
    before = counts()

    for url in _write_urls():
        for constant in ("NaN", "Infinity", "-Infinity"):
            body = json.dumps(linear_spec())[:-1] + f', "x": {constant}}}'
            error_of(_post_raw(client, url, '{"spec": %s}' % body), 400, "parse_error")
    report = _post_raw(client, VALIDATE, json.dumps(linear_spec()).replace("0}", "NaN}", 1))

    assert report.status_code == 200
    assert [e["code"] for e in report.json()["errors"]] == ["json.invalid"]
    assert counts() == before


def test_deeply_nested_brackets_are_refused(client, flow):
    before = counts()

    for url in _write_urls():
        error_of(_post_raw(client, url, DEEP), 400, "parse_error")
        error_of(_post_raw(client, url, '{"spec": %s}' % DEEP), 400, "parse_error")
    upload = SimpleUploadedFile("deep.json", DEEP.encode())
    imported = client.post(IMPORT, {"file": upload}, format="multipart")
    validated = _post_raw(client, VALIDATE, DEEP)

    assert error_of(imported, 400, "invalid_spec")["details"][0]["code"] == "limit.depth"
    assert validated.status_code == 200
    assert [e["code"] for e in validated.json()["errors"]] == ["limit.depth"]
    assert counts() == before


def _spec_of_size(size):
    """A valid-looking spec of about `size` bytes, made of many strings each under the string limit."""
    spec = linear_spec()
    n = 0
    while len(json.dumps(spec)) < size:
        spec["inputs"][f"field_{n}"] = {"type": "string", "description": "x" * 50_000}
        n += 1
    return spec


def test_a_spec_over_the_spec_limit_is_refused(client, flow, settings):
    limit = settings.AGENTFLOW_SPEC_LIMITS["body_bytes"]
    assert limit < settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    spec = _spec_of_size(limit + 10)
    before = counts()

    created = client.post(LIST, {"spec": spec}, format="json")
    drafted = client.post(detail("flow", "versions/"), {"spec": spec}, format="json")
    imported = client.post(IMPORT, spec, format="json")
    validated = client.post(VALIDATE, spec, format="json")

    for response in (created, drafted, imported):
        assert [d["code"] for d in error_of(response, 400, "invalid_spec")["details"]] == ["limit.body_size"]
    assert validated.status_code == 200
    assert [e["code"] for e in validated.json()["errors"]] == ["limit.body_size"]
    assert counts() == before


def test_a_body_over_the_upload_limit_is_a_413(client, flow, settings):
    body = json.dumps({"spec": _spec_of_size(settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10)})
    before = counts()

    for url in _write_urls() + [VALIDATE]:
        error_of(_post_raw(client, url, body), 413, "body_too_large")

    assert counts() == before


def test_wrong_types_in_the_request_are_400s(client, flow):
    before = counts()
    cases = [
        (LIST, {"spec": None}, "$.spec"),
        (LIST, {"spec": linear_spec(), "name": ["A", "list"]}, "$.name"),
        (LIST, {"spec": linear_spec(), "category": {"a": 1}}, "$.category"),
        (LIST, {"spec": linear_spec(), "slug": "not a slug"}, "$.slug"),
        (LIST, {"spec": linear_spec(), "message": ["m"]}, "$.message"),
        (detail("flow", "versions/"), {"spec": linear_spec(), "message": {"m": 1}}, "$.message"),
        (detail("flow", "versions/"), {"message": "no spec"}, "$.spec"),
        (detail("flow", "publish/"), {"message": ["x"]}, "$.message"),
    ]

    for url, body, path in cases:
        error = error_of(client.post(url, body, format="json"), 400, "invalid")
        assert path in {d["path"] for d in error["details"]}, (url, body)
    for body in ([], "a string", 42, None):
        error_of(client.post(LIST, body, format="json"), 400)
    error_of(client.patch(detail("flow"), {"status": 3}, format="json"), 400, "invalid")

    assert counts() == before
    assert flow.versions.get().state == "draft"


def test_a_spec_of_the_wrong_type_is_an_invalid_spec(client, flow):
    before = counts()

    for spec, code in (([1, 2], "json.not_object"), ("not json", "json.invalid"), (5, "json.not_object")):
        for url in (LIST, detail("flow", "versions/")):
            error = error_of(client.post(url, {"spec": spec}, format="json"), 400, "invalid_spec")
            assert [d["code"] for d in error["details"]] == [code]
    error_of(client.post(IMPORT, [1, 2], format="json"), 400, "invalid_spec")

    assert counts() == before


def test_unknown_fields_in_the_envelope_are_named(client, alice, flow):
    before = counts()

    created = client.post(LIST, {"spec": linear_spec(), "organization": 2, "author": alice.pk}, format="json")
    drafted = client.post(detail("flow", "versions/"), {"spec": linear_spec(), "state": "published"}, format="json")
    published = client.post(detail("flow", "publish/"), {"published_by": alice.pk}, format="json")
    patched = client.patch(detail("flow"), {"created_by": alice.pk, "latest_version": 9}, format="json")

    def unknown(response):
        return {d["path"] for d in error_of(response, 400, "invalid")["details"] if d["code"] == "unknown_field"}

    assert unknown(created) == {"$.organization", "$.author"}
    assert unknown(drafted) == {"$.state"}
    assert unknown(published) == {"$.published_by"}
    assert unknown(patched) == {"$.created_by", "$.latest_version"}
    assert counts() == before
    assert flow.versions.get().state == "draft"
    assert flow.created_by is None


def test_unknown_fields_in_the_spec_are_refused(client, flow):
    spec = linear_spec()
    spec["owner"] = "mallory"
    spec["nodes"][1]["temprature"] = 0.2
    before = counts()

    response = client.post(LIST, {"spec": spec}, format="json")

    error = error_of(response, 400, "invalid_spec")
    assert {(d["path"], d["code"]) for d in error["details"]} == {
        ("$.owner", "schema.extra_forbidden"), ("$.nodes[1].temprature", "schema.extra_forbidden"),
    }
    assert counts() == before


def test_a_spec_with_many_problems_lists_them_all(client, flow):
    spec = linear_spec()
    spec["name"] = ""
    spec["inputs"]["topic"]["type"] = "colour"
    spec["nodes"][1]["source"] = "ghost"
    spec["nodes"][2]["prompt"] = "Draft {{ nodes.done.output }}"
    spec["edges"].append({"from": "draft", "to": "nowhere"})
    before = counts()

    for url in (LIST, detail("flow", "versions/")):
        error = error_of(client.post(url, {"spec": spec}, format="json"), 400, "invalid_spec")
        found = {(d["path"], d["code"]) for d in error["details"]}
        assert {
            ("$.name", "schema.string_too_short"),
            ("$.inputs.topic.type", "schema.literal_error"),
            ("$.nodes[1].source", "reference.unknown_source"),
            ("$.edges[3].to", "graph.unknown_node"),
        } <= found, found
        assert all(d["message"] for d in error["details"])
        assert str(len(error["details"])) in error["message"]

    assert counts() == before


def test_an_unsupported_content_type_is_a_415(client, flow):
    before = counts()

    response = _post_raw(client, LIST, "spec: yes", content_type="text/yaml")

    error_of(response, 415, "unsupported_media_type")
    assert counts() == before


def test_null_characters_are_refused_not_stored(client, flow):
    spec = linear_spec()
    spec["nodes"][1]["prompt"] = "Outline\x00"
    before = counts()

    in_spec = client.post(LIST, {"spec": spec}, format="json")
    in_name = client.post(LIST, {"spec": linear_spec(), "name": "A\x00B"}, format="json")
    in_search = client.get(LIST, {"search": "a\x00"})

    assert error_of(in_spec, 400, "invalid_spec")["details"][0]["path"] == "$.nodes[1].prompt"
    assert error_of(in_name, 400, "invalid")["details"][0]["path"] == "$.name"
    error_of(in_search, 400, "invalid")
    assert counts() == before

"""Saving drafts, reading versions, publishing and diffing them through the API."""
import pytest

from workflows.models import WorkflowVersion

from .helpers import detail, error_of, make_workflow, revised_spec
from .spec_samples import linear_spec


@pytest.fixture
def flow(acme, alice):
    return make_workflow(acme, author=alice, slug="flow")


def test_saving_a_new_spec_makes_draft_v2(api_as, bob, flow):
    response = api_as(bob).post(detail("flow", "versions/"), {"spec": revised_spec(), "message": "Polish"},
                                format="json")

    assert response.status_code == 201
    body = response.json()
    assert (body["number"], body["state"], body["message"], body["author"]) == (2, "draft", "Polish", "bob@acme.test")
    assert body["spec"]["name"] == "Linear, revised"
    v2 = flow.versions.get(number=2)
    assert (v2.state, v2.author, v2.spec_hash) == ("draft", bob, body["spec_hash"])
    assert v2.spec_hash != flow.versions.get(number=1).spec_hash


def test_saving_the_same_spec_twice_makes_no_new_version(api_as, bob, flow):
    client = api_as(bob)

    first = client.post(detail("flow", "versions/"), {"spec": revised_spec()}, format="json")
    again = client.post(detail("flow", "versions/"), {"spec": revised_spec(), "message": "again"}, format="json")

    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["number"] == 2
    assert list(flow.versions.values_list("number", flat=True)) == [2, 1]


def test_saving_the_published_spec_again_makes_no_new_draft(api_as, bob, flow):
    flow.publish()

    response = api_as(bob).post(detail("flow", "versions/"), {"spec": linear_spec()}, format="json")

    assert response.status_code == 200
    assert (response.json()["number"], response.json()["state"]) == (1, "published")
    assert flow.versions.count() == 1


def test_an_invalid_draft_is_refused_with_every_error(api_as, bob, flow):
    spec = revised_spec()
    spec["edges"].append({"from": "done", "to": "nowhere"})
    del spec["name"]

    response = api_as(bob).post(detail("flow", "versions/"), {"spec": spec}, format="json")

    error = error_of(response, 400, "invalid_spec")
    assert {(d["path"], d["code"]) for d in error["details"]} >= {
        ("$.name", "schema.missing"), ("$.edges[3].to", "graph.unknown_node"),
    }
    assert flow.versions.count() == 1


def test_versions_are_listed_newest_first_and_read_by_number(api_as, vera, flow):
    flow.save_draft(revised_spec())
    client = api_as(vera)

    listing = client.get(detail("flow", "versions/"))
    one = client.get(detail("flow", "versions/1/"))

    assert listing.status_code == 200
    assert [v["number"] for v in listing.json()["results"]] == [2, 1]
    assert "spec" not in listing.json()["results"][0]
    assert one.status_code == 200
    assert one.json()["spec"] == flow.versions.get(number=1).spec
    error_of(client.get(detail("flow", "versions/3/")), 404, "not_found")
    error_of(client.get(detail("flow", "versions/99999999999999999999/")), 404, "not_found")


def test_publishing_a_version_by_number(api_as, bob, flow):
    response = api_as(bob).post(detail("flow", "versions/1/publish/"), {"message": "Go live"}, format="json")

    assert response.status_code == 200
    assert response.json()["state"] == "published"
    assert response.json()["published_at"]
    version = flow.versions.get(number=1)
    assert (version.state, version.published_by, version.message) == ("published", bob, "Go live")
    assert version.published_at is not None
    assert flow.organization.audit_events.filter(action="workflow.published").count() == 1


def test_publishing_the_latest_draft(api_as, bob, flow):
    flow.save_draft(revised_spec())

    response = api_as(bob).post(detail("flow", "publish/"))

    assert response.status_code == 200
    assert response.json()["number"] == 2
    assert dict(flow.versions.values_list("number", "state")) == {1: "draft", 2: "published"}
    assert flow.latest_published().number == 2


def test_publishing_twice_changes_nothing(api_as, bob, flow):
    flow.save_draft(revised_spec())
    client = api_as(bob)

    first = client.post(detail("flow", "publish/"))
    published_at = WorkflowVersion.objects.get(workflow=flow, number=2).published_at
    second = client.post(detail("flow", "publish/"))
    by_number = client.post(detail("flow", "versions/2/publish/"))

    assert first.status_code == second.status_code == by_number.status_code == 200
    assert first.json() == second.json() == by_number.json()
    assert WorkflowVersion.objects.get(workflow=flow, number=2).published_at == published_at
    # The older draft v1 is not published by the second call.
    assert dict(flow.versions.values_list("number", "state")) == {1: "draft", 2: "published"}
    assert flow.organization.audit_events.filter(action="workflow.published").count() == 1


def test_a_published_version_cannot_be_changed(flow):
    version = flow.publish()
    stored_spec = version.spec

    version.spec = {"version": 1, "name": "Changed"}
    with pytest.raises(ValueError, match="immutable"):
        version.save()
    with pytest.raises(ValueError, match="immutable"):
        version.save(update_fields=["spec"])
    version.message = "Rewritten history"
    with pytest.raises(ValueError, match="immutable"):
        version.save(update_fields=["message"])

    version.refresh_from_db()
    assert (version.spec, version.message) == (stored_spec, "Created")


def test_a_draft_cannot_be_edited_either(flow):
    draft = flow.latest_version()
    draft.spec = revised_spec()

    with pytest.raises(ValueError, match="immutable"):
        draft.save()
    with pytest.raises(ValueError, match="immutable"):
        draft.save(update_fields=["spec", "spec_hash"])
    draft.refresh_from_db()
    assert draft.spec["name"] == "Linear"


def test_the_api_offers_no_way_to_edit_a_version(api_as, alice, flow):
    flow.publish()
    client = api_as(alice)
    url = detail("flow", "versions/1/")

    for method in (client.put, client.patch, client.delete):
        response = method(url, {"spec": revised_spec(), "message": "x"}, format="json")
        assert response.status_code == 405

    version = flow.versions.get()
    assert (version.spec["name"], version.message, version.state) == ("Linear", "Created", "published")


def test_the_diff_lists_nodes_edges_and_fields(api_as, vera, flow):
    flow.save_draft(revised_spec())

    response = api_as(vera).get(detail("flow", "diff/"), {"from": 1, "to": 2})

    assert response.status_code == 200
    diff = response.json()
    assert (diff["from"], diff["to"], diff["changed"]) == (1, 2, True)
    assert [n["id"] for n in diff["nodes"]["added"]] == ["polish"]
    assert [n["id"] for n in diff["nodes"]["removed"]] == ["draft"]
    changed = {c["id"]: c["fields"] for c in diff["nodes"]["changed"]}
    assert set(changed) == {"outline", "done"}
    assert changed["outline"] == [{
        "path": "$.nodes[outline].prompt",
        "before": "Outline {{ inputs.topic }}",
        "after": "Outline {{ inputs.topic }} in five points",
    }]
    assert sorted(f"{e['from']}->{e['to']}" for e in diff["edges"]["added"]) == ["outline->polish", "polish->done"]
    assert sorted(f"{e['from']}->{e['to']}" for e in diff["edges"]["removed"]) == ["draft->done", "outline->draft"]
    assert diff["fields"] == [{"path": "$.name", "before": "Linear", "after": "Linear, revised"}]


def test_the_diff_defaults_to_the_two_latest_versions(api_as, vera, flow):
    flow.save_draft(revised_spec())

    response = api_as(vera).get(detail("flow", "diff/"))

    assert (response.json()["from"], response.json()["to"]) == (1, 2)


def test_a_version_against_itself_has_no_changes(api_as, vera, flow):
    response = api_as(vera).get(detail("flow", "diff/"), {"from": 1, "to": 1})

    assert response.json()["changed"] is False
    assert response.json()["fields"] == []


def test_the_diff_refuses_what_is_not_a_version_number(api_as, vera, flow):
    client = api_as(vera)

    for bad in ("two", "-1", "1.5", "²", "9" * 5000):
        error_of(client.get(detail("flow", "diff/"), {"from": 1, "to": bad}), 400, "invalid")
    error_of(client.get(detail("flow", "diff/"), {"from": 1, "to": 7}), 404, "not_found")

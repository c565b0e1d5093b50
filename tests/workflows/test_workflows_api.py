"""Creating, listing, reading, changing and archiving workflows through the API."""
from workflows import spec as specs
from workflows.models import Workflow, WorkflowVersion

from .helpers import LIST, catalog_spec, detail, error_of, make_workflow
from .spec_samples import linear_spec


def test_creating_a_workflow_saves_its_spec_as_draft_v1(api_as, alice, acme):
    response = api_as(alice).post(
        LIST, {"name": "Blog writer", "spec": linear_spec(), "category": "writing", "message": "First cut"},
        format="json",
    )

    assert response.status_code == 201
    body = response.json()
    assert body["slug"] == "blog-writer"
    assert body["category"] == "writing"
    assert body["latest_version"]["number"] == 1
    assert body["latest_version"]["state"] == "draft"
    assert body["published_version"] is None
    assert "spec" not in body and "organization" not in body

    workflow = Workflow.objects.get(slug="blog-writer")
    assert workflow.organization == acme
    assert workflow.created_by == alice
    version = workflow.versions.get()
    assert (version.number, version.state, version.message, version.author) == (1, "draft", "First cut", alice)
    assert version.spec_hash == specs.spec_hash(version.spec) == body["latest_version"]["spec_hash"]
    assert len(version.spec_hash) == 64


def test_the_name_and_description_default_to_the_specs(api_as, bob, acme):
    spec = linear_spec()
    spec["description"] = "Outlines then drafts."

    response = api_as(bob).post(LIST, {"spec": spec}, format="json")

    assert response.status_code == 201
    workflow = Workflow.objects.get(pk=response.json()["id"])
    assert (workflow.name, workflow.slug, workflow.description) == ("Linear", "linear", "Outlines then drafts.")


def test_a_second_workflow_with_the_same_name_gets_a_fresh_slug(api_as, alice, acme):
    client = api_as(alice)

    first = client.post(LIST, {"spec": linear_spec()}, format="json")
    second = client.post(LIST, {"spec": linear_spec()}, format="json")

    assert (first.json()["slug"], second.json()["slug"]) == ("linear", "linear-2")
    assert Workflow.objects.for_org(acme).count() == 2


def test_a_taken_slug_is_refused(api_as, alice, acme):
    make_workflow(acme, slug="mine")

    response = api_as(alice).post(LIST, {"slug": "mine", "spec": linear_spec()}, format="json")

    error = error_of(response, 400, "invalid")
    assert error["details"][0]["path"] == "$.slug"
    assert Workflow.objects.count() == 1


def test_a_workflow_needs_a_spec(api_as, alice, acme):
    response = api_as(alice).post(LIST, {"name": "Empty"}, format="json")

    assert error_of(response, 400)["details"][0]["path"] == "$.spec"
    assert not Workflow.objects.exists()


def test_the_list_pages_with_a_working_next_link(api_as, alice, acme):
    for n in range(5):
        make_workflow(acme, name=f"Flow {n}")
    client = api_as(alice)

    first = client.get(LIST, {"page_size": 2})
    assert first.status_code == 200
    seen = [w["slug"] for w in first.json()["results"]]
    next_url = first.json()["next"]
    while next_url:
        page = client.get(next_url)
        assert page.status_code == 200
        seen += [w["slug"] for w in page.json()["results"]]
        next_url = page.json()["next"]

    assert len(first.json()["results"]) == 2
    assert sorted(seen) == [f"flow-{n}" for n in range(5)]


def test_the_list_filters_by_status_and_category_and_searches(api_as, alice, acme):
    make_workflow(acme, name="Support bot", category="support")
    make_workflow(acme, name="Essay writer", category="writing", description="Long form essays")
    make_workflow(acme, name="Old flow", category="writing").archive()
    client = api_as(alice)

    def slugs(**params):
        response = client.get(LIST, params)
        assert response.status_code == 200
        return sorted(w["slug"] for w in response.json()["results"])

    assert slugs(status="archived") == ["old-flow"]
    assert slugs(status="active") == ["essay-writer", "support-bot"]
    assert slugs(category="writing") == ["essay-writer", "old-flow"]
    assert slugs(category="writing", status="active") == ["essay-writer"]
    assert slugs(search="essays") == ["essay-writer"]
    assert slugs(search="support") == ["support-bot"]
    assert error_of(client.get(LIST, {"status": "deleted"}), 400)["details"][0]["path"] == "$.status"


def test_a_workflow_is_read_by_slug(api_as, vera, acme):
    workflow = make_workflow(acme, catalog_spec("ticket-triage"), slug="triage", category="support", publish=True)

    response = api_as(vera).get(detail("triage"))

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["name"], body["category"]) == (workflow.pk, "Ticket triage", "support")
    assert body["published_version"] == 1
    assert body["latest_version"]["state"] == "published"
    assert error_of(api_as(vera).get(detail("nope")), 404, "not_found")


def test_patch_changes_name_description_and_status(api_as, bob, acme):
    workflow = make_workflow(acme, slug="flow")

    response = api_as(bob).patch(
        detail("flow"), {"name": "Renamed", "description": "Now documented", "status": "paused"}, format="json"
    )

    assert response.status_code == 200
    assert (response.json()["name"], response.json()["status"]) == ("Renamed", "paused")
    workflow.refresh_from_db()
    assert (workflow.name, workflow.description, workflow.status) == ("Renamed", "Now documented", "paused")
    assert workflow.versions.count() == 1


def test_patch_cannot_change_the_spec(api_as, bob, acme):
    workflow = make_workflow(acme, slug="flow")
    before = workflow.versions.get().spec_hash
    spec = linear_spec()
    spec["name"] = "Sneaky"

    response = api_as(bob).patch(detail("flow"), {"spec": spec}, format="json")

    assert error_of(response, 400)["details"][0]["path"] == "$.spec"
    assert list(workflow.versions.values_list("spec_hash", flat=True)) == [before]


def test_patch_refuses_an_unknown_status(api_as, bob, acme):
    workflow = make_workflow(acme, slug="flow")

    response = api_as(bob).patch(detail("flow"), {"status": "deleted"}, format="json")

    error_of(response, 400)
    workflow.refresh_from_db()
    assert workflow.status == "active"


def test_archive_archives_and_is_repeatable(api_as, bob, acme):
    workflow = make_workflow(acme, slug="flow")
    client = api_as(bob)

    first = client.post(detail("flow", "archive/"))
    second = client.post(detail("flow", "archive/"))

    assert first.status_code == second.status_code == 200
    assert second.json()["status"] == "archived"
    workflow.refresh_from_db()
    assert workflow.status == Workflow.Status.ARCHIVED
    assert WorkflowVersion.objects.filter(workflow=workflow).count() == 1
    assert acme.audit_events.filter(action="workflow.archived").count() == 1

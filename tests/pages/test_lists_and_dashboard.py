"""The dashboard, the workflows list and the runs list render the organization's data,
filter it and page through it."""
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from runs.models import Run
from workflows.models import Workflow


@pytest.fixture
def runs(acme, alice, install_workflow):
    """Three finished runs of two workflows, with usage, and one queued."""
    learn = install_workflow("learn-a-topic")
    triage = install_workflow("ticket-triage")
    now = timezone.now()

    def make(workflow, status, tokens, cost, **fields):
        return Run.objects.create(organization=acme, workflow=workflow, version=workflow.latest_published(),
                                  status=status, input_tokens=tokens, output_tokens=tokens, cost_usd=Decimal(cost),
                                  trigger="manual", started_at=now - timedelta(seconds=90), finished_at=now, **fields)

    return [
        make(learn, "succeeded", 100, "0.0100"),
        make(learn, "failed", 10, "0.0010", error="node 'explain' failed: the provider said no"),
        make(triage, "succeeded", 50, "0.0200", mode="test"),
        make(triage, "queued", 0, "0", created_at=now - timedelta(days=40)),
    ]


def test_the_dashboard_shows_running_recent_failures_and_this_month(runs, acme, bob, client_as):
    response = client_as(bob).get("/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Running now" in html and f'href="/runs/{runs[3].pk}/"' in html
    assert "the provider said no" in html
    assert "<dd>3</dd>" in html  # runs this month (the queued one is from last month)
    assert "<dd>320</dd>" in html  # tokens this month
    assert "<dd>$0.0310</dd>" in html  # spend this month
    assert 'href="/workflows/learn-a-topic/"' in html and 'href="/workflows/ticket-triage/"' in html


def test_the_dashboard_of_a_new_organization_is_empty_but_fine(acme, alice, client_as):
    html = client_as(alice).get("/").content.decode()
    assert "Nothing is running." in html and "No runs yet." in html and "$0.0000" in html


def test_the_workflows_list_filters_by_category_status_and_search(acme, bob, client_as, install_workflow):
    for slug in ("learn-a-topic", "ticket-triage", "map-over-items"):
        install_workflow(slug)
    Workflow.objects.filter(slug="map-over-items").update(status="paused")
    client = client_as(bob)

    html = client.get("/workflows/").content.decode()
    assert "3 workflows" in html and "Learn a topic" in html and "Ticket triage" in html
    assert "<td>v1</td>" in html and '<span class="badge badge-paused">Paused</span>' in html

    html = client.get("/workflows/", {"category": "support"}).content.decode()
    assert "Ticket triage" in html and "Learn a topic" not in html
    html = client.get("/workflows/", {"status": "paused"}).content.decode()
    assert "1 workflow found" in html and 'href="/workflows/map-over-items/"' in html
    html = client.get("/workflows/", {"q": "TICKET"}).content.decode()
    assert "Ticket triage" in html and "Learn a topic" not in html
    html = client.get("/workflows/", {"q": "nothing like this"}).content.decode()
    assert "No workflow matches these filters." in html


def test_the_workflow_page_lists_versions_and_recent_runs(runs, acme, alice, bob, client_as):
    workflow = runs[0].workflow
    spec = workflow.latest_published().spec
    workflow.save_draft({**spec, "description": "Changed"}, author=alice, message="Try a new prompt")
    html = client_as(bob).get(f"/workflows/{workflow.slug}/").content.decode()
    assert "<td>v2</td>" in html and "Try a new prompt" in html and '<span class="badge badge-draft">Draft</span>' in html
    assert "<td>v1</td>" in html and '<span class="badge badge-published">Published</span>' in html
    assert "alice@acme.test" in html
    assert f'href="/runs/{runs[0].pk}/"' in html and f'href="/runs/{runs[2].pk}/"' not in html
    assert "Runs the published version, v1." in html


def test_the_runs_list_filters(runs, bob, client_as):
    client = client_as(bob)
    html = client.get("/runs/").content.decode()
    assert "4 runs" in html and all(f'href="/runs/{run.pk}/"' in html for run in runs)

    def shown(**query):
        html = client.get("/runs/", query).content.decode()
        return {run for run in runs if f'href="/runs/{run.pk}/"' in html}

    assert shown(workflow="ticket-triage") == {runs[2], runs[3]}
    assert shown(status="failed") == {runs[1]}
    assert shown(mode="test") == {runs[2]}
    assert shown(trigger="api") == set()
    today = timezone.localdate()
    assert shown(since=today.isoformat()) == set(runs[:3])
    assert shown(until=(today - timedelta(days=30)).isoformat()) == {runs[3]}
    assert shown(workflow="learn-a-topic", status="succeeded") == {runs[0]}
    # A bad filter value is reported, not a 500.
    response = client.get("/runs/", {"status": "exploded"})
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()


def test_the_runs_list_pages_by_50(acme, bob, client_as, install_workflow):
    workflow = install_workflow("learn-a-topic")
    version = workflow.latest_published()
    Run.objects.bulk_create([Run(organization=acme, workflow=workflow, version=version, status="succeeded")
                             for _ in range(55)])
    client = client_as(bob)
    html = client.get("/runs/", {"status": "succeeded"}).content.decode()
    assert "55 runs found" in html and "Page 1 of 2" in html
    assert html.count('class="mono" href="/runs/') == 50
    assert 'href="?status=succeeded&amp;page=2"' in html
    html = client.get("/runs/", {"status": "succeeded", "page": 2}).content.decode()
    assert html.count('class="mono" href="/runs/') == 5 and 'rel="prev"' in html

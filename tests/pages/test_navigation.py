"""The header's links follow the role, and the workflow page draws the graph it runs."""
from accounts.models import Membership


def test_admins_and_owners_see_the_credentials_link(acme, alice, bob, client_as):
    link = '<a href="/settings/credentials/">Credentials</a>'
    assert link in client_as(alice).get("/").content.decode()  # owner
    assert link not in client_as(bob).get("/").content.decode()  # editor
    Membership.objects.filter(organization=acme, user=bob).update(role="admin")
    assert link in client_as(bob).get("/").content.decode()


def test_the_workflow_page_draws_the_graph_of_the_version_it_runs(acme, bob, client_as, install_workflow):
    install_workflow("ticket-triage")
    html = client_as(bob).get("/workflows/ticket-triage/").content.decode()
    graph = html.split('<svg class="graph"')[1].split("</svg>")[0]
    assert '<title id="graph-title">Graph of Ticket triage</title>' in graph
    assert "8 nodes in 5 layers, read left to right." in graph
    assert graph.count('class="node node-none"') == 8
    assert "graph-link" not in graph  # no run: nothing to link to
    assert "<title>classify → bug_report when nodes.classify.output.route == &#x27;bug&#x27;</title>" in graph

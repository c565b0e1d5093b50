"""Another organization's run is a 404 in the browser and its socket is refused."""
from .conftest import CHARLIE
from .helpers import SOCKET_PROBE, start_run, wait_for_status


def test_another_organization_gets_404_and_a_refused_socket(product, sign_in, charlie):
    admin = sign_in()
    run_id = start_run(admin, "ticket-triage")
    wait_for_status(admin, "waiting")
    owner_socket = admin.evaluate(SOCKET_PROBE, f"/ws/runs/{run_id}/?after=0")
    assert owner_socket["opened"] and owner_socket["types"][0] == "event"

    page = sign_in(*CHARLIE)
    response = page.goto(f"/runs/{run_id}/")
    assert response.status == 404
    assert page.get_by_role("heading", name="Not found").is_visible()
    assert "Ticket triage" not in page.content()
    assert page.request.get(f"/runs/{run_id}/?fragment=1").status == 404
    assert page.request.get(f"/api/v1/runs/{run_id}/events/").status == 404

    socket = page.evaluate(SOCKET_PROBE, f"/ws/runs/{run_id}/?after=0")
    assert socket == {"opened": False, "code": 4403, "types": []}

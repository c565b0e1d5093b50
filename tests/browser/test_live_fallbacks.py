"""The run page when the live socket misbehaves: it reads missed events from the API, polls
while it has no socket, keeps what the user typed, and reconnects from the last seq it saw.

The run's socket is answered by the test here (Playwright routes it), so each failure is
exactly the one described."""
import json
import re

from .helpers import api_run, is_same_page, mark_page, start_run, wait_for_status

SOCKET = re.compile(r"/ws/runs/")


def _wait_for(page, items, count=1):
    for _ in range(200):
        if len(items) >= count:
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"expected {count}, got {len(items)}")


def _waiting_run(sign_in):
    page = sign_in()
    run_id = start_run(page, "ticket-triage")
    wait_for_status(page, "waiting")
    return page, run_id


def _event(run_id, seq):
    return json.dumps({"type": "event", "event": {"run": run_id, "seq": seq, "type": "log", "data": {},
                                                  "at": "2026-01-01T00:00:00+00:00"}})


def test_it_reads_missed_events_from_the_api_when_seqs_jump(product, sign_in):
    page, run_id = _waiting_run(sign_in)
    sockets = []
    page.route_web_socket(SOCKET, lambda socket: sockets.append(socket))
    page.reload()
    seq = int(page.locator("[data-last-seq]").get_attribute("data-last-seq"))
    _wait_for(page, sockets)
    socket = sockets[0]
    assert socket.url.endswith(f"/ws/runs/{run_id}/?after={seq}")
    socket.send(json.dumps({"type": "replayed", "last_seq": seq}))
    page.get_by_text("Live: this page follows the run as it happens.").wait_for()

    with page.expect_request(lambda request: "/events/" in request.url) as missed:
        socket.send(_event(run_id, seq + 3))  # seq + 1 and seq + 2 never came
    assert missed.value.url.endswith(f"/api/v1/runs/{run_id}/events/?after={seq}")
    with page.expect_request(lambda request: "fragment=1" in request.url):
        pass  # and the live part is read again
    assert api_run(page, run_id)["status"] == "waiting"


def test_it_polls_while_the_socket_fails_and_keeps_a_typed_comment(product, sign_in):
    page, run_id = _waiting_run(sign_in)
    attempts = []

    def refuse(socket):
        attempts.append(socket.url)
        socket.close(code=1011)

    page.route_web_socket(SOCKET, refuse)
    page.reload()
    mark_page(page)
    page.get_by_text("Following the run by checking every few seconds.").wait_for()

    comment = page.get_by_label("Comment")
    comment.fill("Still thinking about it")
    for _ in range(2):
        with page.expect_response(lambda response: "fragment=1" in response.url):
            pass
    assert comment.input_value() == "Still thinking about it"
    assert page.evaluate("document.activeElement.id") == comment.get_attribute("id")

    # Someone else approves: the polled page follows the run to its end.
    token = next(cookie["value"] for cookie in page.context.cookies() if cookie["name"] == "csrftoken")
    response = page.request.post(f"/api/v1/runs/{run_id}/approve/", data={"node": "approve", "comment": "ok"},
                                 headers={"X-CSRFToken": token})
    assert response.status == 200, response.text()
    wait_for_status(page, "succeeded")
    assert is_same_page(page)
    assert page.get_by_text("This run has finished.").is_visible()
    assert len(attempts) >= 2  # it kept trying the socket meanwhile
    assert api_run(page, run_id)["status"] == "succeeded"


def test_it_reconnects_from_the_last_seq_it_saw(product, sign_in):
    page, run_id = _waiting_run(sign_in)
    sockets = []

    def answer(socket):
        sockets.append(socket)
        if len(sockets) == 1:
            socket.send(json.dumps({"type": "replayed", "last_seq": seq}))
            socket.send(_event(run_id, seq + 1))
            socket.close(code=1006)

    seq = int(page.locator("[data-last-seq]").get_attribute("data-last-seq"))
    page.route_web_socket(SOCKET, answer)
    page.reload()
    _wait_for(page, sockets, 2)
    assert sockets[0].url.endswith(f"?after={seq}")
    assert sockets[1].url.endswith(f"?after={seq + 1}")

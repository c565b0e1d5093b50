"""Following a run on its page: steps change status and tokens stream in as they happen, with
no reload, and a reload in the middle shows every step exactly once."""
import json
import re

from .helpers import (api_run, is_same_page, mark_page, node_label, run_status, screenshot, start_run,
                      wait_for_node, wait_for_status)


def _step_pk(page, node):
    return page.locator(f"#graph-node-{node}").get_attribute("href").removeprefix("#step-")


def _stream_text(page, pk):
    return page.locator(f"#step-{pk} .stream").text_content()


def _wait_for_stream(page, pk, longer_than):
    page.wait_for_function(
        "([pk, n]) => (document.querySelector('#step-' + pk + ' .stream')?.textContent || '').length > n",
        arg=[pk, longer_than])


def _bar(page, node):
    """(left %, width %) of a step's bar on the timeline."""
    style = page.locator(".tl-row", has=page.locator("a", has_text=re.compile(f"^{node}$"))).locator(".tl-bar") \
        .get_attribute("style")
    left, width = re.search(r"left: ([\d.]+)%; width: ([\d.]+)%", style).groups()
    return float(left), float(width)


def test_it_streams_tokens_and_updates_steps_without_a_reload(product, sign_in, slow_workflow):
    page = sign_in()
    frames = []
    page.on("websocket", lambda socket: socket.on("framereceived", lambda payload: frames.append(json.loads(payload))))
    run_id = start_run(page, slow_workflow)
    mark_page(page)

    wait_for_node(page, "explain", "Running")
    explain = _step_pk(page, "explain")
    _wait_for_stream(page, explain, 20)
    early = _stream_text(page, explain)
    _wait_for_stream(page, explain, len(early) + 20)
    later = _stream_text(page, explain)
    assert later.startswith(early)  # tokens are appended in order, nothing replaced
    screenshot(page, "run-streaming")

    # The two branches after the explanation run side by side.
    page.wait_for_function(
        "() => ['quiz', 'key_terms'].every((n) => (document.getElementById('graph-node-' + n)"
        "?.getAttribute('aria-label') || '').includes(': Running'))")
    assert "Succeeded" in node_label(page, "explain")
    explain_output = page.locator(f"#step-{explain}-output").text_content()
    assert explain_output.startswith(later.strip()[:40])

    wait_for_status(page, "succeeded")
    assert is_same_page(page), "the page was reloaded"
    screenshot(page, "run-finished")
    page.wait_for_function("() => document.querySelector('[data-run-announce]').textContent === 'Run status: Succeeded.'")
    assert {"delta", "event", "replayed"} <= {frame["type"] for frame in frames}
    assert all(frame["delta"]["step"] in (int(explain), int(_step_pk(page, "quiz")), int(_step_pk(page, "key_terms")))
               for frame in frames if frame["type"] == "delta")

    quiz, key_terms = _bar(page, "quiz"), _bar(page, "key_terms")
    assert max(quiz[0], key_terms[0]) < min(quiz[0] + quiz[1], key_terms[0] + key_terms[1])  # they overlap
    assert page.locator(".output-name", has_text="notes").is_visible()
    assert "Photosynthesis" in page.locator(".output-text").text_content()

    run = api_run(page, run_id)
    assert run["status"] == "succeeded" and run["trigger"] == "manual"
    assert sorted(step["node_id"] for step in run["steps"]) == sorted(
        page.locator(".step-panel h3 .mono").all_text_contents())
    assert all(step["status"] == "succeeded" for step in run["steps"])


def test_a_reload_in_the_middle_shows_every_step_once(product, sign_in, slow_workflow):
    page = sign_in()
    sockets = []
    page.on("websocket", lambda socket: sockets.append(socket.url))
    run_id = start_run(page, slow_workflow)
    wait_for_node(page, "quiz", "Running")

    page.reload()
    mark_page(page)
    assert run_status(page) == "running"
    seq = int(page.locator("[data-last-seq]").get_attribute("data-last-seq"))
    page.wait_for_function("(n) => n > 0", arg=len(sockets))  # the socket opens after the reload
    assert seq > 0 and sockets[-1].endswith(f"?after={seq}")

    def panels():
        nodes = page.locator(".step-panel h3 .mono").all_text_contents()
        assert len(nodes) == len(set(nodes)), f"a step is shown twice: {nodes}"
        return nodes

    assert {"start", "explain", "quiz", "key_terms"} <= set(panels())
    wait_for_status(page, "succeeded")
    assert is_same_page(page)
    nodes = panels()
    run = api_run(page, run_id)
    assert sorted(nodes) == sorted(step["node_id"] for step in run["steps"]) and len(nodes) == 6
    assert page.locator(".tl-rows .tl-row").count() == 6
    assert page.locator("svg.graph .node").count() == 6

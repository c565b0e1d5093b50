"""The controls of the run page in a browser: cancel a running run, approve a waiting step."""
from .helpers import api_run, is_same_page, mark_page, node_label, start_run, wait_for_node, wait_for_status


def test_it_cancels_a_running_run(product, sign_in, slow_workflow):
    page = sign_in()
    run_id = start_run(page, slow_workflow)
    wait_for_node(page, "explain", "Running")

    page.once("dialog", lambda dialog: dialog.accept())  # "Cancel this run?"
    page.get_by_role("button", name="Cancel run").click()
    page.wait_for_url(f"**/runs/{run_id}/")
    wait_for_status(page, "cancelled")

    assert page.get_by_role("button", name="Retry failed steps").is_visible()
    assert page.get_by_role("button", name="Cancel run").count() == 0
    assert "Not started" in page.locator("#run-live svg.graph").text_content()  # quiz, key_terms, …
    run = api_run(page, run_id)
    assert run["status"] == "cancelled"
    steps = {step["node_id"]: step["status"] for step in run["steps"]}
    assert steps["start"] == "succeeded" and steps["explain"] in ("cancelled", "failed")
    assert "quiz" not in steps or steps["quiz"] == "cancelled"
    assert not [node for node, status in steps.items() if status in ("running", "pending", "waiting")]


def test_it_approves_a_waiting_step_with_a_comment(product, sign_in):
    page = sign_in()
    run_id = start_run(page, "ticket-triage")
    mark_page(page)

    # The decision appears as the run reaches it, without a reload, and is announced.
    page.get_by_role("heading", name="Waiting for a decision: approve").wait_for()
    wait_for_status(page, "waiting")
    assert is_same_page(page)
    page.wait_for_function(
        "() => document.querySelector('[data-run-announce]').textContent.includes('approve is waiting for a decision')")
    assert "Waiting" in node_label(page, "approve")

    page.get_by_label("Comment").fill("Refund confirmed, send it.")
    page.get_by_role("button", name="Approve").click()
    page.wait_for_url(f"**/runs/{run_id}/")
    assert "Step “approve” approved." in page.locator(".messages").text_content()
    wait_for_status(page, "succeeded")
    assert "sent" in page.locator("#run-live").get_by_role("heading", name="outcome").locator("xpath=following-sibling::*[1]").text_content()
    assert "Approved by admin@example.com" in page.locator(f"#step-{_pk(page, 'approve')}").text_content()

    run = api_run(page, run_id)
    approve = next(step for step in run["steps"] if step["node_id"] == "approve")
    assert run["status"] == "succeeded"
    assert approve["output"] == {"decision": "approved", "comment": "Refund confirmed, send it.",
                                 "by": "admin@example.com"}


def _pk(page, node):
    return page.locator(f"#graph-node-{node}").get_attribute("href").removeprefix("#step-")

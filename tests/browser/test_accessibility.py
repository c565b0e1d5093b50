"""The pages pass an automated accessibility scan (axe-core), and the run page can be used
with the keyboard alone, with a visible focus."""
import pytest

from .helpers import api_run, screenshot, start_run, unavailable, wait_for_status


@pytest.fixture(scope="module")
def axe():
    """axe-core (bundled by the axe-playwright-python package), run inside the page."""
    try:
        from axe_playwright_python.sync_playwright import Axe
    except ImportError:
        unavailable("axe-playwright-python is not installed (pip install axe-playwright-python)")
    return Axe()


def test_the_pages_have_no_accessibility_violations(product, sign_in, axe):
    def scan(page):
        results = axe.run(page)
        return results.violations_count, results.generate_report()

    page = sign_in()
    waiting = start_run(page, "ticket-triage")
    wait_for_status(page, "waiting")
    finished = start_run(page, "learn-a-topic")
    wait_for_status(page, "succeeded")
    for path in ("/", "/workflows/", "/workflows/ticket-triage/", "/runs/", "/runs/?status=exploded",
                 f"/runs/{waiting}/", f"/runs/{finished}/"):
        page.goto(path)
        screenshot(page, "page" + path.replace("/", "-").replace("?", "-").rstrip("-"))
        count, report = scan(page)
        assert count == 0, f"{path}:\n{report}"


def _tab_to(page, element_id, limit=80):
    """Press Tab until the element with this id has the focus; returns the ids passed."""
    seen = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.id || document.activeElement.tagName")
        seen.append(focused)
        if focused == element_id:
            return seen
    raise AssertionError(f"Tab never reached #{element_id}; went through {seen}")


FOCUS_STYLE = """(el) => {
  const style = getComputedStyle(el);
  return style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2;
}"""


def test_the_run_page_works_by_keyboard(product, sign_in):
    page = sign_in()
    run_id = start_run(page, "ticket-triage")
    wait_for_status(page, "waiting")
    page.goto(f"/runs/{run_id}/")
    classify = page.locator("#graph-node-classify").get_attribute("href")

    _tab_to(page, "cancel-run")
    assert page.locator("#cancel-run").evaluate(FOCUS_STYLE)
    approve_id = page.get_by_role("button", name="Approve").get_attribute("id")
    comment_id = page.get_by_label("Comment").get_attribute("id")
    _tab_to(page, comment_id)
    assert page.locator(f"#{comment_id}").evaluate(FOCUS_STYLE)
    page.keyboard.type("Approved from the keyboard")

    # The graph's nodes are links to their steps.
    _tab_to(page, "graph-node-classify")
    assert page.locator("#graph-node-classify rect").evaluate("(r) => getComputedStyle(r).strokeWidth") == "3.5px"
    page.keyboard.press("Enter")
    page.wait_for_function("(hash) => location.hash === hash", arg=classify)

    page.locator(f"#{comment_id}").focus()
    _tab_to(page, approve_id)
    assert page.locator(f"#{approve_id}").evaluate(FOCUS_STYLE)
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/runs/{run_id}/")
    wait_for_status(page, "succeeded")
    approve = next(step for step in api_run(page, run_id)["steps"] if step["node_id"] == "approve")
    assert approve["output"]["comment"] == "Approved from the keyboard"

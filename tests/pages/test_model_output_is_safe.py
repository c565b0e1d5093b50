"""Model output is Markdown rendered on the server, and nothing in it becomes live markup:
tags are escaped, scripts, handlers, images and javascript: links never reach the page."""
import re

import pytest

from runs.models import Run, Step
from runs.templatetags.run_format import markdown
from workflows.management.commands.load_catalog import install

pytestmark = pytest.mark.django_db(transaction=True)

HOSTILE = """# Report
Some **bold** and a [fine link](https://example.com/docs).

<script>alert("x")</script>
<img src=x onerror="alert('img')">
<a href="javascript:alert('a')">click</a> and [also](javascript:alert('md'))
![tracker](https://tracker.example/pixel.png?secret=1)
<iframe src="https://evil.example"></iframe>
[relative](/runs/)

| a | b |
|---|---|
| 1 | 2 |
"""


def _entry():
    return {
        "slug": "hostile", "title": "Hostile output", "description": "", "category": "test",
        "spec": {
            "version": 1, "name": "Hostile output",
            "sources": {"bot": {"kind": "llm", "provider": "mock", "model": "mock-1",
                                "options": {"responses": [{"match": ".*", "text": HOSTILE}]}}},
            "nodes": [{"id": "start", "type": "input"},
                      {"id": "answer", "type": "llm", "source": "bot", "prompt": "Say something."},
                      {"id": "page", "type": "output", "format": "markdown", "value": "{{ nodes.answer.output }}"}],
            "edges": [{"from": "start", "to": "answer"}, {"from": "answer", "to": "page"}],
            "outputs": {"report": "{{ nodes.page.output }}"},
        },
    }


ALLOWED = {"p", "br", "h4", "h5", "strong", "em", "a", "table", "thead", "tbody", "tr", "th", "td", "code", "pre"}


def assert_inert(html):
    """Every tag in the rendered output is an allowed one (no <img>: an image in model output
    is a link the reader may follow, never fetched on its own), and links only go to https."""
    for name, attributes in re.findall(r"<([a-zA-Z][a-zA-Z0-9]*)\b([^>]*)>", html):
        assert name.lower() in ALLOWED, name
        for attribute, value in re.findall(r'([a-zA-Z-]+)="([^"]*)"', attributes):
            assert attribute in ("href", "rel"), (name, attribute)
            if attribute == "href":
                assert value.startswith("https://"), value


def test_hostile_markdown_from_a_model_is_shown_as_text(acme, alice, bob, client_as, worker):
    install(acme, _entry(), author=alice)
    client = client_as(bob)
    response = client.post("/workflows/hostile/", {"mode": "full"})
    run = Run.objects.get()
    assert response.status_code == 302 and run.status == "succeeded" and run.outputs["report"].startswith("# Report")
    answer = Step.objects.get(run=run, node_id="answer")
    assert answer.output == HOSTILE

    for path in (f"/runs/{run.pk}/", f"/runs/{run.pk}/?fragment=1"):
        html = client.get(path).content.decode()
        output_section = html.split('<div class="markdown output-text">')[1].split("</div>")[0]
        step_panel = html.split(f'id="step-{answer.pk}-output">')[1].split("</div>")[0]
        for part in (output_section, step_panel):
            assert_inert(part)
            assert "<strong>bold</strong>" in part
            assert '<a href="https://example.com/docs" rel="nofollow noopener noreferrer">fine link</a>' in part
            assert '&lt;script&gt;alert("x")&lt;/script&gt;' in part
            assert "<table>" in part
        assert "<h4>Report</h4>" in output_section  # under the output's <h3>
        assert "<h5>Report</h5>" in step_panel  # under the step's <h3> and its "Output" <h4>


def test_markdown_filter_keeps_only_allowed_markup():
    html = str(markdown(HOSTILE))
    assert '<a rel="nofollow noopener noreferrer">relative</a>' in html  # a link into this site loses its target
    assert '!<a href="https://tracker.example/pixel.png?secret=1" rel="nofollow noopener noreferrer">tracker</a>' in html
    assert_inert(html)
    assert "<h4>Report</h4>" in html
    assert str(markdown({"a": "<b>"})) == '<pre class="json">{\n  &quot;a&quot;: &quot;&lt;b&gt;&quot;\n}</pre>'
    assert "Cut at 200,000 characters" in str(markdown("x" * 200_001))

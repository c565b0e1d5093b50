"""The run form on a workflow's page: widgets from the spec, problems next to their fields,
and who may see and submit it."""
import re

import pytest

from runs.models import Run
from workflows.models import Workflow


def url(slug):
    return f"/workflows/{slug}/"


def tag(html, name):
    """The opening tag (or the whole <select>/<textarea>) of the field named `name`."""
    match = re.search(rf'<(input|select|textarea)[^>]*name="{re.escape(name)}"[^>]*>(.*?</\1>)?', html, re.S)
    assert match, f"no field {name}"
    return match.group(0)


def test_it_renders_a_widget_per_input_type(acme, bob, client_as, install_workflow):
    install_workflow("learn-a-topic")
    response = client_as(bob).get(url("learn-a-topic"))
    html = response.content.decode()
    assert response.status_code == 200

    topic = tag(html, "input_topic")
    assert 'type="text"' in topic and 'value="photosynthesis"' in topic and 'maxlength="200"' in topic
    assert re.search(r'<label for="id_input_topic">Topic <span class="required-mark">\(required\)</span>', html)

    level = tag(html, "input_level")
    assert level.startswith("<select")
    assert '<option value="beginner" selected>beginner</option>' in level
    assert '<option value="advanced">advanced</option>' in level
    assert "(required)" not in html.split('for="id_input_level"')[1].split("</label>")[0]

    mode = tag(html, "mode")
    assert [m for m in ("full", "test", "validate") if f'value="{m}"' in mode] == ["full", "test", "validate"]
    assert "Runs the published version, v1." in html


def test_it_uses_number_checkbox_and_textarea_widgets(acme, bob, client_as, install_workflow):
    install_workflow("document-pipeline")
    install_workflow("map-over-items")
    html = client_as(bob).get(url("document-pipeline")).content.decode()
    words = tag(html, "input_words")
    assert all(part in words for part in ('type="number"', 'min="200"', 'max="2000"', 'step="1"', 'value="600"'))
    assert "What the article is about." in html  # the description is the help text

    html = client_as(bob).get(url("map-over-items")).content.decode()
    items = tag(html, "input_items")
    assert items.startswith("<textarea") and "solar camping lantern\nbamboo toothbrush" in items
    assert "One per line." in html


def test_a_missing_required_input_is_shown_and_starts_nothing(acme, bob, client_as, install_workflow):
    install_workflow("learn-a-topic")
    response = client_as(bob).post(url("learn-a-topic"), {"input_topic": "", "input_level": "expert", "mode": "full"})
    html = response.content.decode()

    assert response.status_code == 200
    assert not Run.objects.exists()
    assert "the run did not start" in html
    # Each problem sits with its field, and the field is marked invalid.
    topic_field = html.split('for="id_input_topic"')[1].split('class="field')[0]
    assert "Topic is required." in topic_field
    assert 'aria-invalid="true"' in tag(html, "input_topic")
    level_field = html.split('for="id_input_level"')[1].split('class="field')[0]
    assert "Select a valid choice" in level_field or "not one of" in level_field


def test_a_bad_number_is_reported_on_its_field(acme, bob, client_as, install_workflow):
    install_workflow("document-pipeline")
    response = client_as(bob).post(url("document-pipeline"), {"input_topic": "Docs", "input_words": "12", "mode": "full"})
    words_field = response.content.decode().split('for="id_input_words"')[1].split('class="field')[0]
    assert "outside min..max" in words_field
    response = client_as(bob).post(url("document-pipeline"), {"input_topic": "Docs", "input_words": "many", "mode": "full"})
    assert "not a valid integer" in response.content.decode()
    assert not Run.objects.exists()


def test_a_viewer_sees_no_form_and_cannot_post(acme, vera, client_as, install_workflow):
    install_workflow("learn-a-topic")
    client = client_as(vera)
    response = client.get(url("learn-a-topic"))
    assert response.status_code == 200
    assert 'name="input_topic"' not in response.content.decode()
    assert "can read this workflow but not run it" in response.content.decode()

    response = client.post(url("learn-a-topic"), {"input_topic": "bees", "mode": "full"})
    assert response.status_code == 403
    assert not Run.objects.exists()


def test_a_workflow_without_a_published_version_offers_test_mode_on_its_draft(acme, alice, bob, client_as):
    from workflows.management.commands.load_catalog import catalog_entries

    entry = next(e for e in catalog_entries() if e["slug"] == "learn-a-topic")
    workflow = Workflow.create_with_spec(acme, entry["spec"], author=alice, slug="draft-only")
    client = client_as(bob)
    html = client.get(url("draft-only")).content.decode()
    assert "No published version" in html
    mode = tag(html, "mode")
    assert 'value="full"' not in mode and 'value="test"' in mode

    response = client.post(url("draft-only"), {"input_topic": "bees", "input_level": "beginner", "mode": "full"})
    assert "Select a valid choice" in response.content.decode()
    assert not Run.objects.exists()

    response = client.post(url("draft-only"), {"input_topic": "bees", "input_level": "beginner", "mode": "validate"})
    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/runs/{run.pk}/"
    assert (run.version, run.mode, run.trigger, run.created_by) == (workflow.latest_version(), "validate", "manual", bob)
    assert run.status == "succeeded" and run.outputs["report"]["valid"] is True


@pytest.mark.parametrize("path", ["/workflows/nope/", "/workflows/learn-a-topic/"])
def test_an_unknown_or_foreign_workflow_is_404(path, acme, globex, charlie, client_as, install_workflow):
    install_workflow("learn-a-topic")
    assert client_as(charlie).get(path).status_code == 404
    assert client_as(charlie).post(path, {"input_topic": "x", "mode": "full"}).status_code == 404

"""Artifacts on the run page: images made by a run show inline, every other file only downloads."""
import base64

import pytest
from django.core.files.base import ContentFile

from runs.models import Artifact, Run

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


@pytest.fixture
def run_with_files(acme, alice, install_workflow):
    workflow = install_workflow("learn-a-topic")
    run = Run.objects.create(organization=acme, workflow=workflow, version=workflow.latest_published(),
                             status="succeeded")
    for name, content_type, body in (("cover.png", "image/png", PNG), ("drawing.svg", "image/svg+xml", b"<svg/>"),
                                     ("trace.json", "application/json", b"{}")):
        artifact = Artifact(organization=acme, run=run, name=name, content_type=content_type, size=len(body),
                            sha256="0" * 64)
        artifact.file.save(name, ContentFile(body), save=True)
    return run


def test_a_png_artifact_shows_inline_and_others_only_download(run_with_files, bob, client_as):
    run = run_with_files
    client = client_as(bob)
    html = client.get(f"/runs/{run.pk}/").content.decode()
    assert (f'<img class="artifact-image" src="/runs/{run.pk}/artifacts/cover.png?inline=1" '
            'alt="Image cover.png made by this run" loading="lazy">') in html
    assert html.count("<img") == 1  # not the SVG (it can carry script), not the JSON
    for name in ("cover.png", "drawing.svg", "trace.json"):
        assert f'<a href="/runs/{run.pk}/artifacts/{name}" download>{name}</a>' in html

    response = client.get(f"/runs/{run.pk}/artifacts/cover.png", {"inline": "1"})
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert response["Content-Disposition"] == 'inline; filename="cover.png"'
    assert b"".join(response.streaming_content) == PNG
    assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"
    for name in ("drawing.svg", "trace.json"):
        response = client.get(f"/runs/{run.pk}/artifacts/{name}", {"inline": "1"})
        assert response["Content-Disposition"] == f'attachment; filename="{name}"'
    assert client.get(f"/runs/{run.pk}/artifacts/cover.png")["Content-Disposition"] == 'attachment; filename="cover.png"'
    assert Artifact.objects.filter(run=run).count() == 3


def test_another_organization_cannot_see_an_image_inline(run_with_files, globex, charlie, client_as):
    response = client_as(charlie).get(f"/runs/{run_with_files.pk}/artifacts/cover.png", {"inline": "1"})
    assert response.status_code == 404

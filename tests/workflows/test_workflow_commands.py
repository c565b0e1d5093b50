"""validate_workflow, import_workflow, export_workflow and load_catalog."""
import io
import json

import pytest
from django.core.management import CommandError, call_command

from workflows import spec as specs
from workflows.management.commands.load_catalog import CATALOG_DIR, catalog_entries
from workflows.models import Workflow, WorkflowVersion

from .helpers import counts, make_workflow
from .spec_samples import linear_spec

CATALOG_FILES = sorted(str(path) for path in CATALOG_DIR.glob("*.json"))


def _run(*args, **options):
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def _write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def test_validate_accepts_every_catalog_file(db):
    assert len(CATALOG_FILES) >= 6

    out, _ = _run("validate_workflow", *CATALOG_FILES)

    assert out.splitlines() == [f"{name}: valid" for name in CATALOG_FILES]


def test_validate_prints_each_error_and_exits_1(db, tmp_path, capsys):
    spec = linear_spec()
    spec["nodes"][1]["source"] = "ghost"
    spec["edges"].append({"from": "done", "to": "nowhere"})
    bad = _write(tmp_path, "bad.json", spec)
    good = _write(tmp_path, "good.json", linear_spec())
    out = io.StringIO()

    with pytest.raises(SystemExit) as exit_:
        call_command("validate_workflow", good, bad, stdout=out)

    assert exit_.value.code == 1
    lines = out.getvalue().splitlines()
    assert lines[0] == f"{good}: valid"
    assert lines[1] == f"{bad}: 2 error(s)"
    assert sorted(line.split(": ")[:2] for line in lines[2:]) == [
        ["$.edges[3].to", "graph.unknown_node"], ["$.nodes[1].source", "reference.unknown_source"],
    ]
    assert all(line.split(": ", 2)[2] for line in lines[2:])


def test_validate_reports_malformed_and_missing_files(db, tmp_path):
    broken = _write(tmp_path, "broken.json", '{"version": 1,')
    out, err = io.StringIO(), io.StringIO()

    with pytest.raises(SystemExit) as exit_:
        call_command("validate_workflow", broken, str(tmp_path / "absent.json"), stdout=out, stderr=err)

    assert exit_.value.code == 1
    assert "$: json.invalid: invalid JSON" in out.getvalue()
    assert "absent.json: cannot read" in err.getvalue()


def test_import_then_export_round_trips(acme, tmp_path):
    source = str(CATALOG_DIR / "ticket-triage.json")  # a catalog entry: the spec is unwrapped
    exported = tmp_path / "exported.json"

    out, _ = _run("import_workflow", source, "--org", "acme", "--slug", "triage", "--category", "support",
                  "--publish")
    _run("export_workflow", "triage", "--org", "acme", "-o", str(exported))
    printed, _ = _run("export_workflow", "triage", "--org", "acme", "--version", "1")

    assert out.strip() == "Imported triage v1 (published)"
    workflow = Workflow.objects.get(organization=acme, slug="triage")
    assert workflow.category == "support"
    version = workflow.latest_published()
    assert json.loads(exported.read_text()) == json.loads(printed) == version.spec
    assert specs.spec_hash(json.loads(exported.read_text())) == version.spec_hash

    _run("import_workflow", str(exported), "--org", "acme", "--slug", "triage-copy")
    copy = Workflow.objects.get(organization=acme, slug="triage-copy").latest_version()
    assert (copy.state, copy.spec_hash) == ("draft", version.spec_hash)


def test_export_keeps_non_ascii_text(acme, tmp_path):
    spec = linear_spec()
    spec["name"] = "Résumé → 要約"
    make_workflow(acme, spec, slug="resume")
    target = tmp_path / "resume.json"

    _run("export_workflow", "resume", "--org", "acme", "-o", str(target))

    assert json.loads(target.read_bytes().decode("utf-8"))["name"] == "Résumé → 要約"


def test_import_refuses_bad_input_and_saves_nothing(acme, tmp_path):
    make_workflow(acme, slug="taken")
    spec = linear_spec()
    spec["nodes"][1]["source"] = "ghost"
    bad = _write(tmp_path, "bad.json", spec)
    good = _write(tmp_path, "good.json", linear_spec())
    before = counts()

    err = io.StringIO()
    with pytest.raises(CommandError, match="1 problem"):
        call_command("import_workflow", bad, "--org", "acme", stderr=err)
    assert "$.nodes[1].source: reference.unknown_source: " in err.getvalue()
    with pytest.raises(CommandError, match="already exists"):
        _run("import_workflow", good, "--org", "acme", "--slug", "taken")
    with pytest.raises(CommandError, match="not a slug"):
        _run("import_workflow", good, "--org", "acme", "--slug", "Not a slug")
    with pytest.raises(CommandError, match="No organization"):
        _run("import_workflow", good, "--org", "nowhere")
    with pytest.raises(CommandError, match="cannot read"):
        _run("import_workflow", str(tmp_path / "absent.json"), "--org", "acme")

    assert counts() == before


def test_export_refuses_an_unknown_workflow_or_version(acme, globex):
    make_workflow(globex, slug="theirs")

    with pytest.raises(CommandError, match="No workflow"):
        _run("export_workflow", "theirs", "--org", "acme")
    with pytest.raises(CommandError, match="No such version"):
        _run("export_workflow", "theirs", "--org", "globex", "--version", "5")


def test_load_catalog_installs_every_entry_published(acme, alice):
    out, _ = _run("load_catalog", "--org", "acme")

    slugs = sorted(entry["slug"] for entry in catalog_entries())
    assert sorted(line.split()[1] for line in out.splitlines()) == slugs
    assert all(line.split()[0] == "created" for line in out.splitlines())
    for entry in catalog_entries():
        workflow = Workflow.objects.get(organization=acme, slug=entry["slug"])
        assert (workflow.name, workflow.category) == (entry["title"], entry["category"])
        version = workflow.versions.get()
        assert (version.state, version.author) == ("published", alice)


def test_load_catalog_twice_changes_nothing(acme):
    _run("load_catalog", "--org", "acme")
    versions = list(WorkflowVersion.objects.values_list("pk", "state", "published_at"))

    out, _ = _run("load_catalog", "--org", "acme")

    lines = out.splitlines()
    assert len(lines) == len(catalog_entries())
    assert all(line.split()[0] == "unchanged" for line in lines), out
    assert list(WorkflowVersion.objects.values_list("pk", "state", "published_at")) == versions


def test_load_catalog_publishes_a_changed_entry_as_a_new_version(acme, monkeypatch):
    _run("load_catalog", "--org", "acme")
    entries = catalog_entries()
    entries[0]["spec"]["description"] = "Revised in the catalog"
    monkeypatch.setattr("workflows.management.commands.load_catalog.catalog_entries", lambda: entries)

    out, _ = _run("load_catalog", "--org", "acme")

    assert out.splitlines()[0].split() == ["updated", entries[0]["slug"]]
    workflow = Workflow.objects.get(organization=acme, slug=entries[0]["slug"])
    assert dict(workflow.versions.values_list("number", "state")) == {1: "published", 2: "published"}
    assert workflow.latest_published().spec["description"] == "Revised in the catalog"


def test_load_catalog_needs_an_existing_organization(db):
    with pytest.raises(CommandError, match="No organization"):
        _run("load_catalog", "--org", "nowhere")
    assert counts() == (0, 0)

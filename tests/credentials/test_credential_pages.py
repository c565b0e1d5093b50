import pytest

from providers.models import Credential

from .conftest import MASK, SECRET

LIST = "/settings/credentials/"
ADD = "/settings/credentials/new/"


def edit(credential, rest=""):
    return f"{LIST}{credential.pk}/{rest}"


def test_the_list_shows_masks_and_the_last_test(client, ada, credential):
    credential.test_connection()
    client.force_login(ada)

    response = client.get(LIST)

    assert response.status_code == 200
    html = response.content.decode()
    assert "prod-mock" in html and MASK in html
    assert SECRET not in html
    assert "OK</span>" in html and " ms" in html


def test_an_admin_adds_a_credential_from_the_page(client, acme, ada):
    client.force_login(ada)

    form = client.get(ADD).content.decode()
    response = client.post(ADD, {"name": "prod-mock", "provider": "mock", "base_url": "", "new_secret": SECRET})

    assert '<label for="id_new_secret">Secret</label>' in form
    assert response.status_code == 302 and response["Location"] == LIST
    credential = Credential.objects.get(organization=acme)
    assert (credential.name, credential.provider, credential.secret) == ("prod-mock", "mock", SECRET)
    assert credential.created_by == ada


def test_the_add_page_lists_every_problem(client, ada, credential):
    client.force_login(ada)

    response = client.post(ADD, {"name": "prod-mock", "provider": "nope", "base_url": "not a url", "new_secret": ""})

    assert response.status_code == 200
    form = response.context["form"]
    assert set(form.errors) == {"name", "provider", "base_url", "new_secret"}
    assert "already exists" in response.content.decode()
    assert Credential.objects.count() == 1


def test_editing_with_a_blank_secret_keeps_it(client, ada, credential):
    client.force_login(ada)

    page = client.get(edit(credential)).content.decode()
    response = client.post(edit(credential), {"name": "prod-mock", "provider": "mock",
                                              "base_url": "https://proxy.example.com", "new_secret": ""})

    assert SECRET not in page and MASK in page
    assert 'type="password"' in page and "Leave blank to keep" in page
    assert response.status_code == 302
    credential.refresh_from_db()
    assert credential.secret == SECRET
    assert credential.base_url == "https://proxy.example.com"


def test_editing_with_a_new_secret_replaces_it(client, ada, credential):
    client.force_login(ada)

    client.post(edit(credential), {"name": "prod-mock", "provider": "mock", "base_url": "",
                                   "new_secret": "sk-replaced-key-00009999"})

    credential.refresh_from_db()
    assert credential.secret == "sk-replaced-key-00009999"


def test_a_failed_save_does_not_echo_the_secret_back(client, ada, credential):
    client.force_login(ada)

    response = client.post(edit(credential), {"name": "Bad Name!", "provider": "mock", "base_url": "",
                                              "new_secret": "sk-typed-but-not-saved-1234"})

    assert response.status_code == 200
    assert "sk-typed-but-not-saved-1234" not in response.content.decode()
    credential.refresh_from_db()
    assert credential.secret == SECRET and credential.name == "prod-mock"


def test_delete_is_refused_with_the_workflows_that_use_it(client, alice, ada, credential, workflow_using):
    workflow = workflow_using("prod-mock")
    client.force_login(ada)

    refused = client.post(edit(credential, "delete/"), follow=True)

    html = refused.content.decode()
    assert "cannot be deleted" in html and "Support triage" in html and "version 1" in html
    assert Credential.objects.filter(pk=credential.pk).exists()
    workflow.archive(actor=alice)
    deleted = client.post(edit(credential, "delete/"))
    assert deleted.status_code == 302
    assert not Credential.objects.exists()


def test_a_rename_of_a_credential_in_use_is_refused_on_the_page(client, ada, credential, workflow_using):
    workflow_using("prod-mock")
    client.force_login(ada)

    response = client.post(edit(credential), {"name": "renamed", "provider": "mock", "base_url": "", "new_secret": ""})

    assert response.status_code == 200
    assert "cannot be renamed" in response.content.decode()
    credential.refresh_from_db()
    assert credential.name == "prod-mock"


@pytest.mark.parametrize("who", ["vera", "bob"])
def test_viewers_and_editors_get_a_403(request, client, credential, who):
    client.force_login(request.getfixturevalue(who))

    statuses = [
        client.get(LIST).status_code,
        client.get(ADD).status_code,
        client.get(edit(credential)).status_code,
        client.post(edit(credential, "test/")).status_code,
        client.post(edit(credential, "delete/")).status_code,
    ]

    assert statuses == [403] * 5
    assert Credential.objects.filter(pk=credential.pk, last_tested_at=None).exists()


def test_another_organizations_credential_is_a_404(client, charlie, globex, credential):
    client.force_login(charlie)

    assert client.get(edit(credential)).status_code == 404
    assert client.post(edit(credential, "delete/")).status_code == 404
    assert "prod-mock" not in client.get(LIST).content.decode()
    assert Credential.objects.filter(pk=credential.pk).exists()


def test_the_test_button_never_redirects_off_site(client, ada, credential):
    client.force_login(ada)

    response = client.post(edit(credential, "test/"), {"next": "https://evil.example.com/"})

    assert response["Location"] == LIST

"""Who may watch a run over the socket: signed-in members of the organization the session
acts in, as for the run pages; everyone else learns nothing about the run."""
import uuid

import pytest
from asgiref.sync import async_to_sync

from accounts.models import Membership, Role

from .helpers import asocket, close_code, events_in, open_socket, read_until, replayed

pytestmark = pytest.mark.django_db(transaction=True)


def _close_code_for(path, user=None, **options):
    async def scenario():
        communicator = await asocket(path, user, **options)
        connected, _ = await communicator.connect()
        assert connected  # accepted first, so that a browser can read the close code
        code = await close_code(communicator)
        await communicator.disconnect()
        return code

    return async_to_sync(scenario)()


def test_it_closes_with_4401_when_not_signed_in(make_run):
    run = make_run()

    assert _close_code_for(f"/ws/runs/{run.pk}/") == 4401


def test_it_closes_with_4403_for_a_run_of_another_organization(make_run, charlie, globex):
    run = make_run()

    assert _close_code_for(f"/ws/runs/{run.pk}/", charlie) == 4403


def test_it_closes_with_4403_for_a_run_that_does_not_exist(alice, acme):
    assert _close_code_for(f"/ws/runs/{uuid.uuid4()}/", alice) == 4403


def test_it_follows_the_organization_the_session_acts_in(make_run, alice, acme, globex):
    # Alice also belongs to Globex and switched to it: the socket, like the run pages,
    # shows Globex's runs only.
    Membership.objects.create(organization=globex, user=alice, role=Role.EDITOR)
    run = make_run()

    assert _close_code_for(f"/ws/runs/{run.pk}/", alice, organization=globex) == 4403

    async def back_in_acme():
        communicator = await asocket(f"/ws/runs/{run.pk}/", alice, organization=acme)
        await communicator.connect()
        messages = await read_until(communicator, replayed)
        await communicator.disconnect()
        return messages

    assert async_to_sync(back_in_acme)()[-1] == {"type": "replayed", "last_seq": 1}


def test_a_viewer_of_the_organization_may_watch(make_run, vera):
    run = make_run()

    async def scenario():
        communicator = await open_socket(run.pk, vera)
        messages = await read_until(communicator, replayed)
        await communicator.disconnect()
        return messages

    messages = async_to_sync(scenario)()

    assert [e["type"] for e in events_in(messages)] == ["run.queued"]
    assert messages[-1] == {"type": "replayed", "last_seq": run.last_seq}


@pytest.mark.parametrize("after", ["-1", "abc", "1.5"])
def test_it_closes_with_4400_for_a_malformed_after(make_run, alice, after):
    run = make_run()

    assert _close_code_for(f"/ws/runs/{run.pk}/?after={after}", alice) == 4400


def test_it_closes_with_4404_for_a_path_nobody_serves(alice):
    assert _close_code_for("/ws/elsewhere/", alice) == 4404
    assert _close_code_for("/ws/runs/not-a-uuid/", alice) == 4404


def test_it_refuses_a_socket_opened_from_another_site(make_run, alice):
    run = make_run()

    async def scenario():
        communicator = await asocket(f"/ws/runs/{run.pk}/", alice, origin="http://evil.example")
        connected, _ = await communicator.connect()
        await communicator.disconnect()
        return connected

    assert async_to_sync(scenario)() is False

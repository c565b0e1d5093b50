"""The real deployment's layer: channels-redis pub/sub carries a run's events and tokens to
the socket, whatever layer the rest of this suite runs on. Needs Redis (database 13)."""
import os

import pytest
import redis
from asgiref.sync import async_to_sync

from runs import events
from runs.models import RunEvent

from .helpers import aemit, event_of_type, events_in, open_socket, read_until, redis_layer, redis_url, replayed

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def redis_channel_layer(settings):
    try:
        redis.Redis.from_url(redis_url(), socket_connect_timeout=2).ping()
    except redis.exceptions.ConnectionError as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"Redis is not reachable at {redis_url()}: {exc}")
        pytest.skip(f"Redis is not reachable at {redis_url()}")
    settings.CHANNEL_LAYERS = redis_layer()


def test_it_relays_events_and_tokens_through_redis(redis_channel_layer, make_run, alice):
    run = make_run()

    async def scenario():
        communicator = await open_socket(run.pk, alice)
        messages = await read_until(communicator, replayed)
        await aemit(run, "log")
        events.publish_delta(run.pk, 3, "write", "token")
        await aemit(run, "run.cancelled")
        messages += await read_until(communicator, event_of_type("run.cancelled"))
        await communicator.disconnect()
        return messages

    messages = async_to_sync(scenario)()

    assert [m["type"] for m in messages] == ["event", "replayed", "event", "delta", "event"]
    assert events_in(messages) == [e.as_message() for e in RunEvent.objects.filter(run=run).order_by("seq")]
    assert messages[3]["delta"] == {"run": str(run.pk), "step": 3, "node": "write", "text": "token"}

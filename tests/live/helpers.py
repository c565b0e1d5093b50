"""What the live socket tests share: a small streaming spec, signed-in sockets on
agentflow.asgi.application, events emitted as API actions emit them, and message filters."""
from urllib.parse import urlsplit, urlunsplit

from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from accounts import tenancy
from agentflow.asgi import application

WAIT_S = 20  # the longest a single receive may wait; only reached when something is broken
TEST_REDIS_DB = 13


def embedded_layer(path, poll_interval=0.01):
    return {"default": {"BACKEND": "agentflow.channel_layer.SqlitePubSubChannelLayer",
                        "CONFIG": {"path": str(path), "poll_interval": poll_interval}}}


def redis_url(db=TEST_REDIS_DB):
    """The Redis of REDIS_URL (or 127.0.0.1:6379), with the database the live tests own."""
    parts = urlsplit(settings.REDIS_URL or "redis://127.0.0.1:6379/0")
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", "", ""))


def redis_layer():
    return {"default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                        "CONFIG": {"hosts": [redis_url()]}}}


def streaming_spec():
    """A workflow of one mock llm step that streams its answer (all at once)."""
    return {
        "version": 1, "name": "Live",
        "sources": {"mock": {"kind": "llm", "provider": "mock", "model": "mock-1", "options": {"latency_ms": 0}}},
        "nodes": [{"id": "start", "type": "input"},
                  {"id": "write", "type": "llm", "source": "mock", "prompt": "Write", "stream": True}],
        "edges": [{"from": "start", "to": "write"}],
    }


def session_cookie(user, organization=None):
    """The session id of `user` signed in, acting in `organization` when given (as after
    switching organizations on the site)."""
    client = Client()
    client.force_login(user)
    if organization is not None:
        session = client.session
        session[tenancy.SESSION_KEY] = organization.pk
        session.save()
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def emit(run, *types):
    """Record events on the run as an API action does (each a transaction of its own, so
    each is announced after its commit); returns their seqs."""
    seqs = []
    for type in types:
        with run.writing(fenced=False) as writer:
            seqs.append(writer.emit(type, {"note": type}).seq)
    return seqs


aemit = database_sync_to_async(emit)


def socket(path, user=None, organization=None, origin="http://testserver"):
    """A WebsocketCommunicator on the real ASGI application, from `origin`, signed in as
    `user` when given (session cookie, as a browser sends it)."""
    headers = [(b"host", b"testserver"), (b"origin", origin.encode())]
    if user is not None:
        cookie = f"{settings.SESSION_COOKIE_NAME}={session_cookie(user, organization)}"
        headers.append((b"cookie", cookie.encode()))
    return WebsocketCommunicator(application, path, headers=headers)


asocket = database_sync_to_async(socket)


async def open_socket(run_id, user, after=None):
    """A connected socket on the run; the caller reads from the first message on."""
    query = "" if after is None else f"?after={after}"
    communicator = await asocket(f"/ws/runs/{run_id}/{query}", user)
    connected, _ = await communicator.connect(timeout=WAIT_S)
    assert connected
    return communicator


async def close_code(communicator):
    """The code the server closed an accepted socket with (after any other frames)."""
    while True:
        output = await communicator.receive_output(timeout=WAIT_S)
        if output["type"] == "websocket.close":
            return output.get("code")


async def read_until(communicator, stop):
    """Messages (decoded) up to and including the first for which stop(message) is true."""
    messages = []
    while True:
        message = await communicator.receive_json_from(timeout=WAIT_S)
        messages.append(message)
        if stop(message):
            return messages


def events_in(messages):
    return [m["event"] for m in messages if m["type"] == "event"]


def seqs_in(messages):
    return [e["seq"] for e in events_in(messages)]


def replayed(message):
    return message["type"] == "replayed"


def event_of_type(type):
    return lambda message: message["type"] == "event" and message["event"]["type"] == type


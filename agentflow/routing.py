"""WebSocket routes; each app that speaks WebSocket adds its patterns here."""
from channels.generic.websocket import AsyncWebsocketConsumer
from django.urls import re_path

from runs.routing import websocket_urlpatterns as runs_patterns


class _UnknownPath(AsyncWebsocketConsumer):
    """Answers a socket to a path nobody serves with close code 4404 (the router alone
    would raise, and the server would log an application error)."""

    channel_layer_alias = None  # needs no channel of its own

    async def connect(self):
        await self.accept()
        await self.close(4404)


websocket_urlpatterns = [
    *runs_patterns,
    re_path(r"", _UnknownPath.as_asgi()),
]

"""WebSocket routes of the runs app."""
from django.urls import path

from . import consumers

websocket_urlpatterns = [
    path("ws/runs/<uuid:run_id>/", consumers.RunConsumer.as_asgi(), name="run-live"),
]

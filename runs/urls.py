from django.urls import path

from . import views

app_name = "runs"

urlpatterns = [
    path("", views.run_list, name="list"),
    path("<uuid:pk>/", views.run_detail, name="detail"),
    path("<uuid:pk>/cancel/", views.run_cancel, name="cancel"),
    path("<uuid:pk>/retry/", views.run_retry, name="retry"),
    path("<uuid:pk>/steps/<str:node_id>/decide/", views.run_decide, name="decide"),
    path("<uuid:pk>/artifacts/<str:name>", views.artifact_download, name="artifact"),
]

from django.urls import path

# The dashboard and the run form are run pages; URL modules are the one place allowed to
# import from runs (workflows itself never does).
from runs import views as run_views

from . import views

app_name = "workflows"

urlpatterns = [
    path("", run_views.dashboard, name="dashboard"),
    path("workflows/", views.workflow_list, name="list"),
    path("workflows/<slug:slug>/", run_views.workflow_detail, name="detail"),
]

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

api_v1 = [
    path("", include("accounts.api")),
    path("", include("providers.api")),
    path("", include("workflows.api")),
    path("", include("runs.api")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"))),
    path("accounts/", include("accounts.urls")),
    path("settings/", include("providers.urls")),
    path("runs/", include("runs.urls")),
    path("", include("workflows.urls")),
]

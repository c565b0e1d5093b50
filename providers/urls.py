from django.urls import path

from . import views

app_name = "providers"

urlpatterns = [
    path("credentials/", views.credential_list, name="credentials"),
    path("credentials/new/", views.credential_add, name="credential_add"),
    path("credentials/<int:pk>/", views.credential_edit, name="credential_edit"),
    path("credentials/<int:pk>/test/", views.credential_test, name="credential_test"),
    path("credentials/<int:pk>/delete/", views.credential_delete, name="credential_delete"),
]

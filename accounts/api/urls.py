from django.urls import path

from accounts.api.views import EnvironmentView, SigningSecretView

urlpatterns = [
    path("environment", EnvironmentView.as_view(), name="environment"),
    path("environment/signing-secret", SigningSecretView.as_view()),
]

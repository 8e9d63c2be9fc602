from django.urls import path

from accounts.api.views import EnvironmentView

urlpatterns = [
    path("environment", EnvironmentView.as_view(), name="environment"),
]

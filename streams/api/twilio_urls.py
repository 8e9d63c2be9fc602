"""The Twilio-compatible REST paths, served under ``/twilio/`` (see streams.api.twilio)."""

from django.urls import path

from streams.api import twilio

urlpatterns = [
    path(
        "2010-04-01/Accounts/<str:account>/Calls/<str:sid>.json",
        twilio.call_resource,
        name="twilio-call",
    ),
]

"""A project URLconf that mounts the dashboard the documented way."""

from django.urls import include, path

urlpatterns = [path("bus/", include("servicebus.dashboard.urls"))]

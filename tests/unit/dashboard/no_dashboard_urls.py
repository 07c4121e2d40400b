"""A URLconf without the dashboard (the middleware listed by mistake)."""

from django.urls import path

from tests.unit.dashboard.scoped_urls import whoami

urlpatterns = [path("api/whoami", whoami)]

"""A live dashboard of the bus: a staff-only Django app served by daphne.

INSTALLED_APPS += ["servicebus.dashboard"] (with django.contrib.auth, sessions and
contenttypes), urlpatterns += [path("bus/", include("servicebus.dashboard.urls"))], and
the WebSocket route from ``servicebus.dashboard.routing`` (docs/dashboard.md).
"""

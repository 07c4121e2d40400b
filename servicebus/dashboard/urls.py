"""``path("bus/", include("servicebus.dashboard.urls"))``: pages, JSON API, login, assets."""

from django.urls import path

from servicebus.dashboard import actions, api, views

app_name = "servicebus_dashboard"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("services/<str:name>", views.service, name="service"),
    path("traces/", views.trace, name="trace-search"),
    path("traces/<path:correlation_id>", views.trace, name="trace"),
    path("failures", views.failures, name="failures"),
    path("events", views.events, name="events"),
    path("events/deadletters/<str:topic>", actions.dead_letters, name="dead-letters"),
    path(
        "events/deadletters/<str:topic>/confirm/<str:action>",
        actions.confirm,
        name="dead-letters-confirm",
    ),
    path("events/deadletters/<str:topic>/<str:action>", actions.act, name="dead-letters-act"),
    path("login/", views.login, name="login"),
    path("logout/", views.logout, name="logout"),
    path("assets/<str:name>", views.asset, name="asset"),
    path("api/overview", api.overview, name="api-overview"),
    path("api/services/<str:name>", api.service, name="api-service"),
    path("api/traces/<path:correlation_id>", api.trace, name="api-trace"),
    path("api/failures", api.failures, name="api-failures"),
    path("api/events", api.events, name="api-events"),
]

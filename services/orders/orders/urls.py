from django.apps import apps
from django.urls import include, path

from orders import views
from servicebus.telemetry.views import metrics

urlpatterns = [
    path("orders", views.create_order, name="create-order"),
    path("orders/<str:order_id>", views.get_order, name="order"),
    path("products", views.list_products, name="products"),
    path("health", views.health, name="health"),
    # Prometheus series of this process: the bus calls the HTTP edge makes.
    path("metrics", metrics, name="metrics"),
]
if apps.is_installed("servicebus.dashboard"):  # orders_project; not the embedded mode
    # The bus dashboard (staff only): services, instances, traces, failures, events.
    urlpatterns.append(path("bus/", include("servicebus.dashboard.urls")))

# Every error the API returns is JSON, Django's own included.
handler400 = "orders.http_errors.bad_request"
handler403 = "orders.http_errors.permission_denied"
handler404 = "orders.http_errors.not_found"
handler500 = "orders.http_errors.server_error"

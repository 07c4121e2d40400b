from django.urls import path

from orders import views

urlpatterns = [
    path("orders", views.create_order, name="create-order"),
    path("orders/<str:order_id>", views.get_order, name="order"),
    path("products", views.list_products, name="products"),
    path("health", views.health, name="health"),
]

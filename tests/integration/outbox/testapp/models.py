"""A product owned by a source service, and its read-only replica."""

from django.db import models

from servicebus.outbox.replica import ReplicaModel
from servicebus.outbox.source import SourceModel


class Product(SourceModel):
    sku = models.CharField(max_length=50)
    name = models.CharField(max_length=200, default="")
    price = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    stock = models.IntegerField(default=0)

    class Replication:
        topic = "test.product"


class ProductReplica(ReplicaModel):
    id = models.BigIntegerField(primary_key=True)
    sku = models.CharField(max_length=50)
    name = models.CharField(max_length=200, default="")
    price = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    stock = models.IntegerField(default=0)

    class Replication:
        topic = "test.product"

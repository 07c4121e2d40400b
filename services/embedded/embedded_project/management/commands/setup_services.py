"""``manage.py setup_services``: migrate every service's database, load its samples, and
copy inventory's products into the replicas of pricing and orders."""

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from inventory.management.commands import load_sample_data as inventory_samples
from orders.management.commands import load_sample_data as orders_samples
from pricing.management.commands import load_sample_data as pricing_samples

from embedded_project.replication import copy_replicas


class Command(BaseCommand):
    """What each separate service does with migrate + load_sample_data, for all three."""

    help = "Migrate the three databases, load every service's sample data, copy replicas."

    def handle(self, *args, **options) -> None:
        for database in settings.DATABASES:
            call_command("migrate", database=database, verbosity=0)
        for samples in (inventory_samples, pricing_samples, orders_samples):
            call_command(samples.Command())
        copy_replicas()  # the initial copy (no Redis: dump | load, in-process)

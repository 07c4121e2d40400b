"""Make N seeded random changes to Product (creates, updates, deletes; 1-8 per transaction)."""

import random
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from tests.integration.outbox.testapp.models import Product


class Command(BaseCommand):
    help = "Produce seeded random changes to Product through SourceModel."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--changes", type=int, default=1000)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--keys", type=int, default=300, help="live rows to aim for")

    def handle(self, *args: Any, **options: Any) -> None:
        rng = random.Random(options["seed"])
        # Instances are kept in memory: save() reads the current revision itself.
        live = {p.pk: p for p in Product.objects.all()}
        done = 0
        while done < options["changes"]:
            with transaction.atomic():
                for _ in range(rng.randint(1, 8)):
                    if done >= options["changes"]:
                        break
                    roll = rng.random()
                    if not live or (roll < 0.3 and len(live) < options["keys"]):
                        p = Product(sku=f"s{done}", name=f"n{done}", stock=rng.randint(0, 99))
                        p.save()
                        live[p.pk] = p
                    elif roll < 0.88:
                        p = live[rng.choice(list(live))]
                        p.stock = rng.randint(0, 999)
                        p.price = Decimal(rng.randint(0, 99999)) / 100
                        p.name = f"n{done}"
                        p.save()
                    else:
                        live.pop(rng.choice(list(live))).delete()
                    done += 1
        self.stdout.write(f"produced {done} changes")

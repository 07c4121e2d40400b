"""Quotes: list prices minus the best discount rule that applies to each line.

List prices come from the replica of inventory's products (``pricing.models.Product``);
a sku the replica does not hold (unknown, deleted, or not replicated yet) is
``unknown_product``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from pricing.models import Discount, Product
from servicebus import ServiceError

# Discount rules change rarely (an operator edits them): each process re-reads them at
# most every DISCOUNTS_TTL seconds instead of on every quote.
DISCOUNTS_TTL = 5.0
_discounts: tuple[float, list[Discount]] = (float("-inf"), [])


def discounts() -> list[Discount]:
    """The discount rules, as read at most DISCOUNTS_TTL seconds ago."""
    global _discounts
    read_at, rules = _discounts
    if time.monotonic() - read_at > DISCOUNTS_TTL:
        rules = list(Discount.objects.all())
        _discounts = (time.monotonic(), rules)
    return rules


def quote(items: dict[str, int], flags: Iterable[str]) -> dict:
    """Price ``items`` ({sku: qty}); rules behind a feature flag apply only if it is on."""
    flags = set(flags)
    # Ordered by key: should two rows briefly share a sku (see Product), the newer product
    # (inventory's keys only grow) wins.
    prices = {p.sku: p for p in Product.objects.filter(sku__in=items).order_by("id")}
    rules = [d for d in discounts() if not d.flag or d.flag in flags]
    currencies = {p.currency for p in prices.values()}
    if len(currencies) > 1:
        raise ServiceError("mixed_currencies", f"items are priced in {sorted(currencies)}")
    lines, applied = [], set()
    for sku, qty in sorted(items.items()):
        price = prices.get(sku)
        if price is None:
            raise ServiceError("unknown_product", f"pricing knows no product {sku!r}", {"sku": sku})
        gross = price.list_price_cents * qty
        best = max(
            (rule for rule in rules if qty >= rule.min_qty),
            key=lambda rule: rule.percent_off,
            default=None,
        )
        # Integer cents: the discount is rounded down to a whole cent.
        discount = gross * best.percent_off // 100 if best else 0
        if best:
            applied.add(best.code)
        lines.append(
            {
                "sku": sku,
                "qty": qty,
                "unit_price_cents": price.list_price_cents,
                "discount_cents": discount,
                "total_cents": gross - discount,
            }
        )
    return {
        "lines": lines,
        "subtotal_cents": sum(line["unit_price_cents"] * line["qty"] for line in lines),
        "discount_cents": sum(line["discount_cents"] for line in lines),
        "total_cents": sum(line["total_cents"] for line in lines),
        "currency": currencies.pop() if currencies else "EUR",
        "discounts": sorted(applied),
    }

"""Charging and refunding orders: at most one charge per order id, ever.

The payment row is created (unique order id) in the same transaction that asks the
processor, so a concurrent duplicate waits on the row and then sees the first charge,
and a refund racing a slow charge waits for it and then refunds it. The price is a row
lock held for the processor's round trip.
"""

from __future__ import annotations

from django.db import IntegrityError, router, transaction

from pricing import processor
from pricing.models import Payment
from servicebus import ServiceError

Status = Payment.Status


def atomic() -> transaction.Atomic:
    """A transaction on the database that holds payments.

    Not always "default": the embedded mode routes each service to its own database.
    """
    return transaction.atomic(using=router.db_for_write(Payment))


def charge(order_id: str, amount_cents: int, currency: str, card_number: str) -> Payment:
    """Charge the order once; a repeat returns the first charge instead of charging again."""
    try:
        return _charge_new(order_id, amount_cents, currency, card_number)
    except IntegrityError:
        pass  # the order has a payment row already: a retry, or a refund that came first
    with atomic():
        payment = Payment.objects.select_for_update().get(order_id=order_id)
        if payment.status != Status.CHARGED:
            raise ServiceError("payment_voided", f"order {order_id} was refunded or voided")
        if payment.amount_cents != amount_cents:
            raise ServiceError(
                "amount_mismatch",
                f"order {order_id} was charged {payment.amount_cents}, not {amount_cents}",
            )
    return payment


def _charge_new(order_id: str, amount_cents: int, currency: str, card_number: str) -> Payment:
    # The row goes in first (unique order id): a duplicate or a refund waits on it while
    # the processor is asked. Failures raise out of the block: the row rolls back.
    with atomic():
        payment = Payment.objects.create(
            order_id=order_id,
            status=Status.PENDING,
            amount_cents=amount_cents,
            currency=currency,
            card_last4=card_number[-4:],
        )
        try:
            payment.processor_ref = processor.charge(
                card_number, amount_cents, currency, reference=order_id
            )
        except processor.CardDeclined as exc:
            raise ServiceError("card_declined", str(exc), {"card_last4": card_number[-4:]})
        except processor.ProcessorUnavailable as exc:
            raise ServiceError("payment_unavailable", str(exc), {"retryable": True})
        payment.status = Status.CHARGED
        payment.save(update_fields=["status", "processor_ref", "updated_at"])
    return payment


def refund(order_id: str) -> Payment:
    """Refund the order's charge; idempotent, and voids the order if it was never charged."""
    with atomic():
        payment, created = Payment.objects.select_for_update().get_or_create(
            order_id=order_id, defaults={"status": Status.VOIDED}
        )
        if created or payment.status != Status.CHARGED:
            return payment
        processor.refund(payment.processor_ref, payment.amount_cents, payment.currency)
        payment.status = Status.REFUNDED
        payment.save(update_fields=["status", "updated_at"])
    return payment

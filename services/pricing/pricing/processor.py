"""A fake card processor with test card numbers, in the style of real processors' test modes.

    4242424242424242   succeeds
    4000000000000002   declined                    -> CardDeclined
    4000000000000119   processor error, transient  -> ProcessorUnavailable (retry later)
    4000000000000259   succeeds after SLOW_SECONDS (to see callers time out)

Any other number is declined as "not a test card".
"""

from __future__ import annotations

import logging
import time
import uuid

logger = logging.getLogger("pricing.processor")

CARD_OK = "4242424242424242"
CARD_DECLINED = "4000000000000002"
CARD_UNAVAILABLE = "4000000000000119"
CARD_SLOW = "4000000000000259"
SLOW_SECONDS = 2.5


class CardDeclined(Exception):
    """The issuer refused the charge; retrying will not help."""


class ProcessorUnavailable(Exception):
    """The processor failed transiently; the same charge may succeed later."""


def charge(card_number: str, amount_cents: int, currency: str, reference: str) -> str:
    """Charge the card; ``reference`` is ours (the order id), the return value theirs."""
    if card_number == CARD_UNAVAILABLE:
        raise ProcessorUnavailable("the card processor is temporarily unavailable")
    if card_number == CARD_SLOW:
        time.sleep(SLOW_SECONDS)
    elif card_number != CARD_OK:
        reason = "card declined" if card_number == CARD_DECLINED else "not a test card"
        raise CardDeclined(reason)
    ref = f"ch_{uuid.uuid4().hex[:16]}"
    logger.info(
        "processor charge %s for %s: %d %s on card *%s",
        ref,
        reference,
        amount_cents,
        currency,
        card_number[-4:],
    )
    return ref


def refund(ref: str, amount_cents: int, currency: str) -> None:
    """Refund a charge in full."""
    logger.info("processor refund %s: %d %s", ref, amount_cents, currency)

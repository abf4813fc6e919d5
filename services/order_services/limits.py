"""The bounds of the contract, in one place.

Amounts are integers in minor units; any amount (a charge, a refund; the provider's unit_price and
total) is at most ``MAX_AMOUNT``, any quantity at most ``MAX_QUANTITY``. Past them a request answers 422
``ValidationError`` naming the field. A request body is at most ``MAX_BODY_BYTES`` (413 past it) and its
JSON nested at most ``MAX_JSON_DEPTH`` levels (422 past it). Currencies are the upper-case ISO 4217
codes of ``CURRENCIES``.
"""

from __future__ import annotations

import pycountry

#: Largest amount in minor units: 10**12 (ten billion of a two-decimal currency), far inside 64 bits.
MAX_AMOUNT = 10**12
#: Largest quantity of one order line.
MAX_QUANTITY = 10_000
#: Largest request body, in bytes.
MAX_BODY_BYTES = 64 * 1024
#: Deepest nesting of arrays and objects in a JSON request body.
MAX_JSON_DEPTH = 32
#: Largest fault-injection seed: the largest integer any JSON client holds exactly.
MAX_SEED = 2**53 - 1

#: ISO 4217 currency codes (upper case), from pycountry's maintained list.
CURRENCIES: frozenset[str] = frozenset(currency.alpha_3 for currency in pycountry.currencies)

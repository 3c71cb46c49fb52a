"""Schemathesis hooks for Valhalla (loaded through SCHEMATHESIS_HOOKS).

An Idempotency-Key is single-use: the contract answers the same key with
another body with a 422. Schemathesis reuses generated and example values
across cases, so two valid cases would share a key with different bodies and
its positive-data check would count the 422 as a rejected valid request. A
real client makes a fresh key for each distinct write, and so does this hook:
before each call it suffixes every key that keeps the contract's pattern with a random UUID.
Negative cases are left as generated: they fail before a key is used, and
editing them would make Schemathesis revalidate them as positive (and, for
the case that drops Authorization, send it after all). Go tests
cover the replay and the 422 (cmd/valhalla/idempotency_test.go).
"""

import re
import uuid

import schemathesis

KEY = "Idempotency-Key"
VALID = re.compile(r"^[!-~]{1,255}$")


@schemathesis.hook
def before_call(context, case, kwargs):
    meta = case.meta
    if meta is not None and meta.generation.mode.is_negative:
        return
    headers = case.headers
    value = headers.get(KEY) if headers else None
    if isinstance(value, str) and VALID.match(value):
        suffix = "-" + str(uuid.uuid4())
        headers[KEY] = value[: 255 - len(suffix)] + suffix

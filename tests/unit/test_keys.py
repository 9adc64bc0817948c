"""Key records and the checks on key-store input (the store itself is tested on a real
Redis in tests/integration/test_keys_auth.py)."""

from __future__ import annotations

import pytest

from orchestrator.billing.keys import KEY_PATTERN, KeyRecord, KeyStoreError, check_limits, hash_key


def test_record_round_trips_through_redis_fields():
    record = KeyRecord("0123456789ab", "acme", 1700000000.5, 5.0, 60, None, True)
    raw = {k.encode(): v.encode() for k, v in record.fields().items()}  # as redis returns
    assert KeyRecord.from_fields(raw) == record
    assert KeyRecord.from_fields(KeyRecord("a" * 12, "t", 1.0).fields()).revoked is False


def test_only_a_hash_of_the_key_is_kept():
    key = "msk-" + "A" * 32
    assert KEY_PATTERN.match(key) and len(hash_key(key)) == 64 and key not in hash_key(key)


@pytest.mark.parametrize(
    "tenant, budget, rpm, tpm, message",
    [
        ("", None, None, None, "tenant"),
        ("UPPER", None, None, None, "tenant"),
        ("x" * 65, None, None, None, "tenant"),
        ("acme", 0.0, None, None, "budget"),
        ("acme", -3.0, None, None, "budget"),
        ("acme", 2e6, None, None, "budget"),
        ("acme", None, 0, None, "rpm"),
        ("acme", None, None, 10**8, "tpm"),
    ],
)
def test_bad_key_settings_are_refused(tenant, budget, rpm, tpm, message):
    with pytest.raises(KeyStoreError, match=message):
        check_limits(tenant, budget, rpm, tpm)
    check_limits("acme", 5.0, 60, 10_000)  # and good ones pass

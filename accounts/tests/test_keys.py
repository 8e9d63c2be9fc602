from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accounts import keys, services
from accounts.models import ApiKey

KEY_ALPHABET = keys.ALPHABET


@pytest.mark.parametrize("kind", ["test", "live"])
def test_generated_keys_match_the_format_and_their_checksum_verifies(kind: str) -> None:
    key = keys.generate(kind).full
    assert keys.KEY_RE.match(key)
    assert key.startswith(f"sb_{kind}_")
    assert len(key) == len(f"sb_{kind}_") + 40 + 6
    parsed = keys.parse(key)
    assert parsed is not None and parsed.environment_kind == kind


@given(
    kind=st.sampled_from(["test", "live"]),
    position=st.integers(min_value=0, max_value=10_000),
    replacement=st.sampled_from(list(KEY_ALPHABET + "_")),
)
def test_any_one_character_change_fails_the_checksum(
    kind: str, position: int, replacement: str
) -> None:
    key = keys.generate(kind).full
    index = position % len(key)
    if key[index] == replacement:
        replacement = "A" if replacement != "A" else "B"
    mutated = key[:index] + replacement + key[index + 1 :]
    parsed = keys.parse(mutated)
    # Changing the environment word to the other one's letters can't form "live"/"test"
    # by one character, so every mutation must be refused.
    assert parsed is None


def test_truncated_or_padded_keys_are_refused() -> None:
    key = keys.generate("test").full
    assert keys.parse(key[:-1]) is None
    assert keys.parse(key + "A") is None
    assert keys.parse("") is None


@pytest.mark.django_db
def test_stored_row_holds_no_part_of_the_secret(tenant) -> None:
    issued = services.api_key_issue(environment=tenant.test, name="ci")
    row = ApiKey.objects.get(pk=issued.api_key.pk)
    secret_part = issued.secret[len("sb_test_") :]
    stored = " ".join(
        str(getattr(row, field.attname)) for field in ApiKey._meta.concrete_fields
    )
    random_part = secret_part[: keys.RANDOM_LENGTH]
    assert row.key_hash == keys.hash_key(issued.secret)
    assert row.display_prefix == "sb_test_"
    assert row.last4 == issued.secret[-4:]
    assert issued.secret not in stored
    for start in range(len(random_part) - 7):
        assert random_part[start : start + 8] not in stored

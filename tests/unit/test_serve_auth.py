"""Which binds count as loopback for `farm serve` (no token needed there)."""

from __future__ import annotations

import pytest

from farm.cli.serve.auth import same
from farm.cli.serve.binding import is_loopback


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"])
def test_loopback_binds(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "192.168.1.2", "farm.example"])
def test_other_binds_need_a_token(host: str) -> None:
    assert not is_loopback(host)


def test_tokens_compare_exactly() -> None:
    assert same("abc", "abc")
    assert not same("abcd", "abc") and not same(None, "abc") and not same("", "abc")

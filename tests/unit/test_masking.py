"""mask_url: a password never reaches a message, even from a mistyped URL."""

from __future__ import annotations

import pytest

from farm.settings import mask_url

SECRET = "Pw7f3a"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"u:{SECRET}@host/db", "u:***@host/db"),  # the scheme forgotten
        (f"postgresql+psycopg:/u:{SECRET}@host/db", "postgresql+psycopg:/***@host/db"),
        (f"postgresql://u:{SECRET}/x@host/db", "postgresql://***@host/db"),  # unescaped /
        (f"postgresql://u:{SECRET}?x@host/db", "postgresql://***@host/db"),  # unescaped ?
        (f"postgresql://u:{SECRET}#x@host/db", "postgresql://***@host/db"),  # unescaped #
        (f"redis://:{SECRET}@x@host/0", "redis://:***@host/0"),  # unescaped @
        (
            f"redis://127.0.0.1:1/0?password={SECRET}&db=1",
            "redis://127.0.0.1:1/0?password=***&db=1",
        ),
        (
            f"postgresql://u@h/db?sslmode=require&sslpassword={SECRET};x=1",
            "postgresql://u@h/db?sslmode=require&sslpassword=***;x=1",
        ),
        (f"amqp://u@h//?auth_token={SECRET}", "amqp://u@h//?auth_token=***"),
        (
            f"rediss://:{SECRET}@h:6380/0?ssl_cert_reqs=required&ssl_ca_certs=/ca.pem",
            "rediss://:***@h:6380/0?ssl_cert_reqs=required&ssl_ca_certs=/ca.pem",
        ),
    ],
)
def test_mistyped_urls_and_query_secrets_are_masked(url: str, expected: str) -> None:
    assert mask_url(url) == expected
    assert SECRET not in mask_url(url)


def test_credential_free_urls_keep_their_query() -> None:
    url = "redis://h:6379/0?ssl_cert_reqs=required&socket_timeout=5"
    assert mask_url(url) == url

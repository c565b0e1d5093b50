"""How long a vendor asked us to wait, in each way vendors say it."""
import email.utils
import time

import pytest

from providers.base import retry_after


@pytest.mark.parametrize("headers,seconds", [
    ({"retry-after": "12"}, 12.0),
    ({"retry-after": "1.5"}, 1.5),
    ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),  # the finer one wins
    ({"retry-after": "-3"}, 0.0),
    ({}, None),
    ({"retry-after": "soon"}, None),
    (None, None),
])
def test_it_reads_seconds_or_milliseconds(headers, seconds):
    assert retry_after(headers) == seconds


def test_it_reads_an_http_date():
    when = email.utils.formatdate(time.time() + 30, usegmt=True)

    assert 25 <= retry_after({"retry-after": when}) <= 30

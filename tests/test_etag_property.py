"""Hypothesis: two argument values that render differently never share a template ETag.

Values are drawn over every type the canonical form covers (str, Markup,
bytes, int, float, bool, None, Decimal, lists, tuples, dicts, sets, dates,
times and tz-aware datetimes across zones and fixed offsets) and some it
refuses (bytearray, str subclasses); the second value is often a near twin of
the first (the same instant in another zone with the same offset, a list as a
tuple, bytes as a bytearray, 1 as True) — the pairs that used to collide.
"""

from __future__ import annotations

import datetime
import decimal
import zoneinfo
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markupsafe import Markup

from chalice_http_toolkit import ContentManager

ZONES = [
    "UTC",
    "Europe/Paris",
    "Africa/Lagos",
    "Europe/London",
    "Africa/Abidjan",
    "America/New_York",
    "America/Toronto",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
]
PROBE = "{{ v }}|{{ v | pprint }}|{% if v.tzinfo is defined %}{{ v.strftime('%Z %z') }}{% endif %}"


@pytest.fixture(scope="module")
def cm(tmp_path_factory):
    root = tmp_path_factory.mktemp("property")
    (root / "t").mkdir()
    (root / "s").mkdir()
    (root / "t" / "probe.html").write_text(PROBE)
    return ContentManager(str(root / "t"), str(root / "s"), auto_reload=False)


class Loud(str):
    """A str subclass: renders like a str, but is not one."""


zones = st.sampled_from(ZONES).map(zoneinfo.ZoneInfo)
offsets = st.integers(-18 * 60, 18 * 60).map(lambda minutes: datetime.timedelta(minutes=minutes))
fixed = st.builds(datetime.timezone, offsets) | st.builds(
    datetime.timezone, offsets, st.sampled_from(["CET", "WAT", "GMT", "X"])
)
tzinfos = st.none() | zones | fixed
text = st.text(alphabet="ab<&é😀", max_size=4)
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3) | st.integers(),
    st.floats(allow_nan=False),
    text,
    text.map(Markup),
    text.map(Loud),
    st.binary(max_size=4),
    st.binary(max_size=4).map(bytearray),
    st.decimals(allow_nan=False, allow_infinity=False, places=2),
    st.dates(),
    st.times(timezones=st.none() | fixed),
    st.datetimes(
        min_value=datetime.datetime(1990, 1, 1),
        max_value=datetime.datetime(2040, 1, 1),
        timezones=tzinfos,
    ),
)
aware = st.datetimes(
    min_value=datetime.datetime(1990, 1, 1),
    max_value=datetime.datetime(2040, 1, 1),
    timezones=zones | fixed,
)
hashable = st.one_of(st.integers(-3, 3), text, st.booleans())
values = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(text | st.integers(-2, 2), children, max_size=3),
        st.frozensets(hashable, max_size=3),
        st.sets(hashable, max_size=3),
    ),
    max_leaves=6,
)


def twins(value: Any) -> list[Any]:
    """Values that are equal, or nearly, to ``value`` but may render differently."""
    out: list[Any] = []
    if isinstance(value, datetime.datetime) and value.tzinfo is not None:
        for name in ZONES:
            out.append(value.astimezone(zoneinfo.ZoneInfo(name)))
        offset = value.utcoffset()
        out.append(value.replace(tzinfo=datetime.timezone(offset)))
        out.append(value.replace(tzinfo=datetime.timezone(offset, "X")))
    if type(value) is bytes:
        out += [bytearray(value), memoryview(value)]
    if type(value) is str:
        out += [Markup(value), Loud(value)]
    if type(value) is int and value in (0, 1):
        out += [bool(value), float(value), decimal.Decimal(value)]
    if type(value) is list:
        out.append(tuple(value))
        if value:  # a twin inside the list
            out += [[twin, *value[1:]] for twin in twins(value[0])]
    if type(value) is tuple:
        out.append(list(value))
    if type(value) is dict:
        out.append(dict(reversed(list(value.items()))))
    return out or [value]


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(first=values | aware | st.lists(aware | values, max_size=2), data=st.data())
def test_values_that_render_differently_never_share_an_etag(cm, first, data):
    second = data.draw(st.sampled_from(twins(first)) | values, label="second")
    one = cm.template_etag("probe.html", {"v": first})
    other = cm.template_etag("probe.html", {"v": second})
    assert cm.template_etag("probe.html", {"v": first}) == one  # memo hit or not, the same
    if one is not None and one == other:
        assert cm.render_template("probe.html", v=first) == cm.render_template(
            "probe.html", v=second
        ), (first, second)

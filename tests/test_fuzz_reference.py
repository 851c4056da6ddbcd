"""Property tests of the reference parser: any text in, only our errors out; parse ∘ str = id.

The same parser reads user input and names a registry sends, so it sees hostile text.
"""

from __future__ import annotations

import string

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from oci_normalize.errors import OciNormalizeError
from oci_normalize.reference import (
    Reference,
    parse_location,
    parse_repository,
    parse_tag,
    shown,
)

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_alnum = string.ascii_lowercase + string.digits
component = st.from_regex(r"[a-z0-9]{1,6}(?:(?:[._]|__|-{1,2})[a-z0-9]{1,6}){0,2}", fullmatch=True)
repository = st.lists(component, min_size=1, max_size=4).map("/".join)
tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
digest = st.text("0123456789abcdef", min_size=64, max_size=64).map(lambda h: f"sha256:{h}")
label = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,6}[a-z0-9])?", fullmatch=True)
host = st.one_of(
    st.builds(lambda a, b: f"{a}.{b}", label, label),
    st.just("localhost"),
    st.builds(lambda a, b, c, d: f"{a}.{b}.{c}.{d}", *[st.integers(0, 255)] * 4),
    st.just("[::1]"),
)
port = st.one_of(st.just(""), st.integers(1, 65535).map(lambda p: f":{p}"))
#: Text shaped like references, with hostile bytes mixed in.
hostile = st.text(
    alphabet=st.sampled_from([*"abc019:/@.-_[]", "\x1b", "\n", "\x00", "é", "\u202e", " "]),
    max_size=40,
)


@FUZZ
@given(st.one_of(st.text(max_size=80), hostile))
@example("user:pw@host.example/app")
@example("127.0.0.1:99999/app")
@example("a" * 10_000)
def test_parsing_any_text_raises_only_our_errors(text: str) -> None:
    for parse in (Reference.parse, parse_location, parse_repository, parse_tag):
        try:
            parse(text)
        except OciNormalizeError as exc:
            message = str(exc)
            assert "\x1b" not in message and "\n" not in message and "\x00" not in message
            assert len(message) < 1000


@FUZZ
@given(host, port, repository, st.one_of(st.none(), tag), st.one_of(st.none(), digest))
def test_valid_references_round_trip(
    h: str, p: str, repo: str, t: str | None, d: str | None
) -> None:
    text = f"{h}{p}/{repo}" + (f":{t}" if t else "") + (f"@{d}" if d else "")
    ref = Reference.parse(text)
    assert ref.registry == f"{h}{p}" and ref.repository == repo
    assert Reference.parse(str(ref)) == ref
    assert parse_repository(ref.repository) == repo
    if t:
        assert ref.tag == t and parse_tag(t) == t


@FUZZ
@given(st.one_of(st.text(max_size=60), hostile))
def test_whatever_parses_round_trips(text: str) -> None:
    try:
        ref = Reference.parse(text)
    except OciNormalizeError:
        return
    assert Reference.parse(str(ref)) == ref


@FUZZ
@given(
    st.text(_alnum, min_size=1, max_size=8),
    st.text(_alnum + "!#%&*", min_size=1, max_size=12).map(lambda s: f"pw{s}SECRET"),
    host,
    port,
    repository,
    st.one_of(st.just(""), tag.map(lambda t: f":{t}")),
)
def test_a_password_in_a_reference_never_reaches_a_message(
    user: str, password: str, h: str, p: str, repo: str, t: str
) -> None:
    text = f"{user}:{password}@{h}{p}/{repo}{t}"
    for parse in (Reference.parse, parse_location):
        try:
            parse(text)
        except OciNormalizeError as exc:
            assert password not in str(exc)
        else:
            raise AssertionError(f"{text!r} parsed")
    assert password not in shown(text)

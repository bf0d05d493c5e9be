"""A ticket search's query: a number or summary words, refused cheaply when it is not a
query, in one normal form (the cache key), and rendered into ConnectWise conditions by
the escaping builder, so typed text can never change the condition's structure."""

from __future__ import annotations

import pytest

from syntaskio_common.ticket_search import InvalidSearch, TicketQuery


@pytest.mark.parametrize(
    ("typed", "number", "words"),
    [
        ("1234", 1234, ()),
        ("#1234", 1234, ()),
        ("  #42 ", 42, ()),
        ("Printer  OFFLINE", None, ("printer", "offline")),
        ("vpn vpn VPN down", None, ("vpn", "down")),  # each word once
        ("0123", None, ("0123",)),  # not a ticket number: a word
        ("99999999999", None, ("99999999999",)),  # beyond any ticket id
        ("#12 34", None, ("#12", "34")),
    ],
)
def test_a_number_or_the_words(typed: str, number: int | None, words: tuple[str, ...]) -> None:
    query = TicketQuery.parse(typed)
    assert (query.number, query.words) == (number, words)


def test_the_normal_form_is_the_same_however_it_was_typed() -> None:
    assert TicketQuery.parse("  Printer\tOffline ").normal == "printer offline"
    assert (
        TicketQuery.parse("printer offline").normal == TicketQuery.parse("PRINTER OFFLINE").normal
    )
    assert TicketQuery.parse("1234").normal == TicketQuery.parse("#1234").normal == "#1234"


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "   ",
        "a",
        "printer a",
        "x" * 101,
        "one two three four five six seven",
        "bad\x00byte",
        "\x93T",  # a C1 control character, as the fuzzer found
        "lone\ud800surrogate",
    ],
)
def test_what_is_not_a_query_is_refused(typed: str) -> None:
    with pytest.raises(InvalidSearch):
        TicketQuery.parse(typed)


def test_conditions_hold_the_text_as_quoted_values() -> None:
    assert str(TicketQuery.parse("#77").condition()) == "id = 77"
    hostile = TicketQuery.parse('x") or (id >= 10 or "y')
    assert str(hostile.condition()) == (
        r'summary contains "x\")" and summary contains "or" and summary contains "(id" '
        r'and summary contains ">=" and summary contains "10" and summary contains "\"y"'
    )

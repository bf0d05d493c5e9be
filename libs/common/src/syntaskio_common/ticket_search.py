"""Find any ticket: a technician's search of ConnectWise by ticket number or summary words,
made with credentials acting as their own member (so it finds what that member may see).

The query is parsed here, once, by the gateway (to refuse a bad one before any call) and
by the connector (to build its conditions and its cache key from the same normal form).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from pydantic import AwareDatetime, BaseModel, Field

from syntaskio_common.connectwise_conditions import Condition, F, all_of
from syntaskio_common.task import SourceType

MOST_QUERY_CHARACTERS: Final = 100
MOST_WORDS: Final = 6
FEWEST_WORD_CHARACTERS: Final = 2
# One page of results, newest ticket first: a search narrows, it does not list.
MOST_RESULTS: Final = 25
SEARCHABLE_TYPES: Final = (SourceType.SERVICE_TICKET, SourceType.PROJECT_TICKET)
_NUMBER: Final = re.compile(r"#?([1-9][0-9]{0,9})")
_LARGEST_ID: Final = 2**31 - 1


class InvalidSearch(ValueError):
    """Not a query we send: the message says why, for the user."""


@dataclass(frozen=True)
class TicketQuery:
    """A ticket number, or the words the summary must all contain (case ignored, as
    ConnectWise compares text). `normal` is the form results are cached under."""

    number: int | None
    words: tuple[str, ...]

    @property
    def normal(self) -> str:
        return f"#{self.number}" if self.number is not None else " ".join(self.words)

    @classmethod
    def parse(cls, text: str) -> TicketQuery:
        query = " ".join(text.split())
        if not query:
            raise InvalidSearch("Type a ticket number or words from its summary.")
        if len(query) > MOST_QUERY_CHARACTERS:
            raise InvalidSearch(f"At most {MOST_QUERY_CHARACTERS} characters.")
        number = _NUMBER.fullmatch(query)
        if number is not None and int(number.group(1)) <= _LARGEST_ID:
            return cls(int(number.group(1)), ())
        words = tuple(dict.fromkeys(word.casefold() for word in query.split(" ")))
        if len(words) > MOST_WORDS:
            raise InvalidSearch(f"At most {MOST_WORDS} words.")
        if any(len(word) < FEWEST_WORD_CHARACTERS for word in words):
            raise InvalidSearch(f"Each word needs at least {FEWEST_WORD_CHARACTERS} characters.")
        parsed = cls(None, words)
        try:
            parsed.condition()  # what the builder refuses (control characters…) is refused here
        except ValueError as error:
            raise InvalidSearch(f"Not a query: {error}") from None
        return parsed

    def condition(self) -> Condition:
        """The ticket with that number, or every ticket whose summary holds all the words
        (built by the escaping builder: what is typed stays a quoted value)."""
        if self.number is not None:
            return F("id") == self.number
        return all_of(*(F("summary").contains(word) for word in self.words))


class FoundTicket(BaseModel):
    source_type: SourceType
    ticket_id: int
    summary: str
    company: str | None = None
    board: str | None = None
    status: str | None = None
    priority: str | None = None
    project: str | None = Field(default=None, description="A project ticket's project")
    owner: str | None = Field(default=None, description="The owner's member identifier")
    closed: bool = False
    updated_at: AwareDatetime | None = None
    url: str = Field(description="The ticket in ConnectWise")


class TicketSearchResults(BaseModel):
    """One search's answer, as the connector gives it (and caches it)."""

    integration_id: str = Field(description="The connection it was made on")
    member: str = Field(description="The ConnectWise member it was made as")
    query: str = Field(description="The query as searched (its normal form)")
    source_type: SourceType
    tickets: list[FoundTicket]
    more: bool = Field(description="More tickets match than are listed: narrow the query")
    searched_at: AwareDatetime

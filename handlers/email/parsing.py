"""What the intake counts and how it parses: the pass's figures, the letter size limit, and
parsing off the event loop (one letter, or a chunk in one trip)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.desk import Desk
from bot.domain.mail import ParsedMail
from bot.services.inbound_mail import Outcome, Parse, ParseMany
from handlers.email.parse import parse_message

# A letter may carry about three files of MAX_UPLOAD_BYTES each (base64 makes them a third
# larger); a larger one is not fetched whole: its header is stored and it is quarantined.
LETTER_SIZE_FACTOR = 4


@dataclass
class IntakeStats:
    cases: int = 0
    replies: int = 0
    enquiries: int = 0
    automatic: int = 0
    bounces: int = 0
    quarantined: int = 0
    duplicates: int = 0
    deferred: int = 0  # stored, not acted upon yet (a file could not be written): next pass
    not_stored: int = 0  # refused by the database: left in the folder, staff told
    moved: int = 0
    refs: list[str] = field(default_factory=list)
    tried: dict[int, str] = field(default_factory=dict, repr=False)  # acted upon: status

    @property
    def handled(self) -> int:
        return (
            self.cases
            + self.replies
            + self.enquiries
            + self.automatic
            + self.bounces
            + self.quarantined
        )

    def count(self, outcome: Outcome) -> None:
        if outcome.done is not None:
            setattr(self, outcome.done, getattr(self, outcome.done) + 1)
        if outcome.ref is not None:
            self.refs.append(outcome.ref)

    def to_json(self) -> dict[str, int]:
        return {
            "cases": self.cases,
            "replies": self.replies,
            "enquiries": self.enquiries,
            "automatic": self.automatic,
            "bounces": self.bounces,
            "quarantined": self.quarantined,
            "duplicates": self.duplicates,
            "deferred": self.deferred,
            "not_stored": self.not_stored,
            "moved": self.moved,
        }


def letter_size_limit(desk: Desk) -> int:
    return LETTER_SIZE_FACTOR * desk.settings.max_upload_bytes


@dataclass(frozen=True)
class ParseOptions:
    """What parsing takes from the settings: picklable, so a chunk can be parsed in the desk's
    worker process (bot.desk.ProcessWorker) as well as in a thread."""

    case_ref_prefix: str
    max_attachment_bytes: int
    own_domain: str | None
    own_addresses: tuple[str, ...]

    @classmethod
    def of(cls, desk: Desk) -> ParseOptions:
        s = desk.settings
        return cls(s.case_ref_prefix, s.max_upload_bytes, s.mail_domain, (s.mail_from,))

    def one(self, raw: bytes) -> ParsedMail:
        return parse_message(
            raw,
            case_ref_prefix=self.case_ref_prefix,
            max_attachment_bytes=self.max_attachment_bytes,
            own_domain=self.own_domain,
            own_addresses=self.own_addresses,
        )


def parser(desk: Desk) -> Parse:
    """Parsing as the service wants it, off the event loop (it is CPU work: charsets, MIME)."""
    options = ParseOptions.of(desk)

    async def parse(raw: bytes) -> ParsedMail:
        return await asyncio.to_thread(options.one, raw)

    return parse


@dataclass(frozen=True)
class ParseAll:
    """Parsing as `parser` does it, for many letters in one call (run it off the event loop)."""

    options: ParseOptions

    def __call__(self, raws: Sequence[bytes]) -> list[ParsedMail]:
        return [self.options.one(raw) for raw in raws]


@dataclass(frozen=True)
class ParseAhead:
    """`ParseAll` for letters not stored yet: a letter the parser cannot take is None here (it
    is stored all the same, and the service parses it again and quarantines it)."""

    options: ParseOptions

    def __call__(self, raws: Sequence[bytes]) -> list[ParsedMail | None]:
        found: list[ParsedMail | None] = []
        for raw in raws:
            try:
                found.append(self.options.one(raw))
            except Exception:  # never let one letter stop the others
                found.append(None)
        return found


def parse_all(desk: Desk) -> ParseAll:
    return ParseAll(ParseOptions.of(desk))


def parse_ahead(desk: Desk) -> ParseAhead:
    return ParseAhead(ParseOptions.of(desk))


def warm_up() -> None:
    """A first letter parsed in a new worker process: its imports and first-use costs paid at
    start, not on the first chunk of a pass."""
    parse_message(b"From: a@example.com\r\nSubject: =?utf-8?b?5L2g5aW9?=\r\n\r\nx\r\n")


def many_parser(desk: Desk, ahead: dict[str, ParsedMail] | None = None) -> ParseMany:
    """`parser` for a batch of letters: one trip off the event loop for them all. `ahead`: the
    letters parsed already, by key (the hash of their bytes), taken from it as they are used."""
    parse = parse_all(desk)
    ready = ahead if ahead is not None else {}

    async def parse_many(letters: Sequence[tuple[str, bytes]]) -> list[ParsedMail]:
        todo = [raw for key, raw in letters if key not in ready]
        parsed = iter(await desk.worker.run(parse, todo) if todo else [])
        return [ready.pop(key) if key in ready else next(parsed) for key, _ in letters]

    return parse_many

"""What the intake counts and how it parses: the pass's figures, the letter size limit, and
parsing off the event loop (one letter, or a chunk in one trip)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
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


def parser(desk: Desk) -> Parse:
    """Parsing as the service wants it, off the event loop (it is CPU work: charsets, MIME)."""
    s = desk.settings

    async def parse(raw: bytes) -> ParsedMail:
        return await asyncio.to_thread(
            parse_message,
            raw,
            case_ref_prefix=s.case_ref_prefix,
            max_attachment_bytes=s.max_upload_bytes,
            own_domain=s.mail_domain,
            own_addresses=(s.mail_from,),
        )

    return parse


def parse_all(desk: Desk) -> Callable[[Sequence[bytes]], list[ParsedMail]]:
    """Parsing as `parser` does it, for many letters in one call (run it off the event loop)."""
    s = desk.settings

    def parse(raws: Sequence[bytes]) -> list[ParsedMail]:
        return [
            parse_message(
                raw,
                case_ref_prefix=s.case_ref_prefix,
                max_attachment_bytes=s.max_upload_bytes,
                own_domain=s.mail_domain,
                own_addresses=(s.mail_from,),
            )
            for raw in raws
        ]

    return parse


def parse_ahead(desk: Desk) -> Callable[[Sequence[bytes]], list[ParsedMail | None]]:
    """`parse_all` for letters not stored yet: a letter the parser cannot take is None here (it
    is stored all the same, and the service parses it again and quarantines it)."""
    one = parse_all(desk)

    def parse(raws: Sequence[bytes]) -> list[ParsedMail | None]:
        found: list[ParsedMail | None] = []
        for raw in raws:
            try:
                found.extend(one([raw]))
            except Exception:  # never let one letter stop the others
                found.append(None)
        return found

    return parse


def many_parser(desk: Desk, ahead: dict[str, ParsedMail] | None = None) -> ParseMany:
    """`parser` for a batch of letters: one trip off the event loop for them all. `ahead`: the
    letters parsed already, by key (the hash of their bytes), taken from it as they are used."""
    parse = parse_all(desk)
    ready = ahead if ahead is not None else {}

    async def parse_many(letters: Sequence[tuple[str, bytes]]) -> list[ParsedMail]:
        todo = [raw for key, raw in letters if key not in ready]
        parsed = iter(await asyncio.to_thread(parse, todo) if todo else [])
        return [ready.pop(key) if key in ready else next(parsed) for key, _ in letters]

    return parse_many

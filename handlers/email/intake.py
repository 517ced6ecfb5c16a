"""The IMAP intake: letters in the inbox become cases, replies, staff enquiries or quiet records.

For every message, in this order, so a crash at any point loses nothing and repeats nothing:
1. FETCH `BODY.PEEK[]` (the letter stays unread on the server);
2. store the raw bytes with (mailbox, UIDVALIDITY, UID) and its Message-ID — or a hash of its
   headers when it has none — and COMMIT; both keys are unique, so a letter seen again after a
   restart (or delivered twice) is recognised and not stored again;
3. act in one transaction: parse, open the case or add to the case it answers, queue the answers
   and the staff alerts (outbox), mark the row processed — and COMMIT;
4. only then flag `\\Seen` and MOVE the message to IMAP_PROCESSED_FOLDER (or to
   IMAP_QUARANTINE_FOLDER when it could not be processed).
A restart finds the stored rows by UID: a stored row is acted upon, a processed one only moved.

imapclient is blocking: every IMAP call runs in a thread (`asyncio.to_thread`). The long-running
`run()` uses IDLE when the server offers it, polls every IMAP_POLL_SECONDS otherwise (and as a
fallback with IDLE), reconnects with backoff and tells staff after 5 consecutive failures, and
again when the mailbox is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import random
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.delivery.compose import text_to_html
from bot.desk import Desk
from bot.domain.letters import case_ref_in_subject, classify_text
from bot.domain.refs import subject_tag
from bot.outbox.to_staff import queue_for_staff
from bot.services.cases import (
    Attachment,
    CaseRefused,
    Complainant,
    add_information,
    keep_attachment,
    new_message_id,
    open_case,
)
from handlers.email.parse import ParsedMail, parse_message
from messages.render import t, th
from storage.models import Case, Channel, InboundEmail, InboundStatus
from storage.repo import cases as cases_repo
from storage.repo import inbound_email as repo
from storage.repo.outbox import enqueue

log = logging.getLogger(__name__)

FETCH_CHUNK = 50  # messages per FETCH (and per MOVE): few round trips, bounded memory
ACT_BATCH = 10  # letters acted upon per commit: fewer commits, little work redone after a crash
FAILURES_BEFORE_ALERT = 5
BACKOFF_CAP_SECONDS = 300.0
IDLE_SLICE_SECONDS = 1.0  # how often a waiting worker looks at its stop event
IMAP_TIMEOUT_SECONDS = 60.0
SEEN = b"\\Seen"
_TRANSIENT = (OperationalError, InterfaceError, OSError, TimeoutError)


class IntakeError(Exception):
    """The mailbox could not be reached or used (connection, login, a command refused)."""


@dataclass
class IntakeStats:
    cases: int = 0
    replies: int = 0
    enquiries: int = 0
    automatic: int = 0
    bounces: int = 0
    quarantined: int = 0
    duplicates: int = 0
    moved: int = 0
    refs: list[str] = field(default_factory=list)

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

    def to_json(self) -> dict[str, int]:
        return {
            "cases": self.cases,
            "replies": self.replies,
            "enquiries": self.enquiries,
            "automatic": self.automatic,
            "bounces": self.bounces,
            "quarantined": self.quarantined,
            "duplicates": self.duplicates,
            "moved": self.moved,
        }


# ---------------------------------------------------------------------------------------------
# Keys


_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(?:\r?\n[ \t]+)?(<[^<>\s]+>)", re.I | re.M)


def header_block(raw: bytes) -> bytes:
    end = min((i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0), default=len(raw))
    return raw[:end]


def message_key(raw: bytes) -> tuple[str | None, str]:
    """(Message-ID as sent or None, the dedupe key: the Message-ID or a hash of the headers)."""
    head = header_block(raw)
    found = _MESSAGE_ID.search(head)
    if found:
        message_id = found.group(1).decode("ascii", "replace")
        return message_id, message_id
    return None, "sha256:" + hashlib.sha256(head).hexdigest()


# ---------------------------------------------------------------------------------------------
# The mailbox (blocking; called through asyncio.to_thread)


class ImapMailbox:
    """One logged-in connection to the intake folder."""

    def __init__(self, desk: Desk) -> None:
        s = desk.settings
        if not s.imap_host or not s.imap_user:
            raise IntakeError("IMAP_HOST and IMAP_USER must be set for the e-mail intake")
        self.host, self.port, self.use_ssl = s.imap_host, s.imap_port, s.imap_ssl
        self.user = s.imap_user
        self.password = s.imap_password.get_secret_value() if s.imap_password else ""
        self.folder = s.imap_folder
        self.processed_folder = s.imap_processed_folder
        self.quarantine_folder = s.imap_quarantine_folder
        self.name = f"{self.user}@{self.host}/{self.folder}"
        self.client: IMAPClient | None = None
        self.uidvalidity = 0
        self.can_idle = False
        self.can_move = False
        self.idling = False

    def open(self) -> None:
        context = ssl.create_default_context() if self.use_ssl else None
        client = IMAPClient(
            self.host,
            port=self.port,
            ssl=self.use_ssl,
            ssl_context=context,
            timeout=IMAP_TIMEOUT_SECONDS,
        )
        try:
            client.login(self.user, self.password)
            for folder in (self.processed_folder, self.quarantine_folder):
                if not client.folder_exists(folder):
                    with contextlib.suppress(IMAPClientError):  # another worker just made it
                        client.create_folder(folder)
            info = client.select_folder(self.folder)
            self.uidvalidity = int(info[b"UIDVALIDITY"])
            self.can_idle = client.has_capability("IDLE")
            self.can_move = client.has_capability("MOVE")
        except BaseException:
            with contextlib.suppress(Exception):
                client.logout()
            raise
        self.client = client

    def _client(self) -> IMAPClient:
        if self.client is None:
            raise IntakeError("mailbox not open")
        if self.idling:
            self.client.idle_done()
            self.idling = False
        return self.client

    def uids(self) -> list[int]:
        return sorted(self._client().search(["NOT", "DELETED"]))

    def fetch(self, uids: Sequence[int]) -> dict[int, bytes]:
        data = self._client().fetch(list(uids), ["BODY.PEEK[]"])
        return {uid: item[b"BODY[]"] for uid, item in data.items() if b"BODY[]" in item}

    def file(self, uids: Sequence[int], folder: str) -> None:
        """Mark read and move out of the intake folder (COPY + EXPUNGE without MOVE)."""
        client = self._client()
        client.add_flags(list(uids), [SEEN])
        if self.can_move:
            client.move(list(uids), folder)
        else:
            client.copy(list(uids), folder)
            client.delete_messages(list(uids))
            if client.has_capability("UIDPLUS"):
                client.uid_expunge(list(uids))
            else:
                client.expunge()

    def wait(self, seconds: float) -> bool:
        """IDLE (or a NOOP poll) for up to `seconds`; True when the server announced something."""
        client = self.client
        if client is None:
            raise IntakeError("mailbox not open")
        if not self.can_idle:
            return bool(client.noop()[1])
        if not self.idling:
            client.idle()
            self.idling = True
        return bool(client.idle_check(timeout=seconds))

    def close(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        with contextlib.suppress(Exception):
            if self.idling:
                client.idle_done()
        self.idling = False
        with contextlib.suppress(Exception):
            client.logout()


# ---------------------------------------------------------------------------------------------
# One pass over the intake folder


async def run_once(desk: Desk) -> IntakeStats:
    """Process everything in the intake folder once (`certdesk email fetch --once`)."""
    box = ImapMailbox(desk)
    try:
        await asyncio.to_thread(box.open)
    except (IMAPClientError, OSError) as exc:
        raise IntakeError(f"cannot open {box.name}: {_reason(exc)}") from None
    try:
        return await process_mailbox(desk, box)
    finally:
        await asyncio.to_thread(box.close)


async def process_mailbox(desk: Desk, box: ImapMailbox) -> IntakeStats:
    stats = IntakeStats()
    # Letters stored before a crash and no longer in the folder (moved by hand) still count.
    async with desk.sessions() as session:
        leftovers = [row.id for row in await repo.pending(session, limit=10_000)]
    for start in range(0, len(leftovers), FETCH_CHUNK):
        await _act_many(desk, [i for i in leftovers[start : start + FETCH_CHUNK] if i], stats)
    try:
        uids = await asyncio.to_thread(box.uids)
        for start in range(0, len(uids), FETCH_CHUNK):
            await _chunk(desk, box, uids[start : start + FETCH_CHUNK], stats)
    except (IMAPClientError, OSError) as exc:
        raise IntakeError(f"{box.name}: {_reason(exc)}") from None
    return stats


async def _chunk(desk: Desk, box: ImapMailbox, uids: list[int], stats: IntakeStats) -> None:
    """Store, act upon and file a few letters: each step committed before the next begins."""
    async with desk.sessions() as session:
        known = await repo.by_uid(session, box.name, box.uidvalidity, uids)
    missing = [uid for uid in uids if uid not in known]
    raws = await asyncio.to_thread(box.fetch, missing) if missing else {}
    stored = await _store_many(desk, box, raws)
    status = {uid: row.status for uid, row in known.items()}
    destination: dict[str, list[int]] = {}
    for uid in missing:
        if uid in stored:
            status[uid] = InboundStatus.STORED
        elif uid in raws:  # the same letter is already stored (another UID): file it away
            stats.duplicates += 1
            destination.setdefault(box.processed_folder, []).append(uid)
    pending = dict(stored) | {
        uid: row.id
        for uid, row in known.items()
        if row.status == InboundStatus.STORED and row.id is not None
    }
    done = await _act_many(desk, list(pending.values()), stats)
    for uid, row_id in pending.items():
        status[uid] = done[row_id]
    for uid in uids:
        if uid in status:
            quarantined = status[uid] == InboundStatus.QUARANTINED
            folder = box.quarantine_folder if quarantined else box.processed_folder
            destination.setdefault(folder, []).append(uid)
    for folder, filed in destination.items():
        await asyncio.to_thread(box.file, sorted(filed), folder)
        stats.moved += len(filed)


async def _store_many(desk: Desk, box: ImapMailbox, raws: dict[int, bytes]) -> dict[int, int]:
    """Store the raw letters in one transaction; return the new rows' ids by UID.

    A letter whose UID or Message-ID/hash is already stored gets no row (it is a duplicate).
    """
    stored: dict[int, int] = {}
    if not raws:
        return stored
    async with desk.sessions() as session, session.begin():
        for uid in sorted(raws):
            message_id, key = message_key(raws[uid])
            row = await repo.store_raw(
                session,
                mailbox=box.name,
                uidvalidity=box.uidvalidity,
                uid=uid,
                message_id=message_id,
                message_key=key,
                raw=raws[uid],
                now=desk.clock.now(),
            )
            if row is not None and row.id is not None:
                stored[uid] = row.id
    return stored


# ---------------------------------------------------------------------------------------------
# Acting on stored letters


async def _act_many(desk: Desk, inbound_ids: list[int], stats: IntakeStats) -> dict[int, str]:
    """Act on stored letters; return each one's final status.

    One transaction per ACT_BATCH letters (one commit instead of one per letter), each
    letter inside its own savepoint: its effects are all there or none of them, and a
    letter that breaks the intake is quarantined without undoing the others.
    """
    result: dict[int, str] = {}
    for start in range(0, len(inbound_ids), ACT_BATCH):
        async with desk.sessions() as session, session.begin():
            for inbound_id in inbound_ids[start : start + ACT_BATCH]:
                result[inbound_id] = await _act(desk, session, inbound_id, stats)
    return result


async def _act(desk: Desk, session: AsyncSession, inbound_id: int, stats: IntakeStats) -> str:
    counted = dataclasses.replace(stats, refs=list(stats.refs))  # undone with the savepoint
    try:
        async with session.begin_nested():
            row = await repo.lock(session, inbound_id)
            if row.status != InboundStatus.STORED:
                return row.status
            await _act_on(desk, session, row, stats)
            return row.status
    except _TRANSIENT:
        raise  # the database is away: the letter stays stored and is acted upon next pass
    except Exception as exc:  # a letter that breaks the intake must not stop the next one
        log.exception("inbound e-mail %s could not be processed", inbound_id)
        vars(stats).update(vars(counted))
        reason = f"intake_error: {type(exc).__name__}"
        async with session.begin_nested():
            row = await repo.lock(session, inbound_id)
            await session.refresh(row)
            await _quarantine(desk, session, row, None, reason)
        stats.quarantined += 1
        return InboundStatus.QUARANTINED


async def _act_on(desk: Desk, session: AsyncSession, row: InboundEmail, stats: IntakeStats) -> None:
    s = desk.settings
    parsed = parse_message(
        row.raw, case_ref_prefix=s.case_ref_prefix, max_attachment_bytes=s.max_upload_bytes
    )
    row.problems = parsed.problems or None
    broken = _broken(parsed)
    if broken:
        await _quarantine(desk, session, row, parsed, broken)
        stats.quarantined += 1
        return
    if parsed.bounce is not None:
        await _bounce(desk, session, row, parsed)
        stats.bounces += 1
        return
    case = await _case_answered(session, parsed, s.case_ref_prefix)
    if parsed.automatic:
        # Recorded (and linked to its case), never answered: no loops with robots.
        row.kind, row.status = "automatic", InboundStatus.IGNORED.value
        row.case_id = case.id if case else None
        stats.automatic += 1
        return
    if case is not None:
        await _reply(desk, session, row, parsed, case)
        stats.replies += 1
        return
    kind = classify_text(parsed.subject, parsed.text) if parsed.kind == "reply" else parsed.kind
    if kind == "enquiry":
        await _enquiry(desk, session, row, parsed)
        stats.enquiries += 1
        return
    ref = await _open(desk, session, row, parsed, kind)
    stats.cases += 1
    stats.refs.append(ref)


def _broken(parsed: ParsedMail) -> str | None:
    """Why a letter cannot be processed (None: it can)."""
    unparseable = [p for p in parsed.problems if p.startswith("unparseable")]
    if unparseable:
        return unparseable[0]
    if not (parsed.from_addr or parsed.reply_to):
        return "no sender address"
    return None


async def _case_answered(session: AsyncSession, parsed: ParsedMail, prefix: str) -> Case | None:
    """The known case a letter belongs to: the subject tag first, then the threading headers."""
    tagged = case_ref_in_subject(parsed.subject, prefix)
    if tagged:
        case = await cases_repo.find_case_by_ref(session, tagged)
        if case is not None:
            return case
    for message_id in [*reversed(parsed.in_reply_to), *reversed(parsed.references)]:
        case = await cases_repo.find_case_by_message_id(session, message_id)
        if case is not None:
            return case
    return None


_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]{3,}")


def letter_locale(parsed: ParsedMail, default: str) -> str:
    """Answer in the letter's language: Chinese when it has any, English when it is in Latin."""
    sample = f"{parsed.subject}\n{parsed.text[:2000]}"
    if _CJK.search(sample):
        return "zh_CN"
    if _LATIN.search(sample):
        return "en"
    return default


async def _files(desk: Desk, session: AsyncSession, parsed: ParsedMail) -> list[Attachment]:
    kept = []
    for item in parsed.attachments:
        if not item.acceptable or item.data is None:
            continue  # listed in the problems the staff see
        try:
            kept.append(await keep_attachment(desk, session, item.data, item.filename))
        except CaseRefused:
            continue
    return kept


async def _may_answer(desk: Desk, session: AsyncSession, address: str) -> bool:
    """At most AUTO_REPLIES_PER_SENDER_PER_HOUR automatic answers to one address per hour."""
    since = desk.clock.now() - repo.HOUR
    sent = await repo.automatic_answers_since(session, address, since)
    return sent < desk.settings.auto_replies_per_sender_per_hour


async def _open(
    desk: Desk, session: AsyncSession, row: InboundEmail, parsed: ParsedMail, kind: str
) -> str:
    sender = parsed.reply_to or parsed.from_addr
    assert sender is not None
    allowed = await _may_answer(desk, session, sender)
    opened = await open_case(
        desk,
        session,
        kind=kind,
        channel=Channel.EMAIL,
        complainant=Complainant(
            name=parsed.from_name or None,
            email=sender,
            locale=letter_locale(parsed, desk.settings.default_locale),
        ),
        subject=parsed.subject or None,
        description=parsed.text,
        attachments=await _files(desk, session, parsed),
        source_message_id=parsed.message_id,
        acknowledge_by_email=allowed,
    )
    if not allowed:
        await _limit_noted(desk, session, row, sender, opened.case)
    row.kind, row.status, row.case_id = kind, InboundStatus.PROCESSED.value, opened.case.id
    return opened.ref


async def _reply(
    desk: Desk, session: AsyncSession, row: InboundEmail, parsed: ParsedMail, case: Case
) -> None:
    sender = parsed.reply_to or parsed.from_addr
    assert sender is not None and case.id is not None
    await add_information(
        desk,
        session,
        case,
        f"complainant:email:{parsed.from_addr or sender}",
        parsed.text,
        await _files(desk, session, parsed),
        source_message_id=parsed.message_id,
    )
    if await _may_answer(desk, session, sender):
        await _acknowledge_reply(desk, session, row, parsed, case, sender)
    else:
        await _limit_noted(desk, session, row, sender, case)
    row.kind, row.status, row.case_id = "reply", InboundStatus.PROCESSED.value, case.id


async def _acknowledge_reply(
    desk: Desk,
    session: AsyncSession,
    row: InboundEmail,
    parsed: ParsedMail,
    case: Case,
    sender: str,
) -> None:
    loc, tag = case.locale, subject_tag(case.ref)
    text = t("email.reply_ack_body", loc, ref=case.ref, tag=tag)
    message_id = new_message_id(desk, case.ref)
    references = [*parsed.references]
    if parsed.message_id and parsed.message_id not in references:
        references.append(parsed.message_id)
    out = await enqueue(
        session,
        channel=Channel.EMAIL,
        recipient=sender,
        payload={
            "subject": t("email.reply_ack_subject", loc, tag=tag),
            "text": text,
            "html": text_to_html(text),
            "locale": loc,
            "in_reply_to": parsed.message_id,
            "references": references,
            "auto_reply": True,
            "case_ref": case.ref,
            "message_id": message_id,
        },
        idempotency_key=f"inbound:{row.message_key}:ack",
        case_id=case.id,
        now=desk.clock.now(),
    )
    # Known before it is sent, so an answer to it (or its bounce) finds the case.
    out.email_message_id = message_id
    session.add(out)
    case.thread_message_ids = [*(case.thread_message_ids or []), message_id]
    session.add(case)


async def _enquiry(
    desk: Desk, session: AsyncSession, row: InboundEmail, parsed: ParsedMail
) -> None:
    loc = desk.settings.default_locale
    text = th(
        "email.staff_enquiry",
        loc,
        id=row.id,
        sender=_sender(parsed, loc),
        subject=parsed.subject,
        text=_cut(parsed.text),
    )
    await _to_staff(desk, session, f"inbound:{row.id}:triage", text)
    row.kind, row.status = "enquiry", InboundStatus.PROCESSED.value


async def _bounce(desk: Desk, session: AsyncSession, row: InboundEmail, parsed: ParsedMail) -> None:
    assert parsed.bounce is not None
    original = cases_repo.normalise_message_id(parsed.bounce.original_message_id)
    out = await repo.outbox_by_message_id(session, original) if original else None
    case = await session.get(Case, out.case_id) if out and out.case_id else None
    addresses = parsed.bounce.failed_recipients or ([out.recipient] if out else [])
    if out is not None:
        # The message the bounce returns did not reach its reader: that is a failed delivery.
        out.status = "failed"
        out.last_error = f"bounced: {', '.join(addresses)} (inbound e-mail #{row.id})"[:500]
        session.add(out)
    loc = desk.settings.default_locale
    text = th(
        "email.staff_bounce",
        loc,
        address=", ".join(addresses) or "?",
        ref=case.ref if case else "—",
    )
    await _to_staff(desk, session, f"inbound:{row.id}:bounce", text, case)
    row.kind, row.status = "bounce", InboundStatus.IGNORED.value
    row.case_id = case.id if case else None


async def _quarantine(
    desk: Desk,
    session: AsyncSession,
    row: InboundEmail,
    parsed: ParsedMail | None,
    reason: str,
) -> None:
    loc = desk.settings.default_locale
    text = th(
        "email.staff_quarantine",
        loc,
        folder=desk.settings.imap_quarantine_folder,
        id=row.id,
        sender=_sender(parsed, loc),
        reason=reason,
    )
    await _to_staff(desk, session, f"inbound:{row.id}:quarantine", text)
    row.status = InboundStatus.QUARANTINED.value
    if reason not in (row.problems or []):
        row.problems = [*(row.problems or []), reason]
    session.add(row)


async def _limit_noted(
    desk: Desk, session: AsyncSession, row: InboundEmail, sender: str, case: Case
) -> None:
    loc = desk.settings.default_locale
    text = th(
        "email.staff_auto_reply_limit",
        loc,
        sender=sender,
        limit=desk.settings.auto_replies_per_sender_per_hour,
        ref=case.ref,
    )
    await _to_staff(desk, session, f"inbound:{row.id}:limit", text, case)


async def _to_staff(
    desk: Desk, session: AsyncSession, key: str, text: str, case: Case | None = None
) -> None:
    await queue_for_staff(desk, session, key=key, text=text, case_id=case.id if case else None)


def _sender(parsed: ParsedMail | None, loc: str) -> str:
    if parsed is None or not (parsed.from_addr or parsed.reply_to):
        return t("email.unknown_sender", loc)
    name = f"{parsed.from_name} " if parsed.from_name else ""
    return f"{name}<{parsed.from_addr or parsed.reply_to}>"


def _cut(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _reason(exc: BaseException) -> str:
    first = exc.args[0] if exc.args else ""
    text = first.decode("utf-8", "replace") if isinstance(first, bytes) else str(exc)
    text = text.strip() or type(exc).__name__
    return text[:200]


# ---------------------------------------------------------------------------------------------
# The long-running worker


@dataclass
class _Health:
    """Consecutive failures, and whether staff were told (once per outage)."""

    failures: int = 0
    alerted_at: datetime | None = None


async def run(desk: Desk, stop_event: asyncio.Event, *, backoff_first: float = 2.0) -> None:
    """Receive letters until `stop_event` is set (started by the bot when IMAP_HOST is set).

    After a failure it waits `backoff_first` seconds, doubling up to 5 minutes, with jitter.
    """
    health = _Health()
    rng = random.Random()
    poll = float(desk.settings.imap_poll_seconds)
    while not stop_event.is_set():
        box = ImapMailbox(desk)
        try:
            await asyncio.to_thread(box.open)
            await process_mailbox(desk, box)
            await _recovered(desk, box, health)
            while not stop_event.is_set():
                if await _wait_for_mail(box, poll, stop_event):
                    await process_mailbox(desk, box)
        except Exception as exc:  # the worker outlives any failure; staff hear of lasting ones
            health.failures += 1
            if isinstance(exc, (IntakeError, IMAPClientError, *_TRANSIENT)):
                log.warning("e-mail intake failed (%s in a row): %s", health.failures, _reason(exc))
            else:
                log.exception("e-mail intake failed (%s in a row)", health.failures)
            await _maybe_alert(desk, box, health, exc)
            delay = min(backoff_first * 2.0 ** (health.failures - 1), BACKOFF_CAP_SECONDS)
            delay *= 0.5 + rng.random() / 2
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop_event.wait(), timeout=delay)
        finally:
            await asyncio.to_thread(box.close)


async def _wait_for_mail(box: ImapMailbox, poll: float, stop_event: asyncio.Event) -> bool:
    """Wait for new mail (IDLE) or for the poll interval; False when asked to stop."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + poll
    while not stop_event.is_set():
        remaining = deadline - loop.time()
        if remaining <= 0:
            return True  # the poll fallback: look even when IDLE said nothing
        if await asyncio.to_thread(box.wait, min(IDLE_SLICE_SECONDS, remaining)):
            return True
        if not box.can_idle:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop_event.wait(), timeout=min(remaining, poll))
    return False


async def _maybe_alert(desk: Desk, box: ImapMailbox, health: _Health, exc: BaseException) -> None:
    if health.failures < FAILURES_BEFORE_ALERT or health.alerted_at is not None:
        return
    now = desk.clock.now()
    text = th(
        "email.staff_imap_down",
        desk.settings.default_locale,
        mailbox=box.name,
        count=health.failures,
        reason=_reason(exc),
    )
    try:
        async with desk.sessions() as session, session.begin():
            await _to_staff(desk, session, f"imap:{box.name}:down:{now.isoformat()}", text)
    except _TRANSIENT:
        log.warning("could not queue the mailbox-down alert")
        return
    health.alerted_at = now


async def _recovered(desk: Desk, box: ImapMailbox, health: _Health) -> None:
    alerted, health.failures = health.alerted_at, 0
    if alerted is None:
        return
    text = th("email.staff_imap_up", desk.settings.default_locale, mailbox=box.name)
    async with desk.sessions() as session, session.begin():
        await _to_staff(desk, session, f"imap:{box.name}:up:{alerted.isoformat()}", text)
    health.alerted_at = None

"""The e-mail bench's world: a database that already holds a desk's history, and the letters.

`seed` fills the database fast (Core executemany: multi-row INSERTs on PostgreSQL, the driver's
own loop on SQLite — not through the service) with what a desk that has run for a while holds:
N cases (each with its opening letter, its Message-IDs in `case_message_id`, its deadline, its
two signed events and its head — a history `cases verify` accepts), and M outbox rows (the
acknowledgements, with their Message-IDs and auto-reply keys, and the staff alerts). A few
senders of the run already had automatic answers in the last hour and a staff alert minutes ago.

`letters` writes the letters of the run and what must come of each: new cases from single
senders, repeat senders (over the auto-reply limit), replies to existing cases (In-Reply-To our
acknowledgement, References their first letter, the tag in the subject or not), and replies to
letters earlier in the same run (some in the same chunk).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.domain.history import (
    case_digest,
    case_fields,
    event_hash,
    event_mac,
    field_seals,
    head_mac,
    json_ready,
    key_id,
)  # fmt: skip
from bot.domain.refs import random_ref
from storage.repo import bulk
from storage.repo.cases import message_id_key
from storage.repo.outbox import address_key
from tests.fixtures.mail_corpus import b64, ew, message

SEED = 20261202
DOMAIN = "desk.example.test"
STAFF_CHAT = "-1001"
KINDS = (("投诉", "complaint"), ("申诉", "appeal"), ("争议", "dispute"))
SEED_MAILBOX = "seed"


@dataclass
class SeededCase:
    id: int
    ref: str
    email: str
    first_mid: str  # the complainant's letter that opened it
    ack_mid: str  # our acknowledgement


@dataclass
class Seeded:
    cases: list[SeededCase]
    recent: dict[str, int]  # sender → automatic answers in the last hour
    alerted: set[str]  # senders with a staff alert a few minutes ago


class _Obj:
    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


async def seed(
    engine: AsyncEngine, key: bytes, now: datetime, n_cases: int, n_outbox: int,
    recent: dict[str, int], alerted: Sequence[str],
) -> Seeded:  # fmt: skip
    rng = random.Random(SEED)
    refs: set[str] = set()
    while len(refs) < n_cases:
        refs.add(random_ref("TS", 2026))
    kid = key_id(key)
    cases, ids, events, heads, deadlines, letters = [], [], [], [], [], []
    seeded = []
    for n, ref in enumerate(sorted(refs, key=lambda r: rng.random())):
        cid = n + 1
        email = f"old{n}@163.com"
        at = now - timedelta(days=2 + n % 360, seconds=n)
        first, ack = f"<old{n}.{SEED}@163.com>", f"<{ref.lower()}.{n:08x}@{DOMAIN}>"
        row = {
            "id": cid, "ref": ref, "kind": KINDS[n % 3][1], "channel": "email",
            "status": "received" if n % 4 else "accepted", "contact_id": None,
            "complainant_name": f"旧写信人{n}", "complainant_email": email,
            "complainant_chat_id": None, "locale": "zh_CN", "subject": f"关于第{n}号的投诉",
            "description": f"第{n}封旧信。", "concerns": None, "concerns_certificate_no": None,
            "decided_on": None, "decided_by": None, "audit_team": None, "assignee": None,
            "out_of_time": False, "incomplete": False, "thread_message_ids": [first, ack],
            "created_at": at, "closed_at": None,
        }  # fmt: skip
        cases.append(row)
        ids += [{"message_id_key": message_id_key(m), "case_id": cid} for m in (first, ack)]
        fields = case_fields(_Obj(**row))
        digest, prev = case_digest(fields), None
        for seq, (actor, kind, data) in enumerate(
            [(f"complainant:email:{email}", "received", {"kind": row["kind"]}),
             ("system", "acknowledged", {"channels": ["email"], "message_id": ack})], start=1
        ):  # fmt: skip
            ev = _Obj(case_id=cid, seq=seq, at=at, actor=actor, type=kind,
                      data=json_ready(data), prev_hash=prev, case_digest=digest)  # fmt: skip
            h = event_hash(ev)  # type: ignore[arg-type]
            events.append({**ev.__dict__, "hash": h, "mac": event_mac(key, h)})
            prev = h
        head = _Obj(case_id=cid, seq=2, head_hash=prev, fields=field_seals(key, fields),
                    note=None, key_id=kid)  # fmt: skip
        heads.append({**head.__dict__, "mac": head_mac(key, head)})  # type: ignore[arg-type]
        deadlines.append({
            "case_id": cid, "certificate_id": None, "rule_id": "ggbz.case.decide",
            "clause": "§8", "unit": "calendar_days", "count": 60, "start_on": at.date(),
            "due_on": at.date() + timedelta(days=60), "provisional": False, "created_at": at,
            "closed_at": None, "closed_by": None,
        })  # fmt: skip
        letters.append({
            "mailbox": SEED_MAILBOX, "uidvalidity": 1, "uid": cid, "message_id": first,
            "message_key": f"seed:{cid}", "raw": b"From: x\r\n\r\nold", "received_at": at,
            "internal_date": at, "status": "processed", "case_id": cid,
            "kind": row["kind"], "problems": None, "from_addr": email, "subject": row["subject"],
        })  # fmt: skip
        seeded.append(SeededCase(cid, ref, email, first, ack))
    outbox = []
    for n in range(n_outbox):
        c = seeded[n % n_cases]
        at = cases[n % n_cases]["created_at"] + timedelta(seconds=1 + n // n_cases)
        if n % 2 == 0:  # the acknowledgement
            outbox.append(_sent(f"case:{c.ref}:ack:email:{n}", "email", c.email, at, "main",
                                c.id, c.ack_mid, address_key(c.email), None))  # fmt: skip
        else:  # the staff alert
            group = f"about:{c.email}:telegram:{STAFF_CHAT}"
            outbox.append(_sent(f"case:{c.ref}:staff:new:{n}", "telegram", STAFF_CHAT, at,
                                "staff", c.id, None, None, group))  # fmt: skip
    for address, count in recent.items():
        for i in range(count):
            at = now - timedelta(minutes=50 - i)
            outbox.append(_sent(f"recent:{address}:{i}", "email", address, at, "main", None,
                                None, address_key(address), None))  # fmt: skip
    for address in alerted:
        at = now - timedelta(minutes=4)
        group = f"about:{address}:telegram:{STAFF_CHAT}"
        outbox.append(_sent(f"recent:{address}:staff", "telegram", STAFF_CHAT, at, "staff",
                            None, None, None, group))  # fmt: skip
    async with engine.begin() as conn:
        for table, rows in ((bulk.CASES, cases), (bulk.MESSAGE_IDS, ids), (bulk.EVENTS, events),
                            (bulk.HEADS, heads), (bulk.DEADLINES, deadlines),
                            (bulk.INBOUND, letters), (bulk.OUTBOX, outbox)):  # fmt: skip
            for start in range(0, len(rows), 5000):
                await conn.execute(sa.insert(table), rows[start : start + 5000])
        if engine.dialect.name == "postgresql":  # the ids given: move the sequences past them
            for table in ("case_file", "inbound_email", "outbox_message"):
                await conn.execute(sa.text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"))  # fmt: skip
            await conn.execute(sa.text("ANALYZE"))
    return Seeded(seeded, dict(recent), set(alerted))


def _sent(key: str, channel: str, recipient: str, at: datetime, lane: str, case_id: int | None,
          mid: str | None, auto: str | None, group: str | None) -> dict[str, Any]:  # fmt: skip
    return {
        "idempotency_key": key, "channel": channel, "recipient": recipient,
        "payload": {"text": "…"}, "lane": lane, "coalesce_key": group, "coalesced": 0,
        "status": "sent", "attempts": 1, "next_attempt_at": at, "last_error": None,
        "claimed_by": None, "claimed_at": None, "case_id": case_id, "email_message_id": mid,
        "auto_reply_key": auto, "created_at": at, "sent_at": at,
    }  # fmt: skip


@dataclass
class Letter:
    raw: bytes
    sender: str
    message_id: str
    opens: bool  # a new case (else a reply)
    joins_case: int | None = None  # the existing case it answers
    joins_letter: str | None = None  # the Message-ID of the run's letter it answers


@dataclass
class Corpus:
    letters: list[Letter] = field(default_factory=list)


def senders_plan(n: int) -> tuple[dict[str, int], list[str]]:
    """The senders of the run that had automatic answers lately, and those alerted lately."""
    recent = {f"busy{i}@sina.com": 2 + i % 4 for i in range(max(2, n // 100))}
    return recent, list(recent)[::2]


def letters(n: int, seeded: Seeded, start: datetime) -> Corpus:
    rng = random.Random(SEED + 1)
    corpus = Corpus()
    opened: list[Letter] = []  # the run's new cases from single senders, to answer later
    repeaters = [f"repeat{i}@126.com" for i in range(max(1, n * 12 // 100 // 7))]
    busy = list(seeded.recent)
    for i in range(n):
        roll = rng.random()
        mid = f"<run{i}.{SEED}@qq.com>"
        if roll < 0.15 and seeded.cases:  # a reply to a case of the database
            case = seeded.cases[rng.randrange(len(seeded.cases))]
            subject = f"Re: [{case.ref}] 补充材料" if rng.random() < 0.5 else "Re: 补充材料"
            refs = f"{case.first_mid} {case.ack_mid}"
            corpus.letters.append(Letter(
                _raw(i, case.email, subject, mid, start, in_reply_to=case.ack_mid, refs=refs),
                case.email, mid, False, joins_case=case.id))  # fmt: skip
            continue
        if roll < 0.27 and opened:  # a reply to a letter of this run (often a recent one)
            first = opened[-1 - min(len(opened) - 1, int(rng.expovariate(0.1)))]
            corpus.letters.append(Letter(
                _raw(i, first.sender, "回复：补充说明", mid, start, in_reply_to=first.message_id,
                     refs=first.message_id), first.sender, mid, False,
                joins_letter=first.message_id))  # fmt: skip
            continue
        if roll < 0.39:
            sender = repeaters[rng.randrange(len(repeaters))]
        elif roll < 0.45:
            sender = busy[rng.randrange(len(busy))]
        else:
            sender = f"writer{i}@qq.com"
        kind = KINDS[i % 3][0]
        letter = Letter(_raw(i, sender, f"关于第{i}号审核的{kind}", mid, start), sender, mid, True)
        corpus.letters.append(letter)
        if sender.startswith("writer"):
            opened.append(letter)
    return corpus


def _raw(i: int, sender: str, subject: str, mid: str, start: datetime, *,
         in_reply_to: str | None = None, refs: str | None = None) -> bytes:  # fmt: skip
    headers = [
        ("From", f"{ew(f'写信人{i}', 'gbk')} <{sender}>"),
        ("To", f"certdesk@{DOMAIN}"),
        ("Subject", ew(subject, "gbk")),
        ("Date", format_datetime(start + timedelta(seconds=i))),
        ("MIME-Version", "1.0"),
        ("Message-ID", mid),
    ]
    if in_reply_to:
        headers.append(("In-Reply-To", in_reply_to))
    if refs:
        headers.append(("References", refs))
    headers += [("Content-Type", "text/plain; charset=gbk"),
                ("Content-Transfer-Encoding", "base64")]  # fmt: skip
    body = f"第{i}封来信：对审核结论提出意见。请受理。"
    return message(headers, b64(body.encode("gbk")))


def expected(corpus: Corpus, seeded: Seeded, limit: int) -> dict[str, int]:
    """What the run must leave, counted from the corpus: the auto-reply limit per sender in
    the letters' order, the staff alerts about one sender coalesced per 10 minutes."""
    answered = dict(seeded.recent)
    about: dict[str, int] = {}
    out = {"cases": 0, "replies": 0, "case_acks": 0, "reply_acks": 0, "limit_notes": 0}
    for letter in corpus.letters:
        s = letter.sender
        allowed = answered.get(s, 0) < limit
        if allowed:
            answered[s] = answered.get(s, 0) + 1
        if letter.opens:
            out["cases"] += 1
            out["case_acks"] += allowed
            about[s] = about.get(s, 0) + 1
        else:
            out["replies"] += 1
            out["reply_acks"] += allowed
        if not allowed:
            out["limit_notes"] += 1
            about[s] = about.get(s, 0) + 1
    # Per sender: the first alert at once (unless one went minutes ago), the rest in a summary.
    rows = coalesced = 0
    for s, count in about.items():
        if s in seeded.alerted:
            rows, coalesced = rows + 1, coalesced + count
        else:
            rows, coalesced = rows + 1 + (count > 1), coalesced + count - 1
    out["staff_rows"] = rows + out["replies"]  # each reply's alert stands alone
    out["coalesced"] = coalesced
    return out


def today(now: datetime) -> date:
    return now.astimezone(UTC).date()

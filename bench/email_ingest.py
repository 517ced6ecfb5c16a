"""How fast the e-mail intake takes letters in, next to the bare cost of reading them.

Starts its own private Dovecot (the test fixture's configuration), fills a fresh database with a
desk's history (100,000 cases and 200,000 outbox rows by default, bench/email_corpus.py: fast
multi-row inserts, realistic rows — Message-IDs, signed histories, auto-reply keys, coalescing
groups), appends N letters (2,000 by default: new cases, repeat senders over the auto-reply
limit, replies to cases of the database and to letters of the same run) in one MULTIAPPEND,
then measures
  1. bare: imapclient FETCH BODY.PEEK[] in chunks + parse_message of every letter;
  2. full: `handlers.email.intake.run_once` — store raw, commit, act (cases opened, replies
     joined, deadlines, history, acknowledgements and staff alerts queued), commit, MOVE;
  3. bare again, on the processed folder, so both figures see the same machine load;
and prints messages/s for both and their ratio (full ÷ mean bare; the figure, last line JSON).

The work is checked in the database against what the corpus asks for, not the intake's own
count: every letter processed, the cases opened, each reply on the right case, the
acknowledgements (the per-sender limit applied in order), the staff alerts (coalesced per
sender), and every touched case's hash chain verified (`cases verify`). A wrong figure fails the
run (exit status 1, "ok": false, ratio 0).

    .venv/bin/python bench/email_ingest.py [--messages 2000] [--cases 100000] [--outbox 200000]
        [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]

Without --database-url a fresh SQLite file is used; with a PostgreSQL URL a throwaway database
is created beside the one named, and dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import email_corpus  # beside this file
from email_corpus import Corpus

from bot.config import load_settings
from bot.main.desk import open_desk, ready_for_work
from bot.services.cases import verify
from handlers.email import intake
from handlers.email.parse import parse_message
from storage.db import make_engine, upgrade_async
from storage.history_key import load_history_key
from storage.unit_of_work import UnitOfWork
from tests.fixtures.mail import _CONFIG, HOST, Dovecot, Mailbox, _mail_owner, free_port


def start_dovecot(root: Path) -> Dovecot:
    """The same private Dovecot the `dovecot` fixture runs (its config template and class)."""
    uid, gid, internal_users = _mail_owner()
    root.mkdir(mode=0o755)
    root.chmod(0o755)  # the mail user must reach its Maildir through here
    (root / "mail").mkdir()
    (root / "passwd.d").mkdir(mode=0o755)
    if os.geteuid() == 0:
        os.chown(root / "mail", uid, gid)
    server = Dovecot(host=HOST, port=free_port(), root=root, uid=uid, gid=gid)
    (root / "dovecot.conf").write_text(
        _CONFIG.format(
            root=root, host=HOST, port=server.port, uid=uid, gid=gid, internal_users=internal_users
        )
    )
    server.start()
    return server


PROFILE = ""  # --profile: where the full pass's cProfile stats go


def fill(box: Mailbox, letters: list[bytes]) -> None:
    with box.client() as client:
        client.multiappend("INBOX", letters)


def bare(box: Mailbox, chunk: int, folder: str = "INBOX") -> tuple[int, float]:
    started = time.perf_counter()
    n = 0
    with box.client() as client:
        client.select_folder(folder, readonly=True)
        uids = sorted(client.search(["ALL"]))
        for i in range(0, len(uids), chunk):
            for item in client.fetch(uids[i : i + chunk], ["BODY.PEEK[]"]).values():
                parse_message(item[b"BODY[]"])
                n += 1
    return n, time.perf_counter() - started


async def checked(desk: Any, since: datetime, corpus: Corpus) -> dict[str, Any]:
    """What the database holds after the run: the figures that say the work was done."""
    seed_box = email_corpus.SEED_MAILBOX
    run = f"mailbox <> '{seed_box}'"
    queries = {
        "processed": f"SELECT count(*) FROM inbound_email WHERE {run} AND status = 'processed'",
        "not_processed": f"SELECT count(*) FROM inbound_email WHERE {run} "
        "AND status <> 'processed'",
        "cases": "SELECT count(*) FROM case_file WHERE created_at >= :since",
        "replies": f"SELECT count(*) FROM inbound_email WHERE {run} AND kind = 'reply'",
        "case_acks": "SELECT count(*) FROM outbox_message WHERE created_at >= :since "
        "AND auto_reply_key IS NOT NULL AND idempotency_key LIKE :case_ack",
        "reply_acks": "SELECT count(*) FROM outbox_message WHERE created_at >= :since "
        "AND auto_reply_key IS NOT NULL AND idempotency_key LIKE :reply_ack",
        "staff_rows": "SELECT count(*) FROM outbox_message WHERE created_at >= :since "
        "AND lane = 'staff'",
        "coalesced": "SELECT coalesce(sum(coalesced), 0) FROM outbox_message "
        "WHERE created_at >= :since AND lane = 'staff'",
        "outbox_rows": "SELECT count(*) FROM outbox_message",
        "all_cases": "SELECT count(*) FROM case_file",
        "deadlines": "SELECT count(*) FROM deadline d JOIN case_file c ON c.id = d.case_id "
        "WHERE c.created_at >= :since",
    }
    params = {"since": since, "case_ack": "case:%:ack:email", "reply_ack": "inbound:%:ack"}
    async with desk.sessions() as session:
        conn = await session.connection()
        found: dict[str, Any] = {
            k: int((await conn.execute(sa.text(q), params)).scalar_one())
            for k, q in queries.items()
        }
        rows = await conn.execute(
            sa.text(f"SELECT message_id, case_id FROM inbound_email WHERE {run}")
        )
        case_of = {mid: cid for mid, cid in rows.all()}
        touched = set(case_of.values()) - {None}
        refs = await conn.execute(sa.text("SELECT id, ref FROM case_file WHERE id IN (%s)" % (
            ",".join(str(int(c)) for c in touched) or "0")))  # fmt: skip
        ref_of = dict(refs.all())
    wrong_case = 0
    for letter in corpus.letters:
        want = letter.joins_case or case_of.get(letter.joins_letter or "")
        if not letter.opens and (want is None or case_of.get(letter.message_id) != want):
            wrong_case += 1
    found["replies_on_wrong_case"] = wrong_case
    problems = 0
    async with UnitOfWork(desk.sessions) as uow:
        for cid in sorted(touched):
            problems += len(await verify(uow, ref_of[cid]))
    found["chain_problems"] = problems
    found["verified_cases"] = len(touched)
    return found


async def full(
    box: Mailbox, database_url: str, data_dir: Path, n_cases: int, n_outbox: int, n: int
) -> tuple[int, float, dict[str, Any], dict[str, int], float]:
    await upgrade_async(database_url)
    settings = load_settings(
        database_url=database_url,
        data_dir=data_dir,
        imap_host=box.host,
        imap_port=box.port,
        imap_ssl=False,
        imap_user=box.user,
        imap_password=box.password,
        staff_chat_id=int(email_corpus.STAFF_CHAT),
        mail_domain=email_corpus.DOMAIN,
    )
    key = load_history_key(settings)
    now = datetime.now(UTC)
    recent, alerted = email_corpus.senders_plan(n)
    engine = make_engine(database_url)
    started = time.perf_counter()
    seeded = await email_corpus.seed(engine, key, now, n_cases, n_outbox, recent, alerted)
    await settle(engine)
    await engine.dispose()
    seed_time = time.perf_counter() - started
    corpus = email_corpus.letters(n, seeded, now)
    fill(box, [letter.raw for letter in corpus.letters])
    want = email_corpus.expected(corpus, seeded, settings.auto_replies_per_sender_per_hour)
    desk = await open_desk(settings)
    try:
        # As the service and `certdesk email fetch` (without --once) start: the worker process
        # that parses the letters, the calendar, the mappers, start-up frozen out of the GC.
        await ready_for_work(desk)
        since = desk.clock.now()
        started, cpu = time.perf_counter(), time.process_time()
        profile = PROFILE
        if profile:
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
        stats = await intake.run_once(desk)
        if profile:
            prof.disable()
            prof.dump_stats(profile)
        elapsed = time.perf_counter() - started
        print(f"full intake: {time.process_time() - cpu:.2f} s of CPU (this process, all threads)")
        found = await checked(desk, since, corpus)
    finally:
        await desk.close()
    return stats.handled, elapsed, found, want, seed_time


async def settle(engine: Any) -> None:
    """The seeding's writes on disk before the measured pass: else the kernel's write-back of
    hundreds of MB (and PostgreSQL's next checkpoint) land in the middle of it."""
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            await conn.execute(sa.text("CHECKPOINT"))
    else:
        async with engine.connect() as conn:
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    os.sync()


@contextlib.contextmanager
def throwaway_database(url: str) -> Iterator[str]:
    """A fresh PostgreSQL database beside the one `url` names, dropped afterwards."""
    if not url.startswith("postgresql"):
        yield url
        return
    name = f"certdesk_bench_{secrets.token_hex(4)}"
    admin = make_url(url).set(drivername="postgresql+asyncpg")

    async def run(sql: str) -> None:
        engine = make_engine(admin, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(sa.text(sql))
        await engine.dispose()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--outbox", type=int, default=200_000)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--profile", default="", help="cProfile stats of the full pass to FILE")
    args = parser.parse_args()
    global PROFILE
    PROFILE = args.profile

    root = Path(tempfile.mkdtemp(prefix="certdesk-bench-"))
    root.chmod(0o755)
    server = start_dovecot(root / "dovecot")
    n = args.messages
    try:
        user, password = f"bench{secrets.token_hex(3)}@example.test", secrets.token_hex(8)
        server.add_user(user, password)
        box = Mailbox(host=server.host, port=server.port, user=user, password=password)
        url = args.database_url or f"sqlite+aiosqlite:///{root / 'bench.db'}"
        with throwaway_database(url) as db_url:
            n_bare, t_bare, n_full, t_full, found, want, seed_time, t_after = _measure(
                box, db_url, root, args.cases, args.outbox, n
            )
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)

    backend = url.split("+", 1)[0]
    wrong = {k: (found[k], v) for k, v in want.items() if k in found and found[k] != v}
    for key in ("not_processed", "replies_on_wrong_case", "chain_problems"):
        if found[key]:
            wrong[key] = (found[key], 0)
    if found["processed"] != n:
        wrong["processed"] = (found["processed"], n)
    if found["all_cases"] != args.cases + want["cases"]:
        wrong["all_cases"] = (found["all_cases"], args.cases + want["cases"])
    bare_rate = (n_bare / t_bare + n / t_after) / 2
    print(f"database before the run: {args.cases:,} cases, {args.outbox:,} outbox rows "
          f"(seeded in {seed_time:.1f} s); letters: {n}")  # fmt: skip
    print(f"expected from the corpus: {want}")
    print(f"bare FETCH BODY.PEEK[] + parse : {n_bare / t_bare:8,.0f} messages/s before, "
          f"{n / t_after:,.0f} after ({t_bare:.2f} s, {t_after:.2f} s)")  # fmt: skip
    print(
        f"full intake ({backend:10})     : {n / t_full:8,.0f} messages/s ({t_full:.2f} s; "
        f"checked in the database: {found})"
    )
    for key, (got, wanted) in wrong.items():
        print(f"WRONG WORK: {key} = {got}, expected {wanted}")
    ratio = (n / t_full) / bare_rate
    print(f"ratio full/bare: {ratio:.3f} (target ≥ 0.25); load average {os.getloadavg()}")
    ok = not wrong and n_bare == n and n_full == n
    print(json.dumps({"bench": "email_ingest", "backend": backend, "letters": n,
                      "ratio": round(ratio if ok else 0.0, 3), "measured_ratio": round(ratio, 3),
                      "full_per_s": round(n / t_full, 1), "bare_per_s": round(bare_rate, 1),
                      "cases_before": args.cases, "outbox_before": args.outbox,
                      "load": round(os.getloadavg()[0], 2), "ok": ok, **found}))  # fmt: skip
    return 0 if ok else 1


def _measure(
    box: Mailbox, url: str, root: Path, n_cases: int, n_outbox: int, n: int
) -> tuple[int, float, int, float, dict[str, Any], dict[str, int], float, float]:
    # The letters go in after the seeding (inside `full`); bare reads them first, then the
    # intake takes them, then bare reads them again in the processed folder.
    result: dict[str, Any] = {}

    async def go() -> None:
        result["full"] = await full_after_bare(box, url, root / "data", n_cases, n_outbox, n)

    asyncio.run(go())
    return result["full"]


async def full_after_bare(
    box: Mailbox, url: str, data_dir: Path, n_cases: int, n_outbox: int, n: int
) -> tuple[int, float, int, float, dict[str, Any], dict[str, int], float, float]:
    global fill
    measured: dict[str, tuple[int, float]] = {}
    real_fill = fill

    def fill_then_bare(b: Mailbox, raws: list[bytes]) -> None:
        real_fill(b, raws)
        measured["bare"] = bare(b, intake.FETCH_CHUNK)

    fill = fill_then_bare
    try:
        handled, t_full, found, want, seed_time = await full(
            box, url, data_dir, n_cases, n_outbox, n
        )
    finally:
        fill = real_fill
    _, t_after = bare(box, intake.FETCH_CHUNK, folder="Processed")
    n_bare, t_bare = measured["bare"]
    return n_bare, t_bare, handled, t_full, found, want, seed_time, t_after


if __name__ == "__main__":
    raise SystemExit(main())

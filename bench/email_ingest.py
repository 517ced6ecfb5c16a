"""How fast the e-mail intake takes letters in, next to the bare cost of reading them.

Starts its own private Dovecot (the test fixture's configuration), appends N letters (2,000 by
default) in one MULTIAPPEND, then measures
  1. bare: imapclient FETCH BODY.PEEK[] in chunks + parse_message of every letter;
  2. full: `handlers.email.intake.run_once` — store raw, commit, open the case (deadlines,
     history, acknowledgement and staff alert queued), commit, flag and MOVE;
and prints messages/s for both and their ratio (the figure, full ÷ bare, last line as JSON).

The work is checked, not the intake's own count: every letter processed (none quarantined or
left stored), one case per letter, one acknowledgement queued to each sender and a staff alert
per case in the outbox. A wrong count fails the run (exit status 1, "ok": false).

    .venv/bin/python bench/email_ingest.py [--messages 2000] [--database-url URL]

Without --database-url a fresh SQLite file is used; with a PostgreSQL URL the database must be
empty (it is migrated here).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.config import load_settings
from bot.main.desk import open_desk
from handlers.email import intake
from handlers.email.parse import parse_message
from storage.db import upgrade_async
from tests.fixtures.mail import _CONFIG, HOST, Dovecot, Mailbox, _mail_owner, free_port
from tests.integration.test_email_crash import batch_of


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


def fill(box: Mailbox, letters: list[bytes]) -> None:
    with box.client() as client:
        client.multiappend("INBOX", letters)


def bare(box: Mailbox, chunk: int) -> tuple[int, float]:
    started = time.perf_counter()
    n = 0
    with box.client() as client:
        client.select_folder("INBOX", readonly=True)
        uids = sorted(client.search(["ALL"]))
        for i in range(0, len(uids), chunk):
            for item in client.fetch(uids[i : i + chunk], ["BODY.PEEK[]"]).values():
                parse_message(item[b"BODY[]"])
                n += 1
    return n, time.perf_counter() - started


async def checked(desk: Any) -> dict[str, int]:
    """What the database holds after the run: the figures that say the work was done."""
    queries = {
        "processed": "SELECT count(*) FROM inbound_email WHERE status = 'processed'",
        "not_processed": "SELECT count(*) FROM inbound_email WHERE status <> 'processed'",
        "cases": "SELECT count(*) FROM case_file WHERE channel = 'email'",
        "letters_with_case": "SELECT count(DISTINCT case_id) FROM inbound_email "
        "WHERE status = 'processed' AND case_id IS NOT NULL",
        "acknowledgements": "SELECT count(DISTINCT case_id) FROM outbox_message "
        "WHERE channel = 'email' AND case_id IS NOT NULL",
        "outbox_rows": "SELECT count(*) FROM outbox_message",
    }
    async with desk.sessions() as session:
        conn = await session.connection()
        return {k: int((await conn.execute(sa.text(q))).scalar_one()) for k, q in queries.items()}


async def full(
    box: Mailbox, database_url: str, data_dir: Path
) -> tuple[int, float, dict[str, int]]:
    await upgrade_async(database_url)
    settings = load_settings(
        database_url=database_url,
        data_dir=data_dir,
        imap_host=box.host,
        imap_port=box.port,
        imap_ssl=False,
        imap_user=box.user,
        imap_password=box.password,
        staff_chat_id=-1001,
        mail_domain="desk.example.test",
    )
    desk = await open_desk(settings)
    try:
        started = time.perf_counter()
        stats = await intake.run_once(desk)
        elapsed = time.perf_counter() - started
        found = await checked(desk)
    finally:
        await desk.close()
    return stats.handled, elapsed, found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="certdesk-bench-"))
    root.chmod(0o755)
    server = start_dovecot(root / "dovecot")
    try:
        user, password = f"bench{secrets.token_hex(3)}@example.test", secrets.token_hex(8)
        server.add_user(user, password)
        box = Mailbox(host=server.host, port=server.port, user=user, password=password)
        letters = batch_of(args.messages)[0]
        started = time.perf_counter()
        fill(box, letters)
        append_rate = len(letters) / (time.perf_counter() - started)

        n_bare, t_bare = bare(box, intake.FETCH_CHUNK)
        url = args.database_url or f"sqlite+aiosqlite:///{root / 'bench.db'}"
        n_full, t_full, found = asyncio.run(full(box, url, root / "data"))
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)

    backend = url.split("+", 1)[0]
    n = len(letters)
    # Each letter opens its own case (distinct senders, no references): n cases, n letters
    # processed with their case, an acknowledgement for each case, nothing quarantined.
    expected = {"processed": n, "not_processed": 0, "cases": n, "letters_with_case": n,
                "acknowledgements": n}  # fmt: skip
    wrong = {k: (found[k], v) for k, v in expected.items() if found[k] != v}
    if found["outbox_rows"] < 2 * n:  # an acknowledgement and a staff alert per case at least
        wrong["outbox_rows"] = (found["outbox_rows"], 2 * n)
    print(f"letters: {n} (MULTIAPPEND {append_rate:,.0f}/s)")
    print(f"bare FETCH BODY.PEEK[] + parse : {n_bare / t_bare:8,.0f} messages/s ({t_bare:.2f} s)")
    print(
        f"full intake ({backend:10})     : {n / t_full:8,.0f} messages/s ({t_full:.2f} s; "
        f"checked in the database: {found})"
    )
    for key, (got, want) in wrong.items():
        print(f"WRONG WORK: {key} = {got}, expected {want}")
    ratio = (n / t_full) / (n_bare / t_bare)
    print(f"ratio full/bare: {ratio:.3f} (target ≥ 0.25)")
    ok = not wrong and n_bare == n and n_full == n
    print(json.dumps({"bench": "email_ingest", "backend": backend, "letters": n,
                      "ratio": round(ratio if ok else 0.0, 3), "measured_ratio": round(ratio, 3),
                      "full_per_s": round(n / t_full, 1), "bare_per_s": round(n_bare / t_bare, 1),
                      "ok": ok, **found}))  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""The use case "a letter was received": store it, then act on it (open a case, join a reply
to its case, pass an enquiry to staff, record a bounce, quarantine), and tell staff of the
mailbox's health. Every function takes the caller's unit of work and opens no session.

- store.py: raw letters stored before anything is done with them; ids of what is stored;
- acting.py: acting on one stored letter, locked, in a savepoint;
- batch.py: acting on a chunk of letters at once, each alone when the batch fails;
- answers.py: what a letter becomes (case, reply, enquiry, bounce);
- staff.py: what staff are told (quarantine, answer limits, mailbox down and up);
- log.py: every letter the intake has seen and what became of it (`certdesk email log`).
- evidence.py: a letter tagged with a finding ([FND-n]) attaches its files to it.
"""

from bot.services.inbound_mail.acting import TRANSIENT, Done, Outcome, Parse, act
from bot.services.inbound_mail.batch import ParseMany, act_many
from bot.services.inbound_mail.log import LogEntry, letter_log
from bot.services.inbound_mail.staff import intake_failing, mailbox_down, mailbox_up
from bot.services.inbound_mail.store import RawLetter, Stored, known, pending, store
from storage.repo.inbound_email import db_reason

__all__ = [
    "TRANSIENT",
    "Done",
    "LogEntry",
    "Outcome",
    "Parse",
    "ParseMany",
    "RawLetter",
    "Stored",
    "act",
    "act_many",
    "db_reason",
    "intake_failing",
    "known",
    "letter_log",
    "mailbox_down",
    "mailbox_up",
    "pending",
    "store",
]

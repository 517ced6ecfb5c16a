"""What a handler knows about the update it handles: the desk, the update's unit of work, the
contact and its language; the handler groups (`Group`) and the main-menu callback data."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, TypeVar

from telegram import Update
from telegram.ext import (
    ApplicationHandlerStop,
    ContextTypes,
)

from bot.desk import Desk
from storage.models import Contact
from storage.unit_of_work import AlreadyHandled, UnitOfWork, current

Context = ContextTypes.DEFAULT_TYPE
Callback = Callable[[Update, Context], Awaitable[Any]]
F = TypeVar("F", bound=Callback)


class Group(IntEnum):
    """The handler groups, in the order an update visits them until a handler stops it.

    One flow (conversation) per group, so a flow's handlers never shadow another's; the order of
    the flows among themselves does not matter (FLOW_EXIT ends a waiting flow whatever its group).
    """

    GUARD = -2  # redelivered updates, group chats, floods, edits, the contact (guard.py)
    FLOW_EXIT = -1  # something else starts: every waiting flow of the chat ends (flows.py)
    STAFF = 0  # staff commands and buttons, before any public flow
    STAFF_REPLY = 10  # the staff answer prompt
    ELIGIBILITY = 11
    QUOTE = 12
    DOCUMENTS = 13
    APPLICATION = 14  # /status and the menu's application button (no flow)
    CERTIFICATE = 15
    CASES = 16  # filing an appeal, complaint or dispute
    CASES_FOLLOW_UP = 17  # adding information or an identity to one's own case
    MY_CASES = 18  # /mycases and its buttons (no flow)
    CHANGES = 19
    LINK = 20  # /link CODE (no flow): a contact links to their organisation
    FINDINGS = 21  # corrective actions: evidence per finding (findings.py)
    GLOBAL = 1000  # /start /menu /help /cancel /language, the main menu and the catch-all


# Main-menu callback data; other modules register handlers for theirs.
MENU_PREFIX = "menu:"
MENU_ELIGIBILITY = "menu:eligibility"
MENU_QUOTE = "menu:quote"
MENU_DOCUMENTS = "menu:documents"
MENU_APPLICATION = "menu:application"
MENU_CERTIFICATE = "menu:certificate"
MENU_CASES = "menu:cases"
MENU_CHANGES = "menu:changes"
MENU_FINDINGS = "menu:findings"
MENU_HELP = "menu:help"
MENU_MAIN = "menu:main"  # "back to the main menu" buttons
MENU_ITEMS: tuple[tuple[str, str], ...] = (
    (MENU_ELIGIBILITY, "menu.btn_eligibility"),
    (MENU_QUOTE, "menu.btn_quote"),
    (MENU_DOCUMENTS, "menu.btn_documents"),
    (MENU_APPLICATION, "menu.btn_application"),
    (MENU_CERTIFICATE, "menu.btn_certificate"),
    (MENU_CASES, "menu.btn_cases"),
    (MENU_CHANGES, "menu.btn_changes"),
    (MENU_FINDINGS, "findings.btn_menu"),
    (MENU_HELP, "menu.btn_help"),
)
LANG_PREFIX = "lang:"

# Commands shown in Telegram's menu (setMyCommands), with their catalog descriptions.
COMMANDS: tuple[tuple[str, str], ...] = (
    ("start", "menu.cmd_start"),
    ("menu", "menu.cmd_menu"),
    ("eligibility", "menu.cmd_eligibility"),
    ("quote", "menu.cmd_quote"),
    ("documents", "menu.cmd_documents"),
    ("status", "menu.cmd_status"),
    ("certificate", "menu.cmd_certificate"),
    ("change", "menu.cmd_change"),
    ("findings", "findings.cmd"),
    ("case", "menu.cmd_case"),
    ("mycases", "menu.cmd_mycases"),
    ("language", "menu.cmd_language"),
    ("help", "menu.cmd_help"),
    ("cancel", "menu.cmd_cancel"),
)

_CONTACT = "contact"  # user_data key: the contact, loaded by the guard (a read cache)


@dataclass(frozen=True, slots=True)
class CachedContact:
    """What user_data keeps of a contact: its columns, not the ORM object (an instance with its
    SQLAlchemy state and a session's identity-map entry is ~10 KB a user, never released)."""

    id: int
    organisation_id: int | None
    telegram_user_id: int | None
    telegram_chat_id: int | None
    email: str | None
    name: str | None
    locale: str

    def row(self) -> Contact:
        """A detached Contact with these values, for a service that takes one (never added)."""
        return Contact(
            id=self.id,
            organisation_id=self.organisation_id,
            telegram_user_id=self.telegram_user_id,
            telegram_chat_id=self.telegram_chat_id,
            email=self.email,
            name=self.name,
            locale=self.locale,
        )


def remember_contact(context: Context, contact: Contact) -> None:
    """Keep the contact (as fresh from the database) for this user's next updates."""
    if context.user_data is not None and contact.id is not None:
        context.user_data[_CONTACT] = CachedContact(
            contact.id,
            contact.organisation_id,
            contact.telegram_user_id,
            contact.telegram_chat_id,
            contact.email,
            contact.name,
            contact.locale,
        )


def desk_of(context: Context) -> Desk:
    return context.bot_data["desk"]


def uow_of(context: Context) -> UnitOfWork:
    """The unit of work of the update being handled (bot.main.app opens one per update)."""
    uow = current()
    if uow is None:
        raise LookupError("no unit of work: not within an update")
    return uow


async def commit_before_reply() -> None:
    """Make what the update did durable before the user hears of it; if another instance
    handled this update meanwhile, say nothing (ApplicationHandlerStop)."""
    uow = current()
    if uow is None:
        return
    try:
        await uow.commit()
    except AlreadyHandled:
        raise ApplicationHandlerStop from None


def cached_contact(context: Context) -> CachedContact:
    """The contact the guard loaded for this update (private chats only), as kept in user_data:
    its columns, no ORM object made (what a handler that needs an id or the organisation reads)."""
    contact = context.user_data.get(_CONTACT) if context.user_data is not None else None
    if contact is None:
        raise LookupError("no contact for this update (not a private chat?)")
    return contact  # type: ignore[no-any-return]


def contact_of(context: Context) -> Contact:
    """The contact the guard loaded for this update (private chats only), detached."""
    contact = context.user_data.get(_CONTACT) if context.user_data is not None else None
    if contact is None:
        raise LookupError("no contact for this update (not a private chat?)")
    return contact.row()  # type: ignore[no-any-return]


def locale_of(context: Context) -> str:
    if context.user_data is not None and (c := context.user_data.get(_CONTACT)) is not None:
        return c.locale
    return desk_of(context).settings.default_locale

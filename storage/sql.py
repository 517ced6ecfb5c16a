"""Small typed bridges between SQLModel and SQLAlchemy Core, for the repositories."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession


def table_of(model: type[SQLModel]) -> sa.Table:
    """A table model's Core table: `Model.__table__`, which SQLModel does not declare to mypy."""
    table = sa.inspect(model).local_table
    if not isinstance(table, sa.Table):
        raise TypeError(f"{model.__name__} is not a table model")
    return table


def dialect_name(session: AsyncSession) -> str:
    """The session's database dialect ("postgresql", "sqlite"): picks dialect-specific SQL."""
    bind = session.bind
    if bind is None:
        raise RuntimeError("the session is not bound to an engine")
    return bind.dialect.name


def unsized(type_: Any) -> Any:
    """A string type without its length: PostgreSQL's explicit cast to `varchar(n)[]` cuts a
    longer value silently, where the column itself would refuse it."""
    if isinstance(type_, sa.String) and type_.length is not None:
        return sa.Text() if isinstance(type_, sa.Text) else sa.String()
    return type_


def among(session: AsyncSession, column: Any, values: Iterable[Any]) -> sa.ColumnElement[bool]:
    """`column IN values`. On PostgreSQL `column = ANY(array)`: one statement text whatever the
    count, so it is prepared and planned once per connection, not once per length of a list."""
    wanted = list(values)
    if dialect_name(session) == "postgresql":
        array = sa.bindparam(None, wanted, type_=postgresql.ARRAY(unsized(column.type)))
        return column == sa.any_(array)  # type: ignore[no-any-return]
    return column.in_(wanted)  # type: ignore[no-any-return]


class _Stored(Protocol):
    @property
    def id(self) -> int | None: ...


def id_of(row: _Stored) -> int:
    """A stored row's primary key: SQLModel types it `int | None`, None only before the flush."""
    if row.id is None:
        raise ValueError(f"{type(row).__name__} has no id yet: add and flush it first")
    return row.id

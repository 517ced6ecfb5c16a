"""Fixture modules shared by the whole suite: append yours to the list."""

pytest_plugins = [
    "tests.fixtures.db",
    "tests.fixtures.telegram",
    "tests.fixtures.telegram_app",
    "tests.fixtures.mail",
    "tests.fixtures.robots",
]

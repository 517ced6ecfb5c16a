"""Fixture modules shared by the whole suite: append yours to the list."""

from hypothesis import settings

pytest_plugins = [
    "tests.fixtures.db",
    "tests.fixtures.telegram",
    "tests.fixtures.telegram_app",
    "tests.fixtures.mail",
    "tests.fixtures.robots",
]

# Generated inputs are the same on every run: a failure is reproducible, and CI never meets a
# new random case that a developer's run did not.
settings.register_profile("repeatable", derandomize=True)
settings.load_profile("repeatable")

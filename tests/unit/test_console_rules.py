"""The staff directory's pure rules: roles, identities, and slowing password guessing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.domain.cases import impartiality_conflict
from bot.domain.staff import LoginThrottle, Role, identities, may, normalise_email

T0 = datetime(2026, 9, 28, 2, 0, tzinfo=UTC)


def test_roles_are_ranked_and_unknown_roles_cover_nothing() -> None:
    assert may("admin", Role.STAFF) and may("admin", Role.ADMIN) and may("decider", Role.STAFF)
    assert not may("staff", Role.ADMIN) and not may("decider", Role.ADMIN)
    assert not may("root", Role.STAFF) and not may("", Role.STAFF)


def test_sign_in_names_are_addresses_in_lower_case() -> None:
    assert normalise_email("  Wang@Desk.Example.TEST ") == "wang@desk.example.test"
    assert normalise_email("wang") is None and normalise_email("a b@c.d") is None


class _Decided:
    def __init__(self, decided_by: str | None, audit_team: list[str] | None) -> None:
        self.decided_by, self.audit_team = decided_by, audit_team


def test_impartiality_sees_a_member_by_name_address_or_telegram_id() -> None:
    ids = identities("张伟", "zhang@desk.example.test", 902)
    assert ids == ["张伟", "zhang@desk.example.test", "zhang", "902"]
    assert impartiality_conflict(_Decided("张伟", None), ids) == "staff.assign_refused_decider"
    assert impartiality_conflict(_Decided(None, ["@zhang"]), ids) == "staff.assign_refused_auditor"
    assert impartiality_conflict(_Decided("Zhang@desk.example.test", None), ids) is not None
    assert impartiality_conflict(_Decided("王芳", ["901"]), ids) is None


def test_five_wrong_passwords_make_the_address_wait_out_the_window() -> None:
    throttle = LoginThrottle(limit=5, window=timedelta(minutes=15))
    keys = ["email:a@b.cn", "client:10.0.0.1"]
    for minute in range(5):
        assert throttle.wait(keys, T0 + timedelta(minutes=minute)) is None
        throttle.failed(keys, T0 + timedelta(minutes=minute))
    assert throttle.wait(keys, T0 + timedelta(minutes=5)) == timedelta(minutes=10)
    # Another address from the same client waits too; another client for the same address also.
    assert throttle.wait(["email:c@d.cn", "client:10.0.0.1"], T0 + timedelta(minutes=5))
    assert throttle.wait(["email:a@b.cn", "client:10.0.0.2"], T0 + timedelta(minutes=5))
    # The oldest failure leaves the window at 15 minutes: one more try is allowed.
    assert throttle.wait(keys, T0 + timedelta(minutes=15)) is None
    throttle.succeeded("email:a@b.cn")
    assert throttle.wait(["email:a@b.cn", "client:10.0.0.9"], T0 + timedelta(minutes=5)) is None


def test_the_throttle_keeps_a_bounded_number_of_keys() -> None:
    throttle = LoginThrottle(limit=5, max_keys=100)
    for i in range(1000):
        throttle.failed([f"email:{i}@x.cn", "client:1"], T0 + timedelta(seconds=i))
    assert len(throttle._failures) <= 100
    assert throttle.wait(["client:1"], T0 + timedelta(seconds=1000))  # the guesser still waits

"""Certificate CSV parsing (bad rows by line), status as of a date, next surveillance."""

from __future__ import annotations

from datetime import date

from bot.domain.calendar import WorkCalendar
from bot.profiles import load_profile
from bot.services.certificates import effective_status, parse_csv, view
from storage.models import Certificate

GGBZ = load_profile("ggbz")
HEADER = (
    "number,holder,standard,decided_on,expires_on,scope,status,"
    "stage2_end_on,last_surveillance_on,suspended_on,suspension_months\n"
)


def test_good_rows_are_kept_and_bad_rows_reported_by_line() -> None:
    text = (
        "\ufeff" + HEADER
        + "A-1,甲公司,GB/T 39604-2020,2025-03-10,2028-03-09,生产,valid,,,\n"
        + "A-2,,GB/T 39604-2020,2025-03-10,2028-03-09,,,,,\n"
        + "\n"
        + "A-3,乙公司,GB/T 39604-2020,2025-3-10,2028-03-09,,,,,\n"
        + "A-4,丙公司,GB/T 39604-2020,2025-03-10,2028-03-09,,suspended,,,,\n"
        + "A-5,丁公司,GB/T 39604-2020,2025-03-10,2028-03-09,,SUSPENDED,,,2026-07-01,6\n"
        + "A-6,x,y,2025-03-10,2028-03-09,,,,,,,extra\n"
    )  # fmt: skip
    parsed = parse_csv(text, GGBZ)
    numbers = [(line, row["number"]) for line, row in parsed.rows]
    assert numbers == [(2, "A-1"), (5, "A-3"), (7, "A-5")]  # 2025-3-10 is a date as written
    assert parsed.rows[2][1]["status"] == "suspended"
    assert parsed.rows[0][1]["decided_on"] == parsed.rows[1][1]["decided_on"] == date(2025, 3, 10)
    assert [str(e) for e in parsed.errors] == [
        "line 3: holder is empty",
        "line 6: a suspended certificate needs suspended_on and suspension_months",
        "line 8: more cells than columns",
    ]


def test_a_missing_column_is_reported_on_line_one() -> None:
    parsed = parse_csv("number,holder\nA-1,x\n", GGBZ)
    assert parsed.rows == [] and str(parsed.errors[0]).startswith(
        "line 1: missing column(s): standard"
    )


def test_status_as_of_today() -> None:
    assert effective_status("valid", date(2026, 1, 1), date(2026, 1, 1)) == "valid"
    assert effective_status("valid", date(2026, 1, 1), date(2026, 1, 2)) == "expired"
    assert effective_status("withdrawn", date(2030, 1, 1), date(2026, 1, 2)) == "withdrawn"


def test_next_surveillance_follows_the_profile_rules() -> None:
    profile, cal = load_profile("ggbz"), WorkCalendar()
    cert = Certificate(
        id=1, number="A-1", holder="甲", standard="S", status="valid",
        decided_on=date(2025, 3, 10), stage2_end_on=date(2025, 3, 1), expires_on=date(2028, 3, 9),
    )  # fmt: skip
    # surveillance.first: 12 months after the stage-2 end (2026-03-01 is a Sunday → Monday).
    assert view(profile, cert, cal, date(2025, 6, 1)).next_surveillance == date(2026, 3, 2)
    cert.last_surveillance_on = date(2026, 2, 20)
    # surveillance.max_gap: 15 months after the last one.
    assert view(profile, cert, cal, date(2026, 6, 1)).next_surveillance == date(2027, 5, 20)
    cert.status = "withdrawn"
    assert view(profile, cert, cal, date(2026, 6, 1)).next_surveillance is None


def test_suspension_start_and_length_give_its_end_within_one_to_six_months() -> None:
    text = (
        HEADER
        + "S-1,甲,S,2025-03-10,2028-03-09,,suspended,,,2026-08-31,6\n"
        + "S-2,乙,S,2025-03-10,2028-03-09,,suspended,,,2026-08-31,7\n"
        + "S-3,丙,S,2025-03-10,2028-03-09,,suspended,,,2026-08-31,0\n"
        + "S-4,丁,S,2025-03-10,2028-03-09,,suspended,,,2026-08-31,two\n"
    )  # fmt: skip
    parsed = parse_csv(text, GGBZ)
    ((_, row),) = parsed.rows
    assert (row["suspended_on"], row["suspension_months"]) == (date(2026, 8, 31), 6)
    assert row["suspended_until"] == date(2027, 2, 28)
    assert [str(e) for e in parsed.errors] == [
        "line 3: a suspension lasts 1 to 6 months, not 7 (GGBZ §7.3.4)",
        "line 4: a suspension lasts 1 to 6 months, not 0 (GGBZ §7.3.4)",
        "line 5: suspension_months 'two' is not a whole number",
    ]


def test_an_older_files_end_date_gives_the_length_when_whole_months() -> None:
    text = (
        "number,holder,standard,decided_on,expires_on,status,suspended_on,suspended_until\n"
        "O-1,甲,S,2025-03-10,2028-03-09,suspended,2026-08-31,2027-02-28\n"
        "O-2,乙,S,2025-03-10,2028-03-09,suspended,2026-08-31,2027-02-15\n"
        "O-3,丙,S,2025-03-10,2028-03-09,suspended,,2027-02-28\n"
        "O-4,丁,S,2025-03-10,2028-03-09,suspended,2026-08-31,2027-08-31\n"
    )
    parsed = parse_csv(text, GGBZ)
    ((_, row),) = parsed.rows
    assert (row["suspension_months"], row["suspended_until"]) == (6, date(2027, 2, 28))
    assert [str(e) for e in parsed.errors] == [
        "line 3: suspended_until 2027-02-15 is not a whole number of months after suspended_on "
        "2026-08-31: give suspension_months",
        "line 4: a suspended certificate needs suspended_on and suspension_months",
        "line 5: a suspension lasts 1 to 6 months, not 12 (GGBZ §7.3.4)",
    ]

"""`certdesk certificates import --json`, `show [--json]` and `link-code` as staff run them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEADER = (
    "number,holder,standard,decided_on,expires_on,stage2_end_on,status,suspended_on,"
    "suspension_months,uscc,contact_emails\n"
)


def certdesk(
    tmp_path: Path, *args: str, today: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the command; with `today`, under Debian's faketime at 10:00 Shanghai that day."""
    env = {"DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "bot", *args]
    if today is not None:
        cmd = ["faketime", f"{today} 02:00:00", *cmd]  # 02:00 UTC is 10:00 in Shanghai
        env["TZ"] = "UTC"
    return subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tmp_path)


def test_import_json_show_and_link_code(tmp_path: Path) -> None:
    assert certdesk(tmp_path, "db", "upgrade").returncode == 0
    rows = (
        HEADER + "GGBZ-801,武汉示例有限公司,GB/T 39604-2020,2025-12-01,2028-11-30,2025-11-20,,,,"
        "91110000600037341L,zhang@example.test;li@example.test\n"
        + "GGBZ-802,宜昌示例有限公司,GB/T 39604-2020,2025-12-01,2028-12-02,,,,,,\n"
        + "GGBZ-803,荆州示例有限公司,GB/T 39604-2020,2025-12-01,2028-11-30,,suspended,"
        "2026-03-20,7,,\n"
    )
    csv_file = tmp_path / "certs.csv"
    csv_file.write_bytes(rows.encode("gbk"))
    out = certdesk(tmp_path, "certificates", "import", str(csv_file), "--profile", "ggbz", "--json")
    assert out.returncode == 1, out.stderr  # some rows refused
    assert json.loads(out.stdout) == {
        "imported": 1,
        "updated": 0,
        "refused": [
            {"line": 3, "reason": "validity longer than 36 months: expires_on 2028-12-02 is after "
                                  "2028-12-01 (GGBZ §6.2.2)"},
            {"line": 4, "reason": "a suspension lasts 1 to 6 months, not 7 (GGBZ §7.3.4)"},
        ],
    }  # fmt: skip
    again = certdesk(tmp_path, "certificates", "import", str(csv_file), "--json")
    assert json.loads(again.stdout)["updated"] == 1

    shown = certdesk(tmp_path, "certificates", "show", "ggbz-801", "--json", today="2026-11-20")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert {k: data[k] for k in ("number", "holder", "uscc", "status", "valid", "decided_on",
                                 "expires_on")} == {
        "number": "GGBZ-801", "holder": "武汉示例有限公司", "uscc": "91110000600037341L",
        "status": "valid", "valid": True, "decided_on": "2025-12-01", "expires_on": "2028-11-30",
    }  # fmt: skip
    # First surveillance: 12 months after the stage-2 end, Friday 2026-11-20.
    assert data["next_surveillance_due"] == "2026-11-20"
    assert data["surveillance_overdue"] is False  # due today: not yet overdue
    late = certdesk(tmp_path, "certificates", "show", "GGBZ-801", "--json", today="2026-11-23")
    assert json.loads(late.stdout)["surveillance_overdue"] is True
    assert sorted(c["email"] for c in data["contacts"]) == ["li@example.test", "zhang@example.test"]
    by_holder = certdesk(tmp_path, "certificates", "show", "武汉示例", today="2026-11-23")
    assert by_holder.returncode == 0 and "GGBZ-801" in by_holder.stdout
    assert "2026-11-20 (overdue)" in by_holder.stdout

    code = certdesk(tmp_path, "certificates", "link-code", "GGBZ-801")
    assert code.returncode == 0, code.stderr
    assert len(code.stdout.strip()) == 14 and "/link" in code.stderr

    missing = certdesk(tmp_path, "certificates", "show", "NOPE")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1


def test_an_undecodable_file_is_refused_with_the_utf8_hint(tmp_path: Path) -> None:
    assert certdesk(tmp_path, "db", "upgrade").returncode == 0
    bad = tmp_path / "certs.csv"
    bad.write_bytes(HEADER.encode() + b"\x80\xff\x80")
    out = certdesk(tmp_path, "certificates", "import", str(bad), "--json")
    (refused,) = json.loads(out.stdout)["refused"]
    assert refused["line"] == 1 and "CSV UTF-8" in refused["reason"]


def test_excel_unicode_text_with_chinese_headers_imports(tmp_path: Path) -> None:
    assert certdesk(tmp_path, "db", "upgrade").returncode == 0
    rows = (
        "证书编号\t持证组织\t认证标准\t发证日期\t有效期至\t联系邮箱\n"
        "GGBZ-901\t武汉示例有限公司\tGB/T 39604-2020\t2025年12月1日\t2028/11/30\t"
        "a@x.cn；b@y.cn\n"
        "GGBZ-902\t宜昌示例有限公司\tGB/T 39604-2020\t2025-12-01\t2028-12-02\t\n"
    )
    unicode_text = tmp_path / "certs.txt"
    unicode_text.write_bytes(rows.encode("utf-16"))
    out = certdesk(tmp_path, "certificates", "import", str(unicode_text), "--json")
    report = json.loads(out.stdout)
    assert (report["imported"], [r["line"] for r in report["refused"]]) == (1, [3])
    text = certdesk(tmp_path, "certificates", "import", str(unicode_text))
    assert "line 3: validity longer than 36 months" in text.stderr
    assert text.stdout.strip() == "0 imported, 1 updated, 1 bad rows"

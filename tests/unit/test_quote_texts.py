"""What a quote says besides its figures (issue 15 §6): the half-day rounding the clauses
prescribe, the sampled sites' own time, whose table BQC borrows, other fees, no fee schedule."""

from __future__ import annotations

from bot.domain.quote import other_fees, quote
from bot.profiles import load_profile
from handlers.telegram.quote import other_fee_lines, render

GGBZ, BQC, SGC = load_profile("ggbz"), load_profile("bqc"), load_profile("sgc")


def test_rounding_is_said_beside_the_figures() -> None:
    q = quote(GGBZ, 120, 1)  # 7 initial days: 7/3 → 2.5, 14/3 → 4.5 (nearest half days)
    assert (float(q.surveillance_days), float(q.recertification_days)) == (2.5, 4.5)
    text = render(q, "zh_CN")
    assert "调整为最接近的半人日（例如 5.2 → 5）" in text and "GGBZ §5.7.4、§5.8.5" in text
    assert "rounded to the nearest half day" in render(q, "en")


def test_multiple_sites_say_each_sampled_site_adds_its_own_time() -> None:
    one, four = render(quote(GGBZ, 120, 1), "zh_CN"), render(quote(GGBZ, 120, 4), "zh_CN")
    assert "§5.4.3.3" not in one
    assert "每个抽样场所还至少需要该场所单独计算审核时间的50%（GGBZ §5.4.3.3" in four


def test_bqc_says_whose_table_it_borrows_and_its_other_fees() -> None:
    q = quote(BQC, 120, 1)
    assert q.borrowed_from and "GGBZ 附录A" in q.borrowed_from
    text = render(q, "zh_CN")
    assert "本机构未公布自己的审核时间表，以上人日沿用 GGBZ 附录A 表A.1" in text
    assert "• 补发证书正本（每体系）：100 元（BQC 收费标准 一.5" in text
    assert "• 加印证书副本（每体系）：100 元（BQC 收费标准 一.6" in text
    assert "未公布自己的审核时间表" not in render(quote(GGBZ, 120, 1), "zh_CN")


def test_no_fee_schedule_is_said_plainly_and_sgc_pre_audit_is_half() -> None:
    fees = other_fees(SGC)
    assert {f["id"]: f.get("fraction_of_initial_audit") for f in fees}["pre_audit"] == "1/2"
    lines = other_fee_lines(fees, "zh_CN")
    assert any(line.startswith("• 预审核（可选）：初次审核费的50%（SGC §4.4") for line in lines)
    assert any("恢复注册" in line and "1,000 元" in line for line in lines)
    assert SGC.fees is None and SGC.audit_time is None
    ggbz = render(quote(GGBZ, 120, 1), "zh_CN")
    assert "本机构未公布收费标准：以上仅为审核人日估算" in ggbz  # GGBZ has days, no fees
    assert "本机构未公布收费标准" not in render(quote(BQC, 120, 1), "zh_CN")

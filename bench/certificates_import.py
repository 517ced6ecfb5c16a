"""Importing a certificate register of N rows (GBK, Chinese headers, dates as 2026/1/5), then
importing it again (every row an update), through the same service as the CLI and the console.

    python bench/certificates_import.py [--rows 100000]

Checks the work was done (rows, holders and contacts in the database), and prints the figure
last as one JSON line. Reading alone (no database) is timed beside it as the bare baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlmodel import func, select

from bot.config import Settings
from bot.main.desk import open_desk
from bot.profiles import load_profile
from bot.services.certificates_import import import_bytes, parse_bytes
from storage.db import upgrade_async
from storage.models import Certificate, Contact, Organisation
from storage.unit_of_work import UnitOfWork


def register(rows: int) -> bytes:
    lines = ["证书编号,持证组织,认证标准,发证日期,有效期至,联系邮箱"]
    lines += [f"B-{n:07d},示例有限公司{n},GB/T 39604-2020,2026/1/5,2029年1月4日,c{n}@x.cn；s@x.cn"
              for n in range(rows)]  # fmt: skip
    return ("\r\n".join(lines) + "\r\n").encode("gbk")


async def main(rows: int) -> None:
    data = register(rows)
    started = time.perf_counter()
    assert len(parse_bytes(data, load_profile("ggbz")).rows) == rows
    read = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{folder}/bench.db"
        await upgrade_async(url)
        settings = Settings(_env_file=None, database_url=url, data_dir=Path(folder))  # type: ignore[call-arg]
        desk = await open_desk(settings)
        times = []
        for _ in range(2):
            started = time.perf_counter()
            async with UnitOfWork(desk.sessions) as uow:
                result = await import_bytes(desk, uow, data)
            times.append(time.perf_counter() - started)
            assert result.refused == [] and result.imported + result.updated == rows
        async with desk.sessions() as s:
            for table, expected in ((Certificate, rows), (Organisation, rows), (Contact, 2 * rows)):
                got = (await s.exec(select(func.count()).select_from(table))).one()
                assert got == expected, (table.__name__, got, expected)
        await desk.close()
    print(json.dumps({"bench": "certificates_import", "rows": rows, "read_s": round(read, 2),
                      "import_s": round(times[0], 2), "reimport_s": round(times[1], 2),
                      "ratio": round(times[0] / read, 1), "load": os.getloadavg()[0]}))  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    asyncio.run(main(parser.parse_args().rows))

"""The desk's worker process: work runs in a child once started, in a thread before, and a
child that dies costs the call it broke nothing (it runs in a thread) and is replaced."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from bot import desk as desk_module
from bot.desk import GIVE_UP_AFTER, PARENT_CHECK_SECONDS, ProcessWorker
from handlers.email.parsing import ParseAhead, ParseOptions, warm_up
from tests.fixtures.mail_corpus import corpus

OPTIONS = ParseOptions("TS", 10_000_000, "desk.example.test", ("desk@desk.example.test",))


async def test_not_started_the_work_runs_in_this_process() -> None:
    worker = ProcessWorker()
    assert await worker.run(os.getpid) == os.getpid()
    assert not worker.running


async def test_started_the_work_runs_in_a_child_and_a_dead_child_is_replaced() -> None:
    worker = ProcessWorker()
    try:
        await worker.start(warm_up)
        child = await worker.run(os.getpid)
        assert child != os.getpid()
        os.kill(child, signal.SIGKILL)
        # The call the dead child broke still gets its answer (from a thread of this process).
        assert await worker.run(pow, 2, 10) == 1024
        replacement = await worker.run(os.getpid)
        assert replacement not in (child, os.getpid())
    finally:
        await worker.close()
    assert not worker.running
    assert await worker.run(os.getpid) == os.getpid()  # closed: back in this process


async def test_letters_parsed_in_the_child_are_the_letters_parsed_here() -> None:
    samples = corpus()
    raws = [s.raw for s in samples]
    here = ParseAhead(OPTIONS)(raws)
    worker = ProcessWorker()
    try:
        await worker.start()
        there = await worker.run(ParseAhead(OPTIONS), raws)
    finally:
        await worker.close()
    assert len(there) == len(samples)
    for sample, mine, theirs in zip(samples, here, there, strict=True):
        assert theirs == mine, sample.name


CHILD_OF_A_SERVICE = """
import asyncio, os, sys
from bot import desk as desk_module
from bot.desk import GIVE_UP_AFTER, PARENT_CHECK_SECONDS, ProcessWorker

async def main():
    worker = ProcessWorker()
    await worker.start()
    print(await worker.run(os.getpid), flush=True)
    await asyncio.sleep(3600)

if __name__ == "__main__":
    asyncio.run(main())
"""


def test_a_killed_service_leaves_no_worker_behind(tmp_path: Path) -> None:
    script = tmp_path / "service.py"
    script.write_text(CHILD_OF_A_SERVICE)
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    service = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, env=env, cwd=tmp_path
    )
    assert service.stdout is not None
    with service.stdout:
        child = int(service.stdout.readline())
    assert child != service.pid and _alive(child)
    service.kill()
    service.wait()
    deadline = time.monotonic() + 10 * PARENT_CHECK_SECONDS
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)  # the child looks for its parent every PARENT_CHECK_SECONDS
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purpose (its parent, now init, reaps it).
    with contextlib.suppress(FileNotFoundError):
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    return False


def _cannot_start() -> None:
    raise RuntimeError("no worker here")


async def test_a_child_that_cannot_start_is_given_up_after_a_few_tries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def failing() -> ProcessPoolExecutor:
        context = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(1, mp_context=context, initializer=_cannot_start)

    monkeypatch.setattr(desk_module, "_new_pool", failing)
    worker = ProcessWorker()
    await worker.start()
    for _ in range(GIVE_UP_AFTER):  # every call answered all the same, from a thread
        assert await worker.run(os.getpid) == os.getpid()
    assert not worker.running
    assert await worker.run(os.getpid) == os.getpid()
    assert not worker.running  # given up: no child started for that call
    await worker.close()


async def test_one_death_counts_once_whatever_was_in_flight() -> None:
    # Two calls in flight when the child dies (parse-ahead and a batch's parse, on
    # PostgreSQL): one death, not two; the worker is not given up before its time.
    worker = ProcessWorker()
    try:
        await worker.start()
        for _ in range(GIVE_UP_AFTER - 1):
            child = await worker.run(os.getpid)
            calls = [asyncio.create_task(worker.run(time.sleep, 0.5)) for _ in range(2)]
            await asyncio.sleep(0.1)  # both submitted to the child
            os.kill(child, signal.SIGKILL)
            assert await asyncio.gather(*calls) == [None, None]
        assert await worker.run(os.getpid) != os.getpid()
    finally:
        await worker.close()


async def test_ctrl_c_is_for_the_service_to_take_not_its_worker() -> None:
    worker = ProcessWorker()
    try:
        await worker.start()
        child = await worker.run(os.getpid)
        os.kill(child, signal.SIGINT)  # what a terminal sends to the whole process group
        assert await worker.run(os.getpid) == child
    finally:
        await worker.close()

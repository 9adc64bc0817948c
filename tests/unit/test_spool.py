"""The settlement spool on local disk: replay, failures mid-drain, torn lines, orphans."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.billing.spool import Spool


def drain(spool, settle):
    return asyncio.run(spool.drain(settle))


def test_spooled_entries_replay_once_drained_and_the_files_go(tmp_path):
    spool = Spool(tmp_path)
    for i in range(3):
        spool.append({"request_id": f"r{i}"})
    got = []

    async def settle(entry):
        got.append(entry["request_id"])

    assert drain(spool, settle) == 3 and got == ["r0", "r1", "r2"]
    assert list(tmp_path.glob("*.jsonl*")) == [] and not spool.waiting()


def test_a_failed_drain_keeps_everything_for_the_next(tmp_path):
    spool = Spool(tmp_path)
    for i in range(3):
        spool.append({"request_id": f"r{i}"})
    calls = []

    async def flaky(entry):
        calls.append(entry["request_id"])
        if entry["request_id"] == "r1":
            raise ConnectionError("redis is down")

    with pytest.raises(ConnectionError):
        drain(spool, flaky)
    spool.append({"request_id": "r3"})  # arrives meanwhile
    got = []

    async def settle(entry):
        got.append(entry["request_id"])

    # r0 is replayed too: the ledger's settle is idempotent by request id
    assert drain(spool, settle) == 4 and sorted(got) == ["r0", "r1", "r2", "r3"]


def test_torn_lines_are_skipped_and_dead_gateways_files_drained(tmp_path, caplog):
    orphan = tmp_path / "spool-0123456789abcdef.jsonl"  # nobody holds its lock: its gateway died
    orphan.write_text('{"request_id": "o1"}\n{"request_id": "o2", "tru\n')
    living = Spool(tmp_path)  # another gateway, alive: it holds its lock
    living.append({"request_id": "x"})
    got = []

    async def settle(entry):
        got.append(entry["request_id"])

    assert drain(Spool(tmp_path), settle) == 1 and got == ["o1"]
    assert "corrupt" in caplog.text and not orphan.exists() and living.path.exists()
    living.close()  # as if that gateway died too: the next drain adopts its file
    assert drain(Spool(tmp_path), settle) == 1 and got == ["o1", "x"]
    assert not list(tmp_path.glob("*.jsonl*"))


def test_two_spools_adopting_the_same_orphan_replay_it_once(tmp_path):
    orphan = tmp_path / "spool-fedcba9876543210.jsonl"
    orphan.write_text("".join(f'{{"request_id": "o{i}"}}\n' for i in range(5)))
    first, second = Spool(tmp_path), Spool(tmp_path)
    got = []

    async def settle(entry):
        got.append(entry["request_id"])

    async def both():
        return await asyncio.gather(first.drain(settle), second.drain(settle))

    assert sum(asyncio.run(both())) == 5 and sorted(got) == [f"o{i}" for i in range(5)]

"""SPEC §8: the outbox itself — one process per outbox, moves between pending/ and dead/ that a crash cannot lose,
an entry that cannot be sent never blocks the ones behind it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from framesift.collectors.targets.outbox import Outbox, OutboxInUse, OutboxSender, describe
from tests.helpers import CONFIGS, wait_until
from tests.test_roboflow import datapoint, target_for

HOLDER = """
import sys
from framesift.collectors.targets.outbox import Outbox
box = Outbox(sys.argv[1])
print("ready", flush=True)
sys.stdin.read()
"""


def framesift(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "framesift.cli", *args], capture_output=True, text=True)


def test_one_process_per_outbox_and_inspection_is_safe_while_it_runs(tmp_path, clip_path):
    folder = tmp_path / "outboxes" / "roboflow-people"
    with Outbox(folder) as box:
        box.add(datapoint(1))
        box.kill(box.oldest(), "HTTP 401 from upload")
        box.add(datapoint(2))
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(OutboxInUse, match=f"in use by another framesift process \\(pid {holder.pid}\\)"):
            Outbox(folder)
        shown = framesift("outbox", str(folder))  # reads without the lock: the run's files are left alone
        assert shown.returncode == 0 and "pending: 1" in shown.stdout and "HTTP 401 from upload" in shown.stdout
        in_use = (f"framesift: the outbox {folder} is in use by another framesift process (pid {holder.pid}); "
                  f"give each run its own --outbox")
        refused = framesift("outbox", str(folder), "--retry-dead")
        assert refused.returncode == 2 and refused.stderr.strip() == in_use
        second_run = subprocess.run(
            [sys.executable, "-m", "framesift.cli", "run", str(clip_path), "--model", "stub", "--al-config",
             str(CONFIGS / "stub_bootstrap.yaml"), "--target", "roboflow:people", "--outbox", str(folder.parent),
             "--no-progress"], capture_output=True, text=True, env={**os.environ, "ROBOFLOW_API_KEY": "k"})
        assert second_run.returncode == 2 and second_run.stderr.strip() == in_use
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    moved = framesift("outbox", str(folder), "--retry-dead")  # the lock died with its process
    assert moved.returncode == 0 and "moved 1 dead" in moved.stdout
    assert describe(folder)["pending"] == 2 and describe(folder)["dead"] == 0


@pytest.mark.parametrize("direction", ["kill", "retry"])
@pytest.mark.parametrize("step", [0, 1, 2], ids=["image linked", "JSON written", "old JSON removed"])
def test_a_move_cut_short_by_a_crash_keeps_the_entry(tmp_path, direction, step):
    """Each state a crash can leave a move in (pending → dead for `kill`, dead → pending for `retry`): the entry is
    found whole in exactly one place when the outbox is opened again, and no stray file is left."""
    folder = tmp_path / "outbox"
    with Outbox(folder) as box:
        box.add(datapoint(7))
        if direction == "retry":
            box.kill(box.oldest(), "HTTP 413 from upload")
    source, dest = ("pending", "dead") if direction == "kill" else ("dead", "pending")
    [json_path] = (folder / source).glob("*.json")
    image = json_path.with_suffix(".jpg").read_bytes()
    moved = folder / dest / json_path.name
    os.link(json_path.with_suffix(".jpg"), moved.with_suffix(".jpg"))
    if step >= 1:
        meta = {k: v for k, v in json.loads(json_path.read_text()).items() if k not in ("dead_reason", "dead_at")}
        moved.write_text(json.dumps({**meta, "dead_reason": "HTTP 413 from upload"} if dest == "dead" else meta))
    if step >= 2:
        json_path.unlink()
    with Outbox(folder) as reopened:
        stats = reopened.stats()
    # the move is done once the old JSON is gone; with both JSONs, pending wins (it is sent again, idempotently)
    expected_place = dest if step == 2 else "pending" if step == 1 else source
    assert (stats.pending, stats.dead) == ((1, 0) if expected_place == "pending" else (0, 1))
    [kept] = (folder / expected_place).glob("*.json")
    assert kept.with_suffix(".jpg").read_bytes() == image
    other = "dead" if expected_place == "pending" else "pending"
    assert not any((folder / other).iterdir())  # no orphan image, no second JSON


def test_an_entry_whose_image_vanished_is_dead_lettered_and_the_rest_delivered(tmp_path):
    box = Outbox(tmp_path / "outbox")
    for i in range(3):
        box.add(datapoint(i))
    box.oldest().image_path.unlink()  # say someone cleaned up by hand
    sent: list[tuple[str, bytes]] = []
    sender = OutboxSender(box, lambda entry, _outbox: sent.append((entry.id, entry.jpeg())))
    sender.start()
    assert wait_until(lambda: len(sent) == 2)
    sender.stop()
    box.close()
    assert [i for i, _ in sent] == ["dp0001", "dp0002"] and all(jpeg == datapoint(int(i[2:])).jpeg for i, jpeg in sent)
    [dead] = describe(tmp_path / "outbox")["dead_letters"]
    assert dead["id"] == "dp0000" and "missing from the outbox" in dead["dead_reason"]
    assert describe(tmp_path / "outbox")["pending"] == 0


def test_pending_bytes_stay_exact_when_entries_change(tmp_path):
    box = Outbox(tmp_path / "outbox")
    box.add(datapoint(1))
    entry = box.oldest()
    entry.meta["remote_image_id"] = "a-rather-long-identifier-given-by-the-target"
    box.update(entry)
    assert box.stats().pending_bytes == describe(tmp_path / "outbox")["pending_bytes"]
    box.remove(box.oldest())
    assert box.stats().pending_bytes == 0
    box.close()


def test_sequence_numbers_continue_after_the_dead_ones(tmp_path):
    with Outbox(tmp_path / "outbox") as box:
        for i in range(3):
            box.add(datapoint(i))
        for _ in range(3):
            box.kill(box.oldest(), "HTTP 401")
    with Outbox(tmp_path / "outbox") as box:
        box.add(datapoint(9))
        assert box.retry_dead() == 3
        order = [json.loads(p.read_text())["id"] for p in sorted(Path(box.pending_dir).glob("*.json"))]
    assert order == ["dp0000", "dp0001", "dp0002", "dp0009"]  # the oldest first, as they were collected


# -- entries changed by hand: never a wedged queue ----------------------------------------------------------------
def test_a_pending_entry_deleted_by_hand_while_running_is_forgotten_counted_and_the_rest_delivered(tmp_path, roboflow):
    target = target_for(roboflow, tmp_path / "outbox")
    roboflow.stop()  # the target is down: entries wait
    for i in range(5):
        target.register(datapoint(i))
    assert wait_until(lambda: target.stats().retried > 0)
    head = min((tmp_path / "outbox" / "pending").glob("*.json"))
    head.unlink()  # removed by hand while the sender retries it
    stats = target.stats()  # answers at once (it read the head from disk, in a loop, before)
    assert stats.pending + stats.vanished == 5 and stats.oldest_pending_age_s is not None  # forgotten, or not yet
    roboflow.start()
    assert wait_until(lambda: target.stats().pending == 0)
    target.close()
    stats = target.stats()
    assert stats.delivered == 4 and stats.vanished == 1 and stats.dead == 0 and stats.pending_bytes == 0
    assert roboflow.names() == [f"dp{i:04d}.jpg" for i in range(1, 5)]
    assert not any((tmp_path / "outbox" / "pending").iterdir())  # its image went with it


@pytest.mark.parametrize("when", ["at open", "while running"])
def test_a_damaged_pending_entry_goes_to_dead_once_and_the_rest_is_delivered(tmp_path, roboflow, when):
    folder = tmp_path / "outbox"
    with Outbox(folder) as box:
        for i in range(30):
            box.add(datapoint(i))
    head = min((folder / "pending").glob("*.json"))
    damaged = head.read_bytes()[:23]  # a crash of an older version, a hand edit, a bad sector
    if when == "at open":
        head.write_bytes(damaged)
        shown = framesift("outbox", str(folder))
        assert shown.returncode == 0, shown.stderr
        assert f"{head.name}: damaged" in shown.stdout and "pending: 30" in shown.stdout
    else:
        roboflow.stop()
    target = target_for(roboflow, folder)
    if when == "while running":
        assert wait_until(lambda: target.stats().retried > 0)
        edited = head.with_name(".edit")
        edited.write_bytes(damaged)
        os.replace(edited, head)  # at once, as an editor saves: the sender reads the old or the new, never half
        roboflow.start()
    assert wait_until(lambda: target.stats().delivered == 29)
    target.close()
    assert target.stats().dead == 1 and target.stats().pending == 0
    assert roboflow.names() == [f"dp{i:04d}.jpg" for i in range(1, 30)]
    [letter] = describe(folder)["dead_letters"]
    assert letter["id"] == "dp0000" and "metadata cannot be read" in letter["dead_reason"]
    assert letter["damaged_metadata"] == damaged.decode()
    shown = framesift("outbox", str(folder))
    assert shown.returncode == 0 and "dp0000: its metadata cannot be read" in shown.stdout
    with Outbox(folder) as box:
        assert box.retry_dead() == 0  # no retry can deliver it: it stays dead, whole
    assert describe(folder)["dead"] == 1


def test_an_entry_whose_metadata_has_the_wrong_shape_does_not_stop_the_queue(tmp_path):
    box = Outbox(tmp_path / "outbox")
    for i in range(3):
        box.add(datapoint(i))
    head = min((tmp_path / "outbox" / "pending").glob("*.json"))
    meta = json.loads(head.read_text())
    head.write_text(json.dumps({**meta, "tags": 7}))  # edited by hand: complete, but not what delivery expects
    sent: list[str] = []

    def deliver(entry, _outbox):
        sent.append(",".join(entry.meta["tags"]) and entry.id)  # a number of tags raises TypeError

    sender = OutboxSender(box, deliver)
    sender.start()
    assert wait_until(lambda: len(sent) == 2)
    sender.stop()
    box.close()
    assert sent == ["dp0001", "dp0002"] and sender.error is None
    [letter] = describe(tmp_path / "outbox")["dead_letters"]
    assert letter["id"] == "dp0000" and letter["dead_reason"].startswith("TypeError")

"""Targets as plug-ins: `TargetSpec.parse` reads every target's text, and a scheme registered from outside the
package (`register_target` in the caller's code, or a `framesift.targets` entry point for the command line)
receives the datapoints of a real run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

import framesift
from framesift import Opening, RunOptions, TargetSpec, register_target
from framesift.collectors.targets.datapoint import Datapoint
from framesift.errors import TargetError
from tests.helpers import installed_plugin

REPO = Path(__file__).resolve().parents[1]
COLLECT_ALL = {"enabled": True, "persist_predictions": True,
               "sampling_strategies": [{"name": "all", "type": "random", "traffic_percentage": 1.0}],
               "batching_strategy": {"batches_name_prefix": "b", "recreation_interval": "never"}}


class Kept:
    """A target keeping what it is given, in memory: a plug-in of this test's own."""

    opened: list[Kept] = []

    def __init__(self, name: str, opening: Opening):
        self.name, self.opening = name, opening
        self.datapoints: list[Datapoint] = []
        self.closed = 0
        self._lock = threading.Lock()
        Kept.opened.append(self)

    def batch_count(self, batch: str) -> int:
        return 0

    def register(self, datapoint: Datapoint) -> dict[str, Any]:
        with self._lock:
            self.datapoints.append(datapoint)
        return {"id": datapoint.id}

    def check(self) -> None:
        pass

    def stats(self) -> None:
        return None

    def close(self, timeout: float = 10.0) -> None:
        self.closed += 1


register_target("kept-test", form="kept-test:<dataset>")(Kept)


def test_a_scheme_registered_from_outside_receives_the_datapoints_of_a_run(clip_path, tmp_path):
    (tmp_path / "all.json").write_text(json.dumps(COLLECT_ALL))
    framesift.run(RunOptions(sources=[str(clip_path)], model="stub", al_config=str(tmp_path / "all.json"),
                             target="kept-test:people", outbox=str(tmp_path / "outbox"), seed=1,
                             summary=str(tmp_path / "summary.json")))
    summary = json.loads((tmp_path / "summary.json").read_text())
    kept = Kept.opened[-1]
    assert kept.name == "people" and kept.closed >= 1
    assert kept.opening.exclusive and not kept.opening.shared  # a run without Redis
    assert kept.opening.outbox == tmp_path / "outbox" / "kept-test-people"
    assert summary["datapoints_registered"] == len(kept.datapoints) == summary["frames_inferred"] > 0
    image = cv2.imdecode(np.frombuffer(kept.datapoints[0].jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (kept.datapoints[0].height, kept.datapoints[0].width, 3)
    assert (tmp_path / "outbox" / "replayed-kept-test-people.jsonl").is_file()  # a remote target's replay log


@pytest.mark.parametrize(("text", "scheme", "name", "dataset", "remote"), [
    ("roboflow:people", "roboflow", "people", "people", True),
    ("labelstudio:Loading dock", "labelstudio", "Loading dock", "Loading dock", True),
    ("kept-test:night shift", "kept-test", "night shift", "night shift", True),
    ("/data/people", "folder", "/data/people", "people", False),
    ("roboflow", "folder", "roboflow", "roboflow", False),  # a folder of that name, as always
    ("C:/data", "folder", "C:/data", "data", False),  # one letter is never a scheme: a drive stays a folder
    ("unknown:x", "folder", "unknown:x", "unknown:x", False),
])
def test_a_target_text_reads_as_one_typed_value(text, scheme, name, dataset, remote):
    spec = TargetSpec.parse(text)
    assert (spec.scheme, spec.name, spec.dataset, spec.remote, spec.text) == (scheme, name, dataset, remote, text)


def test_a_run_of_workflows_gives_each_dataset_its_own_target():
    assert TargetSpec.parse("roboflow:").for_dataset("cars") == TargetSpec("roboflow", "cars")
    assert TargetSpec.parse("labelstudio").for_dataset("cars") == TargetSpec("labelstudio", "cars")
    assert TargetSpec.parse("datasets").for_dataset("cars") == TargetSpec("folder", str(Path("datasets", "cars")))
    with pytest.raises(TargetError, match="with a workflow, --target is a folder of datasets, roboflow: or roboflow"):
        TargetSpec.parse("roboflow:people").for_dataset("cars")
    with pytest.raises(TargetError, match="is no dataset name"):  # nothing leaves the folder of datasets
        TargetSpec.parse("datasets").for_dataset("../cars")


def test_a_target_is_shown_without_its_secrets_and_a_configuration_key_is_roboflows_alone():
    spec = TargetSpec.parse("kept-test:https://user:hunter2@example.com/x?token=s3cr3t")
    assert "hunter2" not in str(spec) and "s3cr3t" not in str(spec) and str(spec).startswith("kept-test:https://")
    assert TargetSpec.parse("roboflow:people").configured_key("k") == "k"
    assert TargetSpec.parse("labelstudio:people").configured_key("k") is None
    assert TargetSpec.parse("people").configured_key("k") is None


def test_what_cannot_be_a_target_is_said_in_one_sentence():
    with pytest.raises(TargetError, match="^the target is empty: give a folder, .*labelstudio:<project>"):
        TargetSpec.parse("")
    with pytest.raises(TargetError, match="^there is no target scheme 'nope'"):
        TargetSpec("nope", "x")
    with pytest.raises(ValueError, match="is registered already"):
        register_target("roboflow")(Kept)
    with pytest.raises(ValueError, match="not 'C'"):
        register_target("C")


PLUGIN = '''
"""`notes:<dataset>`: each datapoint delivered through the outbox into the folder `notes/<dataset>`."""
from pathlib import Path

from framesift import Opening, register_target
from framesift.collectors.targets.remote import RemoteTarget
from framesift.paths import check_dataset_name


class Notes(RemoteTarget):
    def __init__(self, dataset, opening):
        super().__init__(check_dataset_name(dataset, "notes:<dataset>"), opening.outbox, opening.outbox_max_bytes)
        self.folder = Path("notes", dataset)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.start()

    def deliver(self, entry, outbox):
        (self.folder / f"{entry.id}.jpg").write_bytes(entry.jpeg())


register_target("notes", form="notes:<dataset>")(Notes)
'''


def cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "framesift.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_command_line_delivers_to_a_target_of_an_installed_package_through_its_outbox(clip_path, tmp_path):
    env = installed_plugin(tmp_path / "site", "framesift.targets", "notes", "notes_target", PLUGIN)
    (tmp_path / "all.json").write_text(json.dumps(COLLECT_ALL))
    summary = tmp_path / "summary.json"
    done = cli("run", str(clip_path), "--model", "stub", "--al-config", "all.json", "--target", "notes:people",
               "--summary", str(summary), "--no-progress", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    counts = json.loads(summary.read_text())
    delivered = sorted((tmp_path / "notes" / "people").glob("*.jpg"))
    assert counts["datapoints_registered"] == counts["target"]["delivered"] == len(delivered) > 0
    assert (tmp_path / "framesift-outbox" / "notes-people" / "pending").is_dir()  # delivered through its outbox
    refused = cli("run", str(clip_path), "--model", "stub", "--al-config", "all.json", "--target", "notes:../up",
                  "--no-progress", cwd=tmp_path, env=env)
    assert refused.returncode == 2 and refused.stderr.startswith("framesift: notes:<dataset>: '../up' is no "), \
        refused.stderr
    assert not (tmp_path / "up").exists()


def test_a_plugin_that_cannot_be_loaded_is_said_in_one_sentence(clip_path, tmp_path):
    env = installed_plugin(tmp_path / "site", "framesift.targets", "notes", "notes_target",
                           "raise ImportError('no module named boto3')\n")
    done = cli("run", str(clip_path), "--model", "stub", "--al-config", "random", "--target", "notes:people",
               "--no-progress", cwd=tmp_path, env=env)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == ("framesift: the target plug-in notes (notes_target) cannot be loaded: ImportError: "
                                   "no module named boto3"), done.stderr


def test_a_folder_whose_name_holds_a_colon_keeps_its_replay_log_in_it(clip_path, tmp_path):
    """The replay's lock and log once found their place from the target's text on their own (a colon and no such
    folder yet: remote) while the target opened as a folder: the lock went beside the outboxes, the log (the folder
    made by then) into the folder, so two runs could each hold a lock of their own."""
    done = cli("run", str(clip_path), "--model", "stub", "--al-config", "random", "--target", "cams:north",
               "--no-progress", cwd=tmp_path, env=dict(os.environ))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "cams:north" / "replayed.jsonl").is_file()
    assert not (tmp_path / "framesift-outbox").exists()

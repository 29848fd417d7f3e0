"""A box you can deploy: the Dockerfiles' steps run here as far as this machine allows (Docker is not needed: each
COPY's files exist, and the CPU image's install runs in a clean virtual environment from exactly what it copies),
the package builds without setuptools' warnings and carries its LICENSE, assets and configurations, the systemd
unit passes `systemd-analyze verify`, and `make demo` installs only what the demo needs."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "deploy" / "framesift@.service"


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(instruction, arguments) of each line of a Dockerfile, continuation lines joined, comments left out."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.gpu"])
def test_each_dockerfile_copies_files_that_exist_and_installs_its_extra(name):
    steps = instructions(ROOT / name)
    assert steps[0][0] in ("FROM", "ARG") and ("ENTRYPOINT", '["framesift"]') in steps
    copied = [part for kind, args in steps if kind == "COPY" for part in shlex.split(args)[:-1]]
    assert {"pyproject.toml", "README.md", "LICENSE", "configs", "framesift"} <= set(copied)
    for source in copied:
        assert (ROOT / source).exists(), f"{name} copies {source}, which is not in the repository"
    extra = "gpu" if name.endswith(".gpu") else "cpu"
    assert any(f"pip install '.[{extra}]'" in args for kind, args in steps if kind == "RUN")
    assert extra in metadata.metadata("framesift").get_all("Provides-Extra")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The CPU Dockerfile's install, run here: its COPYs into a folder, then its `pip install '.[cpu]'` in a fresh
    virtual environment (PyPI's wheels, as in the image). Returns the environment's bin folder."""
    work = tmp_path_factory.mktemp("image")
    source = work / "src"
    source.mkdir()
    for kind, args in instructions(ROOT / "Dockerfile"):
        if kind == "COPY":
            *parts, destination = shlex.split(args)
            for part in parts:  # `COPY a b ./` puts a and b in the folder; `COPY dir ./dir`, dir's content in ./dir
                target = source / Path(part).name if destination.endswith("/") else source / destination
                if (ROOT / part).is_dir():
                    shutil.copytree(ROOT / part, target, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(ROOT / part, target)
    subprocess.run([sys.executable, "-m", "venv", str(work / "venv")], check=True)
    python = work / "venv" / "bin" / "python"
    built = subprocess.run([python, "-m", "pip", "wheel", "-v", "--no-deps", ".", "-w", str(work / "dist")],
                           cwd=source, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    assert "would be ignored" not in built.stdout + built.stderr  # setuptools' warnings about the asset folders
    [wheel] = (work / "dist").glob("*.whl")
    subprocess.run([python, "-m", "pip", "install", "-q", ".[cpu]"], cwd=source, check=True, timeout=900)
    shutil.rmtree(source)  # as the image does: nothing of the checkout is left to lean on
    (work / "wheel").write_text(str(wheel))
    return work / "venv" / "bin"


def test_the_installed_package_runs_with_its_bundled_model_configurations_and_report(installed, clip_path, tmp_path):
    version = subprocess.run([installed / "framesift", "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("framesift ") and "onnxruntime 1." in version.stdout
    example = subprocess.run([installed / "framesift", "config", "example", "realistic"], capture_output=True,
                             text=True, check=True, cwd=tmp_path)
    assert example.stdout == (ROOT / "configs" / "realistic.yaml").read_text()
    run = subprocess.run([installed / "framesift", "run", str(clip_path), "--model", "demo", "--al-config", "demo",
                          "--target", "ds", "--max-frames", "30", "--no-progress", "--seed", "1"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr
    report = subprocess.run([installed / "framesift", "report", "ds"], capture_output=True, text=True, cwd=tmp_path,
                            timeout=300)
    assert report.returncode == 0, report.stderr
    assert "chart" in (tmp_path / "ds" / "report.html").read_text().lower()  # the report's assets were installed


def test_the_wheel_carries_the_apache_license(installed):
    import zipfile

    wheel = Path((installed.parent.parent / "wheel").read_text())
    with zipfile.ZipFile(wheel) as archive:
        licence = next(n for n in archive.namelist() if n.endswith(".dist-info/licenses/LICENSE"))
        text = archive.read(licence).decode()
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text
    assert text == (ROOT / "LICENSE").read_text()


def test_the_systemd_unit_verifies_and_stops_after_the_drain(tmp_path):
    unit = UNIT.read_text()
    options = dict(re.findall(r"^(\w+)=(.*)$", unit, re.MULTILINE))
    assert options["Restart"] == "always" and options["KillSignal"] in ("SIGINT", "SIGTERM")
    drain = float(re.search(r"--drain-timeout (\d+)", options["ExecStart"]).group(1))
    assert float(options["TimeoutStopSec"]) > drain
    assert options["StandardError"] == "journal" and "--status-interval" in options["ExecStart"]
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd): the unit was parsed only")
    # verify checks the command exists: the instance runs this environment's framesift
    for name, text in (("framesift@cam1.service", unit), ("framesift@bad.service", unit + "Restart=sometimes\n")):
        (tmp_path / name).write_text(text.replace("/usr/local/bin/framesift", str(Path(sys.executable).parent /
                                                                                 "framesift")))
    good = subprocess.run([analyze, "verify", str(tmp_path / "framesift@cam1.service")], capture_output=True,
                          text=True, timeout=60)
    assert good.returncode == 0 and good.stderr == "", good.stderr
    bad = subprocess.run([analyze, "verify", str(tmp_path / "framesift@bad.service")], capture_output=True, text=True,
                         timeout=60)
    assert "Restart" in bad.stderr  # the check can fail


def test_make_demo_installs_only_what_the_demo_needs(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")

    def planned(target: str) -> str:
        return subprocess.run(["make", "-n", target, f"VENV={tmp_path / 'venv'}"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout

    demo = planned("demo")
    assert "pip install -q -e '.[cpu]'" in demo and ",test]" not in demo
    for target in ("test", "lint"):
        assert "pip install -q -e '.[cpu,test,docs]'" in planned(target)

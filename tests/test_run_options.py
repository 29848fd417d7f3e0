"""Each option of `framesift run` is declared once (issue 25, item 3): the command line, `RunOptions`, what
`build_workflow` is given and docs/run.md derive from the declarations in framesift/run_options.py, and `run()`
returns a typed summary whose `as_dict()` is the `--summary` file."""

from __future__ import annotations

import dataclasses
import inspect
import json

import pytest

from framesift import InputError, RunOptions, RunSummary, run
from framesift.cli import build_parser, options_of
from framesift.run_options import OPTIONS, RUN, option
from framesift.stats import CollectorStats, StreamStats
from framesift.workflows.build import build_workflow
from tests.options_checks import ROOT, every_flag_arrives, help_is_grouped, reference_is_checked

SPECIAL = {"device": "cpu", "redis": "redis://127.0.0.1:6390/2", "source_name": "door", "redis_fallback": "memory",
           "rtsp_transport": "udp", "start_time": "2026-11-20T08:00:00Z"}


def test_every_flag_of_the_command_line_reaches_its_run_options_field():
    """The CLI kept the fields of `vars(args)` that RunOptions knows: a flag whose destination was renamed was
    dropped without a word. Now the parser's destinations are the fields, and every value given arrives."""
    assert every_flag_arrives(RUN, ["clip.mp4"], SPECIAL).sources == ["clip.mp4"]


def test_the_command_line_defaults_are_the_declared_ones():
    options = options_of(build_parser().parse_args(["run", "clip.mp4"]))
    api = RunOptions(sources=["clip.mp4"])
    differing = {f.name for f in dataclasses.fields(RunOptions) if getattr(options, f.name) != getattr(api, f.name)}
    assert differing == {"no_progress"}  # a library caller asks for the status line; the command line shows it
    assert options.no_progress is False and api.no_progress is True


def test_run_help_is_grouped_with_each_default_and_ends_with_examples_that_parse():
    out = help_is_grouped(RUN)
    assert "(default: 1 GiB)" in out and "(default: 0.25)" in out and "(default: framesift-data)" in out


def test_build_workflow_is_given_the_run_options_of_its_keywords_with_the_same_defaults():
    keywords = inspect.signature(build_workflow).parameters
    fields = {f.name for f in dataclasses.fields(RunOptions)}
    handed = RunOptions(sources=["clip.mp4"]).for_workflow()
    assert set(handed) == set(keywords) & fields  # every keyword that is a run option is handed on, by its name
    for name, value in handed.items():
        assert keywords[name].kind is inspect.Parameter.KEYWORD_ONLY and keywords[name].default == value, name


def test_the_python_api_refuses_what_the_command_line_refuses():
    """A value outside an option's choices reached the run from Python: the command line refused it, RunOptions
    took it."""
    with pytest.raises(InputError, match="^--rtsp-transport is tcp or udp, not 'http'$"):
        RunOptions(sources=["clip.mp4"], rtsp_transport="http")
    with pytest.raises(InputError, match="^--replay-lease must be more than 0, not 0$"):
        RunOptions(sources=["clip.mp4"], replay_lease=0)


def test_a_declaration_names_one_of_the_groups():
    with pytest.raises(ValueError, match="no group 'misc'"):
        option("anything", "misc")


def test_run_returns_a_typed_summary_whose_dict_is_the_summary_file(clip_path, tmp_path):
    config = tmp_path / "all.json"
    config.write_text(json.dumps({"enabled": True, "persist_predictions": True, "sampling_strategies": [
        {"name": "all", "type": "random", "traffic_percentage": 1.0}],
        "batching_strategy": {"batches_name_prefix": "all", "recreation_interval": "never"}}))
    summary = run(RunOptions(sources=[str(clip_path)], model="stub", al_config=str(config), target=str(tmp_path / "ds"),
                             summary=str(tmp_path / "s.json"), max_frames=20, seed=1))
    assert isinstance(summary, RunSummary) and isinstance(summary.stats, StreamStats)
    assert isinstance(summary.collected, CollectorStats) and summary.failure is None and summary.unwritten is None
    written = (tmp_path / "s.json").read_text()
    assert written == json.dumps(summary.as_dict(), indent=2)  # byte for byte
    assert json.loads(written)["frames_inferred"] == summary.stats.frames_inferred == 20
    assert json.loads(written)["datapoints_registered"] == summary.collected.datapoints_registered == 20
    assert list(json.loads(written)) == list(summary.stats.summary())


def test_docs_run_md_is_written_from_the_declarations(tmp_path):
    """docs/run.md's options are the declarations': `--check` fails on a page that lost or changed a line."""
    page = ROOT / "docs" / "run.md"
    assert all(f"`{declared.flags[0]}" in page.read_text() for declared in OPTIONS if not declared.positional)
    reference_is_checked(page, tmp_path / "run.md", ("(default: source0, source1, ...)", "(default: cam0, cam1, ...)"))

"""Each option of `framesift serve` is declared once (issue 25, item 3, as for run): the command line, `ServeOptions`,
what a workflow sent with a request is built with and docs/serve-options.md derive from the declarations in
framesift/serve_options.py."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from framesift import InputError
from framesift.cli import build_parser, parsed
from framesift.serve import ServeOptions
from framesift.serve_options import OPTIONS, SERVE
from framesift.workflows.build import build_workflow
from tests.options_checks import ROOT, every_flag_arrives, help_is_grouped, reference_is_checked

SPECIAL = {"device": "cpu", "redis": "redis://127.0.0.1:6390/2", "redis_fallback": "memory", "port": 9002,
           "stub_task": "people=instance-segmentation", "dataset": "people"}


def test_the_parser_and_serve_options_agree_field_for_field():
    """The CLI kept the fields of `vars(args)` that ServeOptions knew: a flag whose destination was renamed was
    dropped without a word. Now the parser's destinations are the fields, and every value given arrives."""
    options = every_flag_arrives(SERVE, [], SPECIAL)
    assert options.stub_tasks() == ("object-detection", {"people": "instance-segmentation"})
    assert options.server_key is None  # the Python API's alone: the command line reads $FRAMESIFT_SERVE_API_KEY


def test_the_command_line_defaults_are_the_python_apis():
    assert parsed(ServeOptions, build_parser().parse_args(["serve"])) == ServeOptions()


def test_serve_help_is_grouped_with_each_default_and_ends_with_examples_that_parse():
    out = help_is_grouped(SERVE)
    assert "(default: 32 MiB)" in out and "(default: 9001)" in out and "(default: 127.0.0.1)" in out
    assert "--server-key" not in out


def test_a_workflow_sent_to_the_server_is_built_with_the_servers_options():
    keywords = inspect.signature(build_workflow).parameters
    fields = {f.name for f in dataclasses.fields(ServeOptions)}
    handed = ServeOptions(seed=3, target="datasets").for_workflow()
    assert set(handed) == set(keywords) & fields  # every keyword that is a serve option is handed on, by its name
    assert handed["seed"] == 3 and handed["target"] == "datasets"


def test_the_python_api_refuses_what_the_command_line_refuses():
    """A value outside an option's choices reached the server from Python: the command line refused it,
    ServeOptions took it."""
    with pytest.raises(InputError, match="^--redis-fallback is pause or memory, not 'never'$"):
        ServeOptions(redis_fallback="never")
    with pytest.raises(InputError, match="^--max-pending must be more than 0, not 0$"):
        ServeOptions(max_pending=0)
    with pytest.raises(SystemExit):  # argparse: exit code 2, one line of usage
        build_parser().parse_args(["serve", "--redis-fallback", "never"])


def test_docs_serve_options_md_is_written_from_the_declarations(tmp_path):
    """docs/serve-options.md's options are the declarations': `--check` fails on a page that lost or changed a
    line."""
    page = ROOT / "docs" / "serve-options.md"
    assert all(f"`{declared.flags[0]}" in page.read_text() for declared in OPTIONS if not declared.python_only)
    reference_is_checked(page, tmp_path / "serve-options.md", ("| `--port PORT` | `port` | `9001` |",
                                                               "| `--port PORT` | `port` | `9000` |"))

"""The `framesift` command: argument parsing and wiring only; the library does the work.

Exit codes: 0 success (also after an orderly stop by signal); 2 bad usage, invalid configuration, unreadable
model or file; 3 a `--duration` run in which a live source never connected; 1 any other failure. Errors are one
sentence on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any, TypeVar

from framesift import defaults
from framesift.errors import CollectionFailed, FramesiftError, InputError, NeverConnected
from framesift.options import Command, Option, declared
from framesift.run_options import RUN, RunOptions
from framesift.serve_options import SERVE, ServeOptions
from framesift.signals import StopSignals

Options = TypeVar("Options")

EXIT_OK, EXIT_FAILURE = 0, 1  # and 2 (InputError), 3 (NeverConnected): the errors carry their codes
DESCRIPTION = """Edge active learning on live video: framesift reads cameras (RTSP, RTMP, HLS, webcams) or recordings,
runs an ONNX model on the frames, and keeps the frames worth labeling (the image and the model's predictions) under
budgets a fleet can share through Redis. The active-learning configuration is Roboflow's format."""
EPILOG = """examples:
  framesift demo                                   a sample video, collected from, with a report to open
  framesift run rtsp://cam/1 --model yolov8n.onnx --al-config realistic --target people
  framesift config example realistic > my.yaml     a bundled configuration to start from
  framesift report people                          look at what was collected
  framesift export people --format coco --out coco/

Each command has its own --help. Exit codes: 0 done, 2 bad input, 3 a live source never connected during a
--duration run, 1 another failure."""

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="framesift", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    parser.add_argument("--version", action=_Version, help="print framesift's, ONNX Runtime's and Python's versions")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _command_parser(commands, RUN)

    validate = commands.add_parser("validate", help="check an active-learning configuration or a workflow file")
    validate.add_argument("file", help="JSON or YAML configuration or workflow definition")
    validate.add_argument("--models", metavar="DIR",
                          help="also find each model step's model in this models folder, as run would")

    demo = commands.add_parser("demo", help="make a sample video, collect from it, show where to look")
    demo.add_argument("--out", default="framesift-demo", help="folder for the video and the dataset")

    config = commands.add_parser("config", help="set, get and list the configuration each dataset's fleet follows; "
                                                "print a bundled example")
    actions = config.add_subparsers(dest="action", required=True, metavar="ACTION")
    example = actions.add_parser("example", help="print a bundled configuration (to start your own from), or list "
                                                 "them")
    example.add_argument("name", nargs="?", help="realistic, demo, random, ... (none: list them)")
    for action, about in (("set", "validate FILE, then store it as the dataset's next version"),
                          ("get", "print the configuration in force (or version N) as JSON that set accepts"),
                          ("history", "list every version kept")):
        action_parser = actions.add_parser(action, help=about)
        action_parser.add_argument("dataset", help="the dataset (a folder's base name, a Roboflow dataset, "
                                                   "a Label Studio project)")
        if action == "set":
            action_parser.add_argument("file", help="JSON or YAML configuration")
        if action == "get":
            action_parser.add_argument("--version", type=int, help="a version kept (see history)")
        action_parser.add_argument("--store", required=True, help="redis://host:port/db or roboflow:<workspace>")
        action_parser.add_argument("--api-key", help="the Roboflow store's key (default: ROBOFLOW_API_KEY)")

    outbox = commands.add_parser("outbox", help="show what a remote target's outbox holds; retry the dead")
    outbox.add_argument("folder", help="an outbox, for example framesift-outbox/roboflow-my-dataset")
    outbox.add_argument("--retry-dead", action="store_true", help="move refused datapoints back to pending")

    replay = commands.add_parser("replay", help="how a fleet's replay of an archive (run --redis) stands")
    replay_actions = replay.add_subparsers(dest="action", required=True, metavar="ACTION")
    status = replay_actions.add_parser("status", help="recordings done, claimed and left, the fleet's frames a "
                                                      "second, the estimated end, which box holds what")
    status.add_argument("--redis", required=True, help="the fleet's redis://host:port/db")
    status.add_argument("--target", default=defaults.TARGET, help="the fleet's --target (default: ./%(default)s)")
    status.add_argument("--json", action="store_true", help="print it as JSON")

    export = commands.add_parser("export", help="turn a collected dataset into COCO, YOLO, Pascal VOC or Label "
                                                "Studio tasks")
    export.add_argument("dataset", help="the dataset folder (the --target of a run)")
    export.add_argument("--format", required=True, choices=("coco", "yolo", "voc", "labelstudio"))
    export.add_argument("--out", required=True, help="output folder")
    export.add_argument("--with-confidence", action="store_true",
                        help="yolo: end each label line with the confidence (class cx cy w h conf, as Ultralytics' "
                             "save_conf); coco annotations always carry score")
    export.add_argument("--split", type=float, metavar="SHARE",
                        help="yolo: images/{train,val} with this share (0.8) for training, frames of one source "
                             "close in time kept on one side")
    export.add_argument("--image-prefix", default="/data/local-files/?d=images/",
                        help="labelstudio: what each task's image URL starts with, before the file name (default: "
                             "Label Studio's local files, its document root being the --out folder)")

    report = commands.add_parser("report", help="write one HTML page of a dataset: its images with their "
                                                "pre-annotations, and charts")
    report.add_argument("dataset", help="the dataset folder (the --target of a run)")
    report.add_argument("--out", help="the HTML file (default: report.html inside the dataset folder)")
    report.add_argument("--summary", metavar="FILE", help="a run's --summary file: adds what it did not collect")
    report.add_argument("--al-config", metavar="FILE",
                        help="the configuration the run used: adds budget use against each strategy's limits")
    _command_parser(commands, SERVE)
    return parser


def _command_parser(commands: argparse._SubParsersAction, command: Command) -> None:
    """A command whose options `framesift.options` declares: each under its group's heading (but those of the Python
    API alone), with examples at the end."""
    examples = "".join(f"  {example}\n      {what}\n" for example, what in command.examples)
    parser = commands.add_parser(command.name, help=command.about,
                                 description=command.about[0].upper() + command.about[1:] + ".",
                                 epilog=f"examples:\n{examples}", formatter_class=argparse.RawDescriptionHelpFormatter)
    groups = {name: parser.add_argument_group(name, about) for name, about in command.groups.items()}
    for each in command.declared:
        if not each.python_only:
            spellings = (each.name,) if each.positional else each.flags
            groups[each.group].add_argument(*spellings, **_argument(each))


def _argument(declared: Option) -> dict[str, Any]:
    """What `add_argument` is told of a declared option: its kind (a switch, repeatable, a typed value), its
    destination (the `RunOptions` field) and default, and its help with the default."""
    argument: dict[str, Any] = {"help": declared.described().replace("%", "%%")}
    if declared.positional:
        argument["nargs"] = "+" if declared.many else None
    else:
        argument.update(dest=declared.name, default=declared.default)
    if declared.kind is bool:
        argument["action"] = "store_true"
    elif declared.many and not declared.positional:
        argument["action"] = "append"
    elif declared.kind is not str:
        argument["type"] = declared.kind
    for name in ("metavar", "choices"):
        if getattr(declared, name) is not None:
            argument[name] = getattr(declared, name)
    return argument


def main(argv: Sequence[str] | None = None) -> int:
    with StopSignals() as signals:
        args = build_parser().parse_args(argv)
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        from framesift.redaction import RedactingFilter, redact

        for handler in logging.getLogger().handlers:
            handler.addFilter(RedactingFilter())  # no secret reaches the terminal, whoever logged it

        def fail(message: str, code: int) -> int:
            print(f"framesift: {redact(message)}", file=sys.stderr)
            return code

        try:
            return COMMANDS[args.command](args, signals)
        except FramesiftError as error:  # ours: the sentence and the exit code come with it
            return fail(str(error), error.exit_code)
        except Exception as error:  # the last line of defence: one sentence, not a traceback
            logging.getLogger("framesift").debug("unexpected failure", exc_info=True)
            return fail(f"{type(error).__name__}: {error}", EXIT_FAILURE)


def options_of(args: argparse.Namespace) -> RunOptions:
    """The `RunOptions` of a parsed `framesift run` command line."""
    return parsed(RunOptions, args)


def parsed(options: type[Options], args: argparse.Namespace) -> Options:
    """The options dataclass of a parsed command line: its destinations are the fields' names (every field but the
    Python API's alone, left at its default)."""
    return options(**{each.name: getattr(args, each.name) for each in declared(options) if not each.python_only})


def _run(args: argparse.Namespace, signals: StopSignals) -> int:
    from framesift.runner import run

    options = options_of(args)
    summary = run(options, stop=signals.event)
    stream, collected = summary.stats, summary.collected
    said = (f"collected {collected.datapoints_registered} datapoints into {options.target}"
            if options.al_config or options.workflow else "no collection (no --al-config)")
    outbox = collected.target
    if outbox is not None:
        said += f" ({outbox.delivered} delivered, {outbox.pending} pending, {outbox.dead} dead"
        said += f": framesift outbox {outbox.outbox})" if outbox.pending or outbox.dead else ")"
    passed = f", passed over {stream.frames_unsampled} unsampled ones" if stream.frames_unsampled else ""
    print(f"inferred {stream.frames_inferred} frames{passed}, dropped {stream.frames_dropped}; {said}",
          file=sys.stderr)
    if collected.limit_store_unavailable_decisions:
        print(f"framesift: {collected.limit_store_unavailable_decisions} limit decisions were made without Redis "
              f"({collected.limit_store_error})", file=sys.stderr)
    if summary.unwritten is not None:
        print(f"framesift: {summary.unwritten}", file=sys.stderr)
    never = [f"{name} ({url})" for name, url in zip(options.source_names(), options.sources, strict=True)
             if name in stream.sources and not stream.sources[name].ever_connected]
    if never and options.duration is not None:
        raise NeverConnected(f"{' and '.join(never)} never connected in {options.duration:g} s: check the URL")
    if collected.datapoints_failed:
        raise CollectionFailed(f"{collected.datapoints_failed} datapoints could not be written (the last: "
                               f"{collected.last_failure})")
    return EXIT_FAILURE if summary.unwritten is not None else EXIT_OK


def _validate(args: argparse.Namespace, signals: StopSignals) -> int:
    from pathlib import Path

    from framesift.collectors.config.schema import parse_config
    from framesift.documents import read_document
    from framesift.workflows.definition import CollectorStep, is_workflow, parse_workflow

    data = read_document(Path(args.file))
    if is_workflow(data):
        workflow = parse_workflow(data, args.file)
        found = None
        if args.models is not None:
            from framesift.workflows.build import locate_models

            found = locate_models(workflow, args.models)
        collectors = [step.name for step in workflow.order if isinstance(step, CollectorStep)]
        followed = [name for name in collectors if name not in workflow.configurations]
        store = f"; configured by the store named by --al-config: {', '.join(followed)}" if followed else ""
        print(f"valid workflow ({len(workflow.order)} steps, {len(collectors)} collectors{store})")
        if found is not None:
            print("models: " + (", ".join(f"{step} {path}" for step, path in found.items()) or "none to find"))
        return EXIT_OK
    config = parse_config(data, args.file)
    detail = f"{len(config.sampling_strategies)} strategies" if config.enabled else "collection disabled"
    print(f"valid ({detail})")
    return EXIT_OK


def _demo(args: argparse.Namespace, signals: StopSignals) -> int:
    from pathlib import Path

    from framesift.demo import run_demo
    from framesift.report.page import REPORT

    summary = run_demo(args.out, stop=signals.event)
    strategies = ", ".join(f"{name}: {counts.registered}" for name, counts in summary.collected.strategies.items())
    print(f"framesift demo: the bundled shape detector ran on {summary.stats.frames_inferred} frames of "
          f"{args.out}/sample.mp4")
    print(f"collected {summary.collected.datapoints_registered} datapoints ({strategies}) into {args.out}/dataset")
    print(f"  records:     {args.out}/dataset/datapoints.jsonl")
    print(f"  images:      {args.out}/dataset/<batch>/images/, predictions beside them")
    print(f"  every frame: {args.out}/predictions.jsonl; counters: {args.out}/summary.json")
    print(f"next: framesift export {args.out}/dataset --format coco --out coco/")
    print(f"the report of the dataset: open {Path(args.out, 'dataset', REPORT).resolve().as_uri()}")
    return EXIT_OK


def _replay(args: argparse.Namespace, signals: StopSignals) -> int:
    import json

    import redis

    from framesift.collectors.targets import TargetSpec
    from framesift.errors import LimitStoreError
    from framesift.stream.fleet import fleet_status

    try:
        status = fleet_status(args.redis, TargetSpec.parse(args.target).dataset)
    except redis.RedisError as error:
        raise LimitStoreError(f"cannot read the fleet's replay from Redis: {error}") from None
    if args.json:
        print(json.dumps(status, indent=2))
        return EXIT_OK
    total = status["frames_total"]
    rate, left = status["frames_per_second"], status["seconds_left"]
    print(f"recordings: {status['recordings']} ({status['done']} done, {status['claimed']} claimed, "
          f"{len(status['failed'])} failed, {status['left']} left)")
    print(f"frames:     {status['frames']}" + (f" of {total}" if total is not None else "")
          + (f", {rate} a second" if rate is not None else "")
          + (f", about {left} s left" if left is not None else ""))
    print(f"leases:     {status['expired']} expired and not yet taken over, {status['taken_over']} taken over")
    for recording, holder in sorted(status["holders"].items()):
        print(f"  {recording}: {holder['box']}")
    for recording, reason in sorted(status["failed"].items()):
        print(f"  {recording.split(chr(0))[0]}: failed ({reason})")
    return EXIT_OK


def _outbox(args: argparse.Namespace, signals: StopSignals) -> int:
    from pathlib import Path

    from framesift.collectors.targets.outbox import Outbox, describe

    folder = Path(args.folder)
    if not (folder / "pending").is_dir():
        inside = sorted(p.parent.name for p in folder.glob("*/pending") if p.is_dir())
        hint = f"; it holds the outboxes {', '.join(inside)}" if inside else ""
        raise InputError(f"{args.folder} is not an outbox (no pending/ folder){hint}")
    if args.retry_dead:  # takes the outbox's lock: refused (OutboxInUse) while a run delivers it
        with Outbox(folder) as box:
            print(f"moved {box.retry_dead()} dead datapoints back to pending")
    report = describe(folder)
    age = report["oldest_pending_age_s"]
    print(f"pending: {report['pending']} ({report['pending_bytes']} bytes"
          + (f", oldest {age:.0f} s)" if age is not None else ")"))
    for name in report["damaged"]:
        print(f"  {name}: damaged (its metadata cannot be read; the next run moves it to dead/)")
    print(f"dead:    {report['dead']} ({report['dead_bytes']} bytes; they count toward --outbox-max-bytes)")
    for meta in report["dead_letters"]:
        batch = f" (batch {meta['batch']})" if "batch" in meta else ""
        print(f"  {meta['id']}{batch}: {meta.get('dead_reason', 'no reason recorded')}")
    return EXIT_OK


def _export(args: argparse.Namespace, signals: StopSignals) -> int:
    from framesift.dataset.export import export_dataset

    result = export_dataset(args.dataset, args.format, args.out, with_confidence=args.with_confidence,
                            split=args.split, image_prefix=args.image_prefix)
    parts = "".join(f", {count} {part}" for part, count in result.parts.items())
    print(f"exported {result.exported} images to {args.out} ({args.format}{parts})")
    if result.skipped:
        print(f"framesift: skipped {len(result.skipped)} records that cannot be exported:", file=sys.stderr)
        for name, why in result.skipped:
            print(f"  {name}: {why}", file=sys.stderr)
    return EXIT_OK


def _report(args: argparse.Namespace, signals: StopSignals) -> int:
    from framesift.report import write_report

    report = write_report(args.dataset, args.out, args.summary, args.al_config)
    print(f"wrote the report of {report.datapoints} datapoints: open {report.path.resolve().as_uri()}")
    if report.skipped:
        print(f"framesift: skipped {len(report.skipped)} records that cannot be shown:", file=sys.stderr)
        for name, why in report.skipped[:10]:
            print(f"  {name}: {why}", file=sys.stderr)
        if len(report.skipped) > 10:
            print(f"  ... and {len(report.skipped) - 10} more (the report names the first 50)", file=sys.stderr)
    return EXIT_OK


def _config(args: argparse.Namespace, signals: StopSignals) -> int:
    import json
    from contextlib import closing
    from datetime import datetime, timezone
    from pathlib import Path

    from framesift.collectors.config.store import open_store
    from framesift.documents import read_document

    if args.action == "example":
        return _example(args.name)
    with closing(open_store(args.store, api_key=args.api_key)) as store:
        if args.action == "set":
            stored = store.set(args.dataset, read_document(Path(args.file)))
            print(f"version {stored.version} ({stored.sha}) of {args.dataset!r} is in force in {store.name}")
        elif args.action == "get":
            stored = store.get(args.dataset, args.version)
            print(json.dumps(stored.data, indent=2))
            print(f"version {stored.version} ({stored.sha})", file=sys.stderr)
        else:
            for version in store.history(args.dataset):
                when = "" if version.set_at is None else \
                    datetime.fromtimestamp(version.set_at, timezone.utc).isoformat(timespec="seconds")
                print(f"{version.version}\t{version.sha}\t{when}")
    return EXIT_OK


def _example(name: str | None) -> int:
    """`framesift config example [NAME]`: a bundled configuration's text on stdout, or their names."""
    from framesift.configs import named, names

    if name is None:
        print("\n".join(names()))
        return EXIT_OK
    found = named(name)
    if found is None:
        raise InputError(f"no bundled configuration {name!r}: there are {', '.join(names())}")
    sys.stdout.write(found.read_text(encoding="utf-8"))
    return EXIT_OK


class _Version(argparse.Action):
    """`framesift --version`: framesift's version, ONNX Runtime's (the wheel installed) and Python's; worked out
    only when asked (argparse's own action would read the metadata on every start)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any):
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        import platform

        from framesift.models.session import onnxruntime_version
        from framesift.version import __version__

        print(f"framesift {__version__} (onnxruntime {onnxruntime_version() or 'not installed'}, "
              f"Python {platform.python_version()}, {platform.system()} {platform.machine()})")
        parser.exit()


def _serve(args: argparse.Namespace, signals: StopSignals) -> int:
    from framesift.serve import serve

    serve(parsed(ServeOptions, args), stop=signals.event)
    return EXIT_OK


COMMANDS = {"serve": _serve, "run": _run, "validate": _validate, "demo": _demo, "config": _config, "outbox": _outbox,
            "export": _export, "report": _report, "replay": _replay}

if __name__ == "__main__":
    sys.exit(main())

"""The `framesift` command: argument parsing and wiring only; the library does the work.

Exit codes: 0 success (also after an orderly stop by signal); 2 bad usage, invalid configuration, unreadable
model or file; 1 any other failure. Errors are one sentence on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad input from the user (a missing file, a bad value): exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="framesift", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser("validate", help="check an active-learning configuration file")
    validate.add_argument("file", help="JSON or YAML configuration")

    demo = commands.add_parser("demo", help="make a sample video, collect from it, show where to look")
    demo.add_argument("--out", default="framesift-demo", help="folder for the video and the dataset")

    export = commands.add_parser("export", help="turn a collected dataset into COCO, YOLO or Pascal VOC")
    export.add_argument("dataset", help="the dataset folder (the --target of a run)")
    export.add_argument("--format", required=True, choices=("coco", "yolo", "voc"))
    export.add_argument("--out", required=True, help="output folder")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from framesift.collectors.config import ConfigError

    try:
        return COMMANDS[args.command](args)
    except ConfigError as error:
        print(f"framesift: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (UsageError, FileNotFoundError, ValueError) as error:
        print(f"framesift: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK
    except Exception as error:  # the last line of defence: one sentence, not a traceback
        logging.getLogger("framesift").debug("unexpected failure", exc_info=True)
        print(f"framesift: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_FAILURE


def _validate(args: argparse.Namespace) -> int:
    from framesift.collectors.config import load_config

    config = load_config(args.file)
    detail = f"{len(config.sampling_strategies)} strategies" if config.enabled else "collection disabled"
    print(f"valid ({detail})")
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from framesift.demo import run_demo

    counters = run_demo(args.out)
    print(f"collected {counters['datapoints_registered']} datapoints "
          f"({counters['datapoints_sampled']} sampled) into {args.out}/dataset")
    print(f"  records: {args.out}/dataset/datapoints.jsonl")
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    from framesift.collectors.export import export_dataset

    count = export_dataset(args.dataset, args.format, args.out)
    print(f"exported {count} images to {args.out} ({args.format})")
    return EXIT_OK


COMMANDS = {"validate": _validate, "demo": _demo, "export": _export}

if __name__ == "__main__":
    sys.exit(main())

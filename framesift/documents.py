"""JSON and YAML documents — configurations, workflows, a store's versions — read as JSON data, or refused in one
`ConfigError` before anything else looks at them.

YAML is a superset of JSON, read here as JSON's data and nothing more, so that what `validate` accepts a run can
hash, cache and store, and what it refuses a run refuses as fast:
- values are text, numbers, `true`/`false`, `null`, lists and mappings; an unquoted date stays text (as in YAML
  1.2); `!!binary`, `!!set`, `!!omap`, `!!pairs` and `!!timestamp` values are refused;
- every key is text: `1: x` is refused (quote it: `"1": x`);
- aliases (`*name`) are followed, up to `ALIAS_BUDGET` values repeated in all, and never into the value that holds
  them: an alias bomb and `tags: &a [*a]` are refused before the document is built.
In either format a key given twice in one mapping is refused (parsers would keep the last one silently), and so is
a document nested too deeply to be a configuration.

Example:
    >>> parse_document("tags: &t [a, b]\\nmore: *t\\n", "x.yaml")
    {'tags': ['a', 'b'], 'more': ['a', 'b']}
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from framesift.errors import ConfigError, DocumentSyntaxError

ALIAS_BUDGET = 100_000  # values that aliases may repeat in one document, in all
TOO_DEEP = "(top level): nested too deeply to be a configuration"
_NOT_JSON = ("binary", "set", "omap", "pairs", "timestamp")


def read_document(path: Path) -> Any:
    """The data of a JSON or YAML file; `ConfigError` when it cannot be read, is not JSON or YAML, or breaks a
    rule of the module's docstring."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"file not found: {path}"], str(path)) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError([f"cannot read {path}: {error}"], str(path)) from None
    return parse_document(text, str(path))


def parse_document(text: str, source: str, *, json_only: bool = False) -> Any:
    """The data of a document; JSON when `json_only` or `source` ends in `.json`, else YAML. `ConfigError`, naming
    `source`, when it breaks a rule; `DocumentSyntaxError` (`source line 6, column 4: ...`, one line) when it does
    not parse.

    Example:
        >>> parse_document("a: 1\\n  b: 2\\n", "x.yaml")
        Traceback (most recent call last):
        framesift.errors.DocumentSyntaxError: x.yaml line 2, column 4: mapping values are not allowed here
    """
    try:
        if json_only or source.lower().endswith(".json"):
            data, problems = _parse_json(text, source)
        else:
            data, problems = _parse_yaml(text, source)
    except RecursionError:
        raise ConfigError([TOO_DEEP], source) from None
    if problems:
        raise ConfigError(problems, source)
    return data


def quoted(value: Any, limit: int = 40) -> str:
    """`repr(value)`, cut to `limit` characters with the full length noted: an error echoes what it refuses, never
    megabytes of it."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(str(value))} characters)"


# -- JSON -----------------------------------------------------------------------------------------------------------
def _parse_json(text: str, source: str) -> tuple[Any, list[str]]:
    """The JSON document, and a `path: duplicate key 'k'` line for every key an object holds twice;
    `DocumentSyntaxError` when it is not JSON."""
    duplicates: list[tuple[int, str]] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for key, value in items:
            if key in obj:
                duplicates.append((id(obj), key))
            obj[key] = value
        return obj

    try:
        data = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as error:
        raise DocumentSyntaxError(source, error.lineno, error.colno, f"not valid JSON: {error.msg}") from None
    if not duplicates:
        return data, []
    paths = dict(_object_paths(data, ""))
    return data, [f"{paths.get(obj, '?') or '(top level)'}: duplicate key {quoted(key)}" for obj, key in duplicates]


def _object_paths(value: Any, path: str) -> Iterator[tuple[int, str]]:
    """(id, field path) of every object in a parsed JSON document."""
    if isinstance(value, dict):
        yield id(value), path
        for key, item in value.items():
            yield from _object_paths(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _object_paths(item, f"{path}[{i}]")


# -- YAML -----------------------------------------------------------------------------------------------------------
class _Refused(Exception):
    """A rule of the module's docstring broken: its one line."""


def _parse_yaml(text: str, source: str) -> tuple[Any, list[str]]:
    """The YAML document, and a `line N: duplicate key 'k'` line for every key a mapping holds twice (or the one
    line saying why it is refused); `DocumentSyntaxError` when it is not YAML."""
    loader = _JsonLoader(text)
    try:
        return loader.get_single_data(), loader.duplicates
    except _Refused as refused:
        return None, [str(refused)]
    except yaml.MarkedYAMLError as error:
        raise _syntax_error(error, source) from None
    except yaml.YAMLError as error:  # no position to give (a character YAML does not allow, say)
        return None, [f"not valid YAML: {error}".replace("\n", " ")]
    finally:
        loader.dispose()


def _syntax_error(error: yaml.MarkedYAMLError, source: str) -> DocumentSyntaxError:
    """PyYAML's several lines (naming `<unicode string>`) as one: where, what, and what was being read."""
    mark = error.problem_mark or error.context_mark
    assert mark is not None  # PyYAML's parser and scanner always give one
    problem = error.problem or "not valid YAML"
    if error.context:
        context = error.context_mark
        where = "" if context is None or (context.line, context.column) == (mark.line, mark.column) else \
            f" at line {context.line + 1}, column {context.column + 1}"
        problem += f" ({error.context}{where})"
    return DocumentSyntaxError(source, mark.line + 1, mark.column + 1, problem)


def _line(node: yaml.Node) -> str:
    return f"line {node.start_mark.line + 1}"


class _JsonLoader(yaml.SafeLoader):
    """PyYAML's safe loader, building JSON's data only (see the module's docstring)."""

    yaml_implicit_resolvers = {first: [(tag, regexp) for tag, regexp in resolvers if not tag.endswith(":timestamp")]
                               for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}

    def __init__(self, text: str):
        super().__init__(text)
        self.duplicates: list[str] = []

    def get_single_node(self) -> Any:
        node = super().get_single_node()
        if node is not None:
            _check_aliases(node)
        return node

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[str] = set()
        for key_node, _ in node.value:  # the keys written here (a merge `<<` may repeat a merged one on purpose)
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    self.duplicates.append(f"{_line(key_node)}: duplicate key {quoted(key_node.value)}")
                seen.add(key_node.value)
        self.flatten_mapping(node)
        for key_node, _ in node.value:  # merged keys as well
            if key_node.tag != "tag:yaml.org,2002:str":
                shown = f"the {key_node.tag.rpartition(':')[2]} {key_node.value[:40]}" \
                    if isinstance(key_node, yaml.ScalarNode) else "a list or a mapping"
                raise _Refused(f"{_line(key_node)}: a key must be text, not {shown} (quote it)")
        return yaml.constructor.BaseConstructor.construct_mapping(self, node, deep=deep)

    def refuse(self, node: Any) -> Any:
        kind = node.tag.rpartition(":")[2]
        raise _Refused(f"{_line(node)}: a !!{kind} value is not JSON data (framesift reads YAML as text, numbers, "
                       "true/false, null, lists and mappings)")


for _kind in _NOT_JSON:
    _JsonLoader.add_constructor(f"tag:yaml.org,2002:{_kind}", _JsonLoader.refuse)


def _check_aliases(root: yaml.Node) -> None:
    """Refuse a document whose aliases repeat more than `ALIAS_BUDGET` values, or lead into the value that holds
    them; iterative, each node looked at once (its expanded size kept), so a bomb costs no more than its text."""
    sizes: dict[int, int] = {}  # node -> how many values it holds once its aliases are replaced
    open_nodes: set[int] = set()  # the nodes whose values are being counted: the path from the root
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, counted = stack.pop()
        if counted:
            sizes[id(node)] = min(1 + sum(sizes[id(child)] for child in _children(node)), 1 << 62)
            open_nodes.discard(id(node))
        elif id(node) in open_nodes:
            raise _Refused(f"{_line(node)}: an alias leads into the value that holds it (a circular alias)")
        elif id(node) not in sizes:
            open_nodes.add(id(node))
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node))
    repeated = sizes[id(root)] - len(sizes)
    if repeated > ALIAS_BUDGET:
        raise _Refused(f"(top level): its aliases repeat {repeated:,} values, more than the {ALIAS_BUDGET:,} "
                       "framesift expands (an alias bomb?)")


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []

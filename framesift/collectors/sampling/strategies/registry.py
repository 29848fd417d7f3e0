"""The registry of sampling strategies: a configuration's `sampling_strategies` know the types registered here.

The six of framesift register themselves, one file each in this package; a strategy of yours registers with the
same decorator (`@register`) before a configuration naming its type is validated (docs/plugins/strategy.md), or,
for the command line, from a module a package names in the `framesift.strategies` entry point group (imported
the first time the registered strategies are asked for).

Example:
    >>> "new_objects" in strategy_types()
    True
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import Field

from framesift.collectors.sampling.strategies.base import Strategy
from framesift.errors import InputError
from framesift.plugins import PluginGroup

S = TypeVar("S", bound=Strategy)

ENTRY_POINTS = "framesift.strategies"  # a package's entry points here name the modules registering its strategies
_REGISTERED: dict[str, type[Strategy]] = {}  # type -> its model, in the order registered
_PLUGINS = PluginGroup(ENTRY_POINTS, "sampling strategy", InputError)


def register(strategy: type[S]) -> type[S]:
    """Make a configuration know `strategy` (a `Strategy` subclass whose `type` is one `Literal` string); a class
    decorator. Raises `TypeError` for a class that cannot be one, `ValueError` for a type already registered."""
    kind = type_of(strategy)
    if strategy.chance_field not in strategy.model_fields:
        raise TypeError(f"the strategy {strategy.__qualname__} has no field {strategy.chance_field!r} (the "
                        "probability of its draw: declare it, or name another in chance_field)")
    if _REGISTERED.get(kind, strategy) is not strategy:
        raise ValueError(f"a strategy of type {kind!r} is already registered ({_REGISTERED[kind].__qualname__})")
    _REGISTERED[kind] = strategy
    return strategy


def unregister(strategy: type[Strategy]) -> None:
    """Forget a registered strategy (a plug-in's test cleans up after itself); configurations naming it are refused
    from then on."""
    if _REGISTERED.get(type_of(strategy)) is strategy:
        del _REGISTERED[type_of(strategy)]


def registered() -> tuple[type[Strategy], ...]:
    """The strategies a configuration knows now, in the order registered (framesift's six first)."""
    return tuple(_discover().values())


def strategy_types() -> tuple[str, ...]:
    """The types a configuration's strategies may have now."""
    return tuple(_discover())


def _discover() -> dict[str, type[Strategy]]:
    """The registered strategies, the `framesift.strategies` entry points' modules imported the first time
    (`InputError` when one cannot be)."""
    _PLUGINS.load()
    return _REGISTERED


def type_of(strategy: type[Any]) -> str:
    """The one type a `Strategy` subclass declares (`type: Literal["random"]`)."""
    field = strategy.model_fields.get("type") if isinstance(strategy, type) and issubclass(strategy, Strategy) \
        else None
    kinds = get_args(field.annotation) if field is not None and get_origin(field.annotation) is Literal else ()
    if len(kinds) != 1 or not isinstance(kinds[0], str):
        raise TypeError(f"{getattr(strategy, '__qualname__', strategy)!r} is no strategy: a Strategy subclass "
                        "declares its type as type: Literal[\"<its type>\"]")
    return kinds[0]


def strategy_union(strategies: tuple[type[Strategy], ...]) -> Any:
    """The pydantic type of one configured strategy among `strategies`, told apart by its `type`."""
    return Annotated[Union[strategies], Field(discriminator="type")]  # noqa: UP007 (a union built at run time)

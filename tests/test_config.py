"""SPEC §1: every validation rule, with the message a user sees."""

from __future__ import annotations

import json
from importlib.resources import files

import pytest

from framesift.collectors.config.schema import (
    ConfigError,
    active_learning_disabled_by_env,
    load_config,
    parse_config,
)
from framesift.collectors.sampling.strategies import strategy_types


def valid(**overrides):
    config = {
        "enabled": True,
        "persist_predictions": True,
        "sampling_strategies": [{"name": "r", "type": "random", "traffic_percentage": 0.5}],
        "batching_strategy": {"batches_name_prefix": "batch", "recreation_interval": "daily"},
    }
    config.update(overrides)
    return config


def strategy(**fields):
    return valid(sampling_strategies=[{"name": "s", **fields}])


def problems(data) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        parse_config(data)
    return raised.value.problems


def test_minimal_disabled_configuration_is_valid():
    config = parse_config({"enabled": False})
    assert config.enabled is False and config.sampling_strategies == []


def test_required_fields_when_enabled_are_each_listed():
    assert problems({"enabled": True}) == [
        "persist_predictions: required when enabled",
        "sampling_strategies: required when enabled",
        "batching_strategy: required when enabled",
    ]


def test_enabled_is_required_and_must_be_a_boolean():
    assert problems({}) == ["enabled: required"]
    assert problems({"enabled": "yes"}) == ["enabled: must be a valid boolean"]


def test_empty_strategy_list_is_refused_when_enabled():
    assert "sampling_strategies: must not be empty when enabled" in problems(valid(sampling_strategies=[]))


def test_unknown_keys_are_errors_except_the_target_fields():
    assert problems(valid(enable_sampling=True)) == ["enable_sampling: unknown field"]
    assert problems(strategy(type="random", traffic_percentage=1, tresh=0.1)) == \
        ["sampling_strategies[0].tresh: unknown field"]
    config = parse_config(valid(target_workspace="acme", target_project="people"))
    assert (config.target_workspace, config.target_project) == ("acme", "people")


def test_errors_are_listed_by_field_path_all_at_once():
    data = valid(sampling_strategies=[
        {"name": "a", "type": "random", "traffic_percentage": 0.5},
        {"name": "b", "type": "close_to_threshold", "threshold": 0.5, "epsilon": 1.5, "probability": 1},
    ], jpeg_compression_level=0)
    assert problems(data) == [
        "sampling_strategies[1].epsilon: must be <= 1.0",
        "jpeg_compression_level: must be >= 1",
    ]


@pytest.mark.parametrize("field", ["traffic_percentage"])
@pytest.mark.parametrize("value,message", [(-0.1, "must be >= 0.0"), (1.01, "must be <= 1.0")])
def test_random_traffic_percentage_range(field, value, message):
    assert problems(strategy(type="random", **{field: value})) == [f"sampling_strategies[0].{field}: {message}"]


@pytest.mark.parametrize("field", ["threshold", "epsilon", "probability"])
def test_close_to_threshold_ranges(field):
    fields = {"type": "close_to_threshold", "threshold": 0.5, "epsilon": 0.1, "probability": 1.0, field: 2}
    assert problems(strategy(**fields)) == [f"sampling_strategies[0].{field}: must be <= 1.0"]


def test_close_to_threshold_requires_its_fields_and_minimum_objects_at_least_one():
    assert problems(strategy(type="close_to_threshold")) == [
        "sampling_strategies[0].threshold: required",
        "sampling_strategies[0].epsilon: required",
        "sampling_strategies[0].probability: required",
    ]
    fields = {"type": "close_to_threshold", "threshold": 0.5, "epsilon": 0.1, "probability": 1.0,
              "minimum_objects_close_to_threshold": 0}
    assert problems(strategy(**fields)) == \
        ["sampling_strategies[0].minimum_objects_close_to_threshold: must be >= 1"]


def test_close_to_threshold_defaults():
    s = parse_config(strategy(type="close_to_threshold", threshold=0.5, epsilon=0.1, probability=1)) \
        .sampling_strategies[0]
    assert (s.selected_class_names, s.minimum_objects_close_to_threshold, s.only_top_classes) == (None, 1, True)


def test_classes_based_needs_a_non_empty_class_list():
    assert problems(strategy(type="classes_based", selected_class_names=[], probability=1)) == \
        ["sampling_strategies[0].selected_class_names: must have at least 1 item(s)"]
    assert problems(strategy(type="classes_based", probability=1)) == \
        ["sampling_strategies[0].selected_class_names: required"]


def test_detections_number_based_bounds():
    assert problems(strategy(type="detections_number_based", probability=1, more_than=-1)) == \
        ["sampling_strategies[0].more_than: must be >= 0"]
    assert problems(strategy(type="detections_number_based", probability=1, more_than=5, less_than=5)) == \
        ["sampling_strategies[0]: more_than must be smaller than less_than"]
    parse_config(strategy(type="detections_number_based", probability=1, more_than=4, less_than=5))


def test_unknown_strategy_type_is_an_error_not_a_skip():
    assert problems(strategy(type="entropy")) == [
        f"sampling_strategies[0]: unknown strategy type 'entropy' (expected one of {', '.join(strategy_types())})"
    ]


def test_strategy_names_unique_case_sensitive_and_non_empty():
    same = [{"name": "a", "type": "random", "traffic_percentage": 1}] * 2
    assert problems(valid(sampling_strategies=same)) == \
        ["sampling_strategies: strategy name 'a' is used twice (names must be unique)"]
    parse_config(valid(sampling_strategies=[{"name": "a", "type": "random", "traffic_percentage": 1},
                                            {"name": "A", "type": "random", "traffic_percentage": 1}]))
    assert problems(strategy(name="", type="random", traffic_percentage=1)) == \
        ["sampling_strategies[0].name: must not be empty"]


def test_limits_types_and_values():
    limits = [{"type": "weekly", "value": 1}, {"type": "daily", "value": 0}]
    assert problems(strategy(type="random", traffic_percentage=1, limits=limits)) == [
        "sampling_strategies[0].limits[0].type: must be one of 'minutely', 'hourly' or 'daily'",
        "sampling_strategies[0].limits[1].value: must be > 0",
    ]


@pytest.mark.parametrize("prefix", ["../escape", ".hidden", "a/b", "", "x" * 65, "white space", "ok\n"])
def test_batch_prefix_cannot_escape_the_target_folder(prefix):
    data = valid(batching_strategy={"batches_name_prefix": prefix, "recreation_interval": "never"})
    assert problems(data) == ["batching_strategy.batches_name_prefix: must be 1-64 characters from "
                              "A-Z a-z 0-9 - _ . and not start with '.'"]


def test_batching_interval_and_cap():
    data = valid(batching_strategy={"batches_name_prefix": "p", "recreation_interval": "hourly",
                                    "max_batch_images": 0})
    assert problems(data) == [
        "batching_strategy.recreation_interval: must be one of 'never', 'daily', 'weekly' or 'monthly'",
        "batching_strategy.max_batch_images: must be > 0",
    ]


def test_max_image_size_is_two_positive_integers_height_first():
    assert parse_config(valid(max_image_size=[480, 640])).max_image_size == [480, 640]
    assert problems(valid(max_image_size=[480])) == ["max_image_size: must have at least 2 item(s)"]
    assert problems(valid(max_image_size=[480, 0])) == ["max_image_size[1]: must be > 0"]


@pytest.mark.parametrize("tag,ok", [("a-Z_0:/.[]<>{}@", True), ("x" * 64, True), ("x" * 65, False),
                                    ("", False), ("has space", False), ("ümlaut", False), ("ok\n", False)])
def test_tag_rule(tag, ok):
    for data, path in ((valid(tags=[tag]), "tags[0]"),
                       (strategy(type="random", traffic_percentage=1, tags=[tag]), "sampling_strategies[0].tags[0]")):
        if ok:
            parse_config(data)
        else:
            assert problems(data) == [f"{path}: must be 1-64 characters from a-z A-Z 0-9 - _ : / . [ ] < > {{ }} @"]


def test_json_and_yaml_files_are_both_read(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps(valid()))
    (tmp_path / "c.yaml").write_text("enabled: false\n")
    assert load_config(tmp_path / "c.json").enabled
    assert not load_config(tmp_path / "c.yaml").enabled
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(tmp_path / "broken.json")


def test_every_bundled_example_configuration_is_valid():
    names = [p.name for p in files("framesift.configs").iterdir() if p.name.endswith((".json", ".yaml"))
             and not p.name.startswith("workflow_")]  # workflows: tests/test_workflows.py
    assert len(names) >= 5
    for name in names:
        assert load_config(files("framesift.configs") / name).enabled


@pytest.mark.parametrize("value,off", [("false", True), ("FALSE", True), ("0", True), ("No", True), ("off", True),
                                       ("true", False), ("", False), ("1", False)])
def test_environment_kill_switch(value, off):
    assert active_learning_disabled_by_env({"ACTIVE_LEARNING_ENABLED": value}) is off


# -- hostile input: refused in one sentence per problem, quickly, never as a traceback ------------------------------
def test_a_key_given_twice_is_refused_not_silently_overwritten(tmp_path):
    text = json.dumps(valid())[:-1] + ', "enabled": false}'  # JSON parsers keep the last value: collection off
    text = text.replace('"type": "random"', '"type": "random", "type": "classes_based"')
    (tmp_path / "twice.json").write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_config(tmp_path / "twice.json")
    assert sorted(raised.value.problems) == ["(top level): duplicate key 'enabled'",
                                             "sampling_strategies[0]: duplicate key 'type'"]
    (tmp_path / "twice.yaml").write_text("enabled: true\npersist_predictions: true\nenabled: false\n")
    with pytest.raises(ConfigError) as raised:
        load_config(tmp_path / "twice.yaml")
    assert raised.value.problems == ["line 3: duplicate key 'enabled'"]


@pytest.mark.parametrize(("name", "text"), [("deep.json", "[" * 100_000 + "]" * 100_000),
                                            ("deep.yaml", "tags: " + "[" * 1000 + "]" * 1000),
                                            ("deep1000.json", '{"enabled": true, "tags": ' + "[" * 1000 + "]" * 1000
                                             + "}")])
def test_deep_nesting_is_a_configuration_error(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_config(tmp_path / name)
    assert raised.value.problems == ["(top level): nested too deeply to be a configuration"]


@pytest.mark.timeout(20)  # a quadratic error path (the redaction of the message) took 21 s at 100 kB, hours at 1 MB
def test_a_megabyte_strategy_type_is_refused_quickly_and_quoted_short():
    [problem] = problems(strategy(type="x" * 1_000_000))
    assert problem.startswith("sampling_strategies[0]: unknown strategy type 'xxxx")
    assert "(1000000 characters)" in problem and len(problem) < 240


def test_yaml_anchors_aliases_and_merge_keys_work_within_their_budget(tmp_path):
    """The reader that refuses alias bombs keeps the YAML people write: a block shared by aliases and merged."""
    (tmp_path / "al.yaml").write_text("""
enabled: true
persist_predictions: false
sampling_strategies:
  - &base {name: first, type: random, traffic_percentage: 0.5, limits: &limits [{type: minutely, value: 5}]}
  - <<: *base
    name: second
    tags: [2024-01-01]
batching_strategy: {batches_name_prefix: b, recreation_interval: never}
tags: &tags [a, b]
""")
    config = load_config(tmp_path / "al.yaml")
    first, second = config.sampling_strategies
    assert (second.name, second.traffic_percentage, second.tags) == ("second", 0.5, ["2024-01-01"])
    assert first.limits == second.limits and first.limits[0].value == 5

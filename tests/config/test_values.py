from __future__ import annotations

import math

import pytest

from motanmesh.config import parse_export
from motanmesh.config.errors import format_key_path
from motanmesh.config.values import to_bool, to_int, to_list, to_param, to_port


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("motan2:9982", ("motan2", 9982)),
        ("motan:8002", ("motan", 8002)),
        ("9990", ("motan2", 9990)),
        (":9990", ("motan2", 9990)),
        (" http : 8080 ", ("http", 8080)),
        ("", ("motan2", 9982)),
    ],
)
def test_parse_export(text: str, expected: tuple[str, int]) -> None:
    assert parse_export(text) == expected


@pytest.mark.parametrize("text", ["motan2:", "motan2", "a:b:1", "motan2:0", "1x:80", "-1"])
def test_parse_export_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="got"):
        parse_export(text)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (True, "true"),
        (False, "false"),
        (42, "42"),
        (1.5, "1.5"),
        (2.0, "2"),
        (1e20, "100000000000000000000"),
        (1e-7, "0.0000001"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (math.nan, "NaN"),
        ("x", "x"),
        (["a", 1, True, None], "a,1,true"),
    ],
)
def test_to_param(value: object, expected: str | None) -> None:
    assert to_param(value) == expected


def test_to_param_rejects_mappings_and_nested_lists() -> None:
    with pytest.raises(ValueError, match="got a mapping"):
        to_param({"a": 1})
    with pytest.raises(ValueError, match="nested list"):
        to_param([[1]])


def test_to_int() -> None:
    assert to_int(5) == 5
    assert to_int(" -7 ") == -7
    assert to_int(3.0) == 3
    for bad in (True, 1.5, "1e3", "", None, [1]):
        with pytest.raises(ValueError, match="expected an integer"):
            to_int(bad)
    with pytest.raises(ValueError, match=">= 1"):
        to_int(0, minimum=1)


def test_to_port() -> None:
    assert to_port("65535") == 65535
    assert to_port(0, allow_zero=True) == 0
    with pytest.raises(ValueError, match=r"1\.\.65535, got 0"):
        to_port(0)


def test_to_bool() -> None:
    assert to_bool(True) is True
    assert to_bool("T") is True
    assert to_bool(0) is False
    assert to_bool("false") is False
    for bad in ("yes", 2, 1.0, None):
        with pytest.raises(ValueError, match="expected a boolean"):
            to_bool(bad)


def test_to_list() -> None:
    assert to_list(None) == []
    assert to_list(" a, ,b ") == ["a", "b"]
    assert to_list(["a", "b"]) == ["a", "b"]


def test_format_key_path() -> None:
    assert format_key_path(("import-refer", 1)) == "import-refer[1]"
    assert format_key_path(("metrics", "graphite", 0, "name")) == "metrics.graphite[0].name"
    assert format_key_path("already.text") == "already.text"
    assert format_key_path(()) == ""

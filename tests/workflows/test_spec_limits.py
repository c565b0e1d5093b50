"""validate_spec on hostile or malformed bodies: limits first, then JSON errors, never a crash."""
import json
import time

from workflows.spec import Limits, validate_spec

from .spec_samples import codes_at, linear_spec


def test_it_refuses_a_body_over_the_size_limit():
    body = json.dumps(linear_spec()).encode()

    report = validate_spec(body, limits=Limits(body_bytes=len(body) - 1))

    assert codes_at(report) == {("$", "limit.body_size")}
    assert validate_spec(body, limits=Limits(body_bytes=len(body))).valid


def test_it_measures_the_size_of_a_parsed_dict_too():
    spec = linear_spec()
    spec["description"] = "x" * 5000

    assert codes_at(validate_spec(spec, limits=Limits(body_bytes=4000))) == {("$", "limit.body_size")}


def test_it_refuses_100000_nested_brackets_quickly():
    started = time.perf_counter()

    reports = [validate_spec(b"[" * 100_000), validate_spec("{\"a\":" * 100_000 + "1" + "}" * 100_000)]

    assert time.perf_counter() - started < 1
    for report in reports:
        assert codes_at(report) == {("$", "limit.depth")}


def test_it_refuses_deep_nesting_in_a_parsed_dict():
    deep = inner = {}
    for _ in range(100_000):
        inner["a"] = {}
        inner = inner["a"]

    [error] = validate_spec(deep).errors

    assert error.code == "limit.depth"
    assert error.path == "$" + ".a" * 32


def test_it_allows_nesting_up_to_the_limit_and_ignores_brackets_in_strings():
    spec = linear_spec()
    # $ > sources > writer > options are 4 levels; 28 nested arrays make 32
    spec["sources"]["writer"]["options"]["nested"] = json.loads("[" * 28 + "]" * 28)
    spec["description"] = "[[[[" * 50

    assert validate_spec(json.dumps(spec)).valid
    spec["sources"]["writer"]["options"]["nested"] = json.loads("[" * 29 + "]" * 29)
    assert codes_at(validate_spec(json.dumps(spec))) == {("$", "limit.depth")}


def test_it_refuses_too_many_nodes():
    spec = linear_spec()
    spec["nodes"] += [{"id": f"n{i}", "type": "transform", "template": "x"} for i in range(10)]

    report = validate_spec(spec, limits=Limits(nodes=10))

    [error] = report.errors
    assert (error.path, error.code) == ("$.nodes", "limit.nodes")
    assert "14" in error.message and "10" in error.message


def test_it_refuses_long_strings_and_names_their_path():
    spec = linear_spec()
    spec["nodes"][2]["prompt"] = "é" * 60  # 120 bytes of UTF-8
    spec["nodes"][1]["prompt"] = "e" * 100

    report = validate_spec(spec, limits=Limits(string_bytes=100))

    assert codes_at(report) == {("$.nodes[2].prompt", "limit.string_length")}


def test_it_reports_invalid_json_with_line_and_column():
    [error] = validate_spec(b'{\n  "version": 1,\n  "name": oops\n}').errors

    assert error.code == "json.invalid"
    assert "line 3" in error.message and "column 11" in error.message


def test_it_reports_invalid_utf8():
    [error] = validate_spec(b'{"name": "caf\xe9"}').errors

    assert (error.path, error.code) == ("$", "json.encoding")


def test_it_refuses_nan_and_infinity():
    assert codes_at(validate_spec('{"version": NaN}')) == {("$", "json.invalid")}
    found = codes_at(validate_spec({**linear_spec(), "settings": {"timeout_s": float("inf")}}))
    assert ("$.settings.timeout_s", "json.invalid") in found


def test_it_refuses_values_postgres_cannot_store():
    spec = linear_spec()
    spec["description"] = "nul \u0000 here"
    spec["name"] = "lone \ud800 surrogate"

    found = codes_at(validate_spec(json.dumps(spec)))

    assert {("$.description", "json.invalid"), ("$.name", "json.invalid")} <= found


def test_it_refuses_a_top_level_that_is_not_an_object():
    for body, kind in [(b"[]", "an array"), (b"5", "a number"), (b"null", "null"), ('"spec"', "a string")]:
        [error] = validate_spec(body).errors
        assert (error.path, error.code) == ("$", "json.not_object")
        assert kind in error.message
    assert codes_at(validate_spec(None)) == {("$", "json.not_object")}


def test_it_refuses_python_values_that_are_not_json():
    found = codes_at(validate_spec({"version": 1, "tags": {"a", "b"}, 3: "x"}))

    assert found == {("$.tags", "json.invalid"), ("$", "json.invalid")}


def test_it_survives_huge_numbers_and_unterminated_strings():
    assert codes_at(validate_spec(b'{"version": ' + b"9" * 5000 + b"}")) == {("$", "json.invalid")}
    started = time.perf_counter()
    assert codes_at(validate_spec(b'{"a": "' + b'\\"' * 400_000)) == {("$", "json.invalid")}
    assert time.perf_counter() - started < 1

"""Response-schema validation and normalisation (codecs/schema.py)."""
from __future__ import annotations

import copy

import pytest

from gateway.codecs.schema import MAX_DEPTH, MAX_NODES, normalize_tool_schema, validate_response_schema
from gateway.errors import InvalidRequest, InvalidResponseFormatSchema

F = "generationConfig.responseSchema"


def ok(schema):
    return validate_response_schema(schema, field=F)


def bad(schema) -> InvalidResponseFormatSchema:
    with pytest.raises(InvalidResponseFormatSchema) as exc:
        ok(schema)
    err = exc.value
    assert err.message.startswith(f"invalid_response_format_schema: {err.field}: ")
    assert err.code == "invalid_response_format_schema" and err.status == 400
    return err


def test_seed_example_required_field_missing_from_properties():
    err = bad({"type": "object", "properties": {"answer": {"type": "string"}},
               "required": ["answer", "confidence"]})
    assert err.field == F + ".required[1]"
    assert "'confidence' is required but not defined in properties" in err.message


def test_the_seed_schema_is_fine():
    schema = {"type": "object", "properties": {"answer": {"type": "string"},
                                               "confidence": {"type": "number"}},
              "required": ["answer", "confidence"]}
    assert ok(schema) == schema


def test_uppercase_openapi_types_become_json_schema():
    assert ok({"type": "OBJECT", "properties": {"a": {"type": "ARRAY", "items": {"type": "Integer"}},
                                                "b": {"type": "BOOLEAN"}, "c": {"type": "TYPE_UNSPECIFIED"}}}) == \
        {"type": "object", "properties": {"a": {"type": "array", "items": {"type": "integer"}},
                                          "b": {"type": "boolean"}, "c": {}}}


def test_nullable_becomes_a_null_type():
    assert ok({"type": "STRING", "nullable": True}) == {"type": ["string", "null"]}
    assert ok({"type": ["string", "integer"], "nullable": True}) == {"type": ["string", "integer", "null"]}
    assert ok({"anyOf": [{"type": "STRING"}], "nullable": True}) == \
        {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert ok({"nullable": True}) == {}
    assert ok({"type": "STRING", "nullable": False}) == {"type": "string"}
    assert bad({"type": "STRING", "nullable": "yes"}).field == F + ".nullable"


def test_property_ordering_reorders_and_is_dropped():
    out = ok({"type": "OBJECT", "properties": {"a": {}, "b": {}, "c": {}}, "propertyOrdering": ["c", "a"]})
    assert list(out["properties"]) == ["c", "a", "b"] and "propertyOrdering" not in out
    assert bad({"type": "OBJECT", "properties": {"a": {}}, "propertyOrdering": ["z"]}).field == \
        F + ".propertyOrdering[0]"


def test_refs_and_defs():
    schema = {"$defs": {"Step": {"type": "object", "properties": {"n": {"type": "integer"}}}},
              "type": "object", "properties": {"steps": {"type": "array", "items": {"$ref": "#/$defs/Step"}},
                                               "self": {"$ref": "#"}}}
    assert ok(schema) == schema
    assert "not a local reference" in bad({"$ref": "https://example.com/s.json"}).message
    assert "does not resolve" in bad({"type": "object", "properties": {"a": {"$ref": "#/$defs/Nope"}}}).message
    assert ok({"definitions": {"a/b": {}}, "properties": {"x": {"$ref": "#/definitions/a~1b"}}})


@pytest.mark.parametrize("schema, field, words", [
    ({"type": "strng"}, F + ".type", "is not a JSON Schema type"),
    ({"type": 3}, F + ".type", "type name"),
    ({"type": []}, F + ".type", "type name"),
    ({"type": ["string", "STRING"]}, F + ".type", "twice"),
    ({"type": "object", "properties": []}, F + ".properties", "schemas"),
    ({"type": "object", "properties": {"a": 3}}, F + ".properties.a", "schema object"),
    ({"type": "object", "properties": {"a b": {"type": "x"}}}, F + '.properties["a b"].type', "JSON Schema type"),
    ({"type": "object", "required": "a"}, F + ".required", "array of property names"),
    ({"type": "object", "properties": {"a": {}}, "required": ["a", "a"]}, F + ".required", "twice"),
    ({"type": "string", "properties": {}}, F + ".properties", "not object"),
    ({"type": "object", "items": {}}, F + ".items", "not array"),
    ({"type": "array", "items": [{}]}, F + ".items", "schema object"),
    ({"enum": []}, F + ".enum", "non-empty"),
    ({"type": "string", "enum": ["a", 1]}, F + ".enum[1]", "does not match"),
    ({"anyOf": []}, F + ".anyOf", "non-empty array"),
    ({"anyOf": [{}, "x"]}, F + ".anyOf[1]", "schema object"),
    ({"minimum": "1"}, F + ".minimum", "number"),
    ({"multipleOf": 0}, F + ".multipleOf", "greater than 0"),
    ({"minItems": -1}, F + ".minItems", "non-negative integer"),
    ({"minLength": 5, "maxLength": 2}, F + ".minLength", "above maxLength"),
    ({"description": 5}, F + ".description", "string"),
    ([], F, "JSON schema object"),
    ("OBJECT", F, "JSON schema object"),
])
def test_invalid_schemas_name_the_path(schema, field, words):
    err = bad(schema)
    assert err.field == field
    assert words in err.message


def test_counts_as_int64_strings_and_bounds():
    assert ok({"type": "ARRAY", "minItems": "1", "maxItems": "3", "items": {}}) == \
        {"type": "array", "minItems": 1, "maxItems": 3, "items": {}}
    assert ok({"minimum": 1, "maximum": 1.5, "exclusiveMinimum": True}) == \
        {"minimum": 1, "maximum": 1.5, "exclusiveMinimum": True}


def test_enum_values_fit_their_type():
    assert ok({"type": "INTEGER", "enum": [1, 2.0]})
    assert ok({"type": ["string", "null"], "enum": ["a", None]})
    assert ok({"enum": [1, "a", None, {"x": 1}]})  # no type: anything goes


def test_unknown_keywords_are_kept_and_example_dropped():
    schema = {"type": "object", "title": "T", "x-vendor": {"a": 1}, "discriminator": {"propertyName": "k"},
              "example": {"a": 1}, "examples": [{"a": 1}], "properties": {}}
    assert ok(schema) == {"type": "object", "title": "T", "x-vendor": {"a": 1},
                          "discriminator": {"propertyName": "k"}, "examples": [{"a": 1}], "properties": {}}


def test_boolean_subschemas_are_json_schema():
    assert ok({"type": "object", "properties": {"a": True}, "additionalProperties": False}) == \
        {"type": "object", "properties": {"a": True}, "additionalProperties": False}


def test_depth_and_size_limits():
    deep: dict = {"type": "string"}
    for _ in range(MAX_DEPTH + 1):
        deep = {"type": "array", "items": deep}
    assert "deeper than" in bad(deep).message
    wide = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(MAX_NODES)}}
    assert "more than" in bad(wide).message
    ok({"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(MAX_NODES - 1)}})


def test_input_is_not_modified():
    schema = {"type": "OBJECT", "nullable": True, "properties": {"b": {"type": "STRING"}, "a": {}},
              "propertyOrdering": ["a", "b"]}
    before = copy.deepcopy(schema)
    ok(schema)
    assert schema == before


def test_tool_schemas_are_normalised_leniently():
    f = "tools[0].parameters"
    assert normalize_tool_schema({"type": "OBJECT", "required": ["ghost"], "items": {}}, field=f) == \
        {"type": "object", "required": ["ghost"], "items": {}}
    with pytest.raises(InvalidRequest) as exc:
        normalize_tool_schema({"type": "OBJCT"}, field=f)
    assert type(exc.value) is InvalidRequest and exc.value.field == f + ".type"
    with pytest.raises(InvalidRequest):
        normalize_tool_schema(None, field=f)

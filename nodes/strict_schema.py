"""Fit a user's JSON Schema into OpenAI strict structured outputs, and fit the answer back.

Tierwise asks OpenAI-compatible endpoints for ``response_format: {"type": "json_schema",
"json_schema": {..., "schema": <strict schema>, "strict": true}}``. Strict mode accepts only a subset
of JSON Schema (OpenAI's structured-outputs guide; our notes: gateways-and-openai.md §5): every
object must list all its properties in ``required`` and set ``additionalProperties: false``,
optional fields are written as nullable, a handful of keywords are not understood at all, and
there are size limits.
This module is in charge of that boundary, and of nothing else:

* :func:`check_user_schema` says whether a request's schema is valid JSON Schema (draft 2020-12)
  with an object at its root, so a bad schema is answered with a 422 before any model is called.
* :func:`to_strict` builds the strict copy that is sent upstream. Keywords strict mode cannot take
  but which only narrow the values (``minLength``, ``uniqueItems``, unsupported ``format`` values,
  ...) are dropped from the copy; keywords that would change the *shape* of the answer, or that
  the subset cannot express at all (``allOf``, ``not``, free-form maps, any-value schemas, the
  size limits, ...) are rejected with :class:`~nodes.errors.UnsupportedSchema`, one
  :class:`~nodes.errors.FieldIssue` per problem, each telling a no-code user what to change.
  Recursion (``$ref`` back into an enclosing definition or ``"#"``) is supported when it passes
  through ``properties`` or ``items`` and a finite value can end it; a loop of ``$ref`` and
  ``anyOf`` alone, recursion that every value must follow forever, and ``$ref`` chains that fill
  in deeper than :data:`MAX_JSON_DEPTH` are rejected too, since a validator following them never
  returns (or exhausts the stack). Every walk here is iterative for the same reason.
* :func:`restore_optional` turns the model's strict answer back into something the user's
  ORIGINAL schema accepts: strict mode made every optional property nullable and always present,
  so an optional key the model left ``null`` is removed again.

The strict copy is deliberately looser than the original (dropped keywords, ``oneOf`` sent as
``anyOf``); the service validates every answer against the original schema afterwards (with
jsonschema's draft 2020-12 validator, its patterns on RE2: ``nodes.patterns``), and a failed
validation is repaired or escalated there.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NoReturn
from urllib.parse import unquote, urljoin

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError, ValidationError
from jsonschema_specifications import REGISTRY as SPECIFICATIONS  # type: ignore[import-untyped]
from referencing.exceptions import Unresolvable

from nodes.errors import FieldIssue, UnsupportedSchema
from nodes.patterns import UnsupportedPattern, Validator, program_size

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_OBJECT_DEPTH",
    "MAX_STRING_ENUM_CHARS",
    "MAX_TOTAL_CHARS",
    "MAX_TOTAL_ENUM_VALUES",
    "MAX_TOTAL_PATTERN_SIZE",
    "MAX_TOTAL_PROPERTIES",
    "STRING_ENUM_SIZE_THRESHOLD",
    "SUPPORTED_FORMATS",
    "check_user_schema",
    "restore_optional",
    "to_strict",
]

Loc = tuple[str | int, ...]

# Limits published for strict structured outputs (reference §5 "Limits").
MAX_OBJECT_DEPTH: Final = 10
MAX_TOTAL_PROPERTIES: Final = 5_000
MAX_TOTAL_ENUM_VALUES: Final = 1_000
STRING_ENUM_SIZE_THRESHOLD: Final = 250
MAX_STRING_ENUM_CHARS: Final = 15_000
MAX_TOTAL_CHARS: Final = 120_000
# Our own guard: JSON nesting of the schema document itself (objects and arrays), checked before the
# recursive meta-schema check, which would otherwise exhaust Python's stack (a RecursionError, i.e.
# a 500) on a hostile schema. A schema within the limits above needs far less.
MAX_JSON_DEPTH: Final = 64
# Our own guard too: every pattern of a schema is compiled for RE2 when the request arrives, on the event
# loop, so their compiled programs (RE2 instructions, compiled at about two a microsecond) are bounded together.
MAX_TOTAL_PATTERN_SIZE: Final = 200_000

SUPPORTED_FORMATS: Final = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
)

# Copied to the strict schema unchanged.
_KEPT: Final = frozenset(
    {
        "title",
        "description",
        "pattern",
        "multipleOf",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minItems",
        "maxItems",
    }
)

# Narrow the values without changing the shape, or are annotations: left out of the strict copy and
# still enforced by validating the answer against the original. Keywords this module does not know
# at all (``x-...``, ``contentMediaType``, ``$anchor``, ...) are left out the same way.
_DROPPED: Final = frozenset(
    {
        "minLength",
        "maxLength",
        "uniqueItems",
        "minProperties",
        "maxProperties",
        "contains",
        "minContains",
        "maxContains",
        "default",
        "examples",
        "readOnly",
        "writeOnly",
        "deprecated",
        "$comment",
        "$schema",
        "$id",
    }
)

_DEPENDENCY_HINT = "remove it, make the fields optional and explain the dependency in their description"

# Keywords strict mode cannot express, each with the sentence telling the user what to do instead.
_REJECTED: Final[Mapping[str, str]] = {
    "allOf": "allOf is not supported in structured outputs; merge the combined schemas into one schema",
    "not": (
        "not is not supported in structured outputs; describe the allowed values directly instead "
        "(for example with enum)"
    ),
    "if": "if/then/else is not supported in structured outputs; use anyOf with one schema per case instead",
    "then": ("if/then/else is not supported in structured outputs; use anyOf with one schema per case instead"),
    "else": ("if/then/else is not supported in structured outputs; use anyOf with one schema per case instead"),
    "dependentRequired": f"dependentRequired is not supported in structured outputs; {_DEPENDENCY_HINT}",
    "dependentSchemas": f"dependentSchemas is not supported in structured outputs; {_DEPENDENCY_HINT}",
    "dependencies": f"dependencies is not supported in structured outputs; {_DEPENDENCY_HINT}",
    "patternProperties": (
        "patternProperties: keys matching a pattern are not supported in structured outputs; "
        "list the properties by name instead"
    ),
    "propertyNames": (
        "propertyNames is not supported in structured outputs; list the allowed properties by name instead"
    ),
    "unevaluatedProperties": (
        "unevaluatedProperties is not supported in structured outputs; remove it (extra properties are "
        "already forbidden) and list the properties instead"
    ),
    "unevaluatedItems": (
        "unevaluatedItems is not supported in structured outputs; describe every element with items instead"
    ),
    "prefixItems": (
        "prefixItems (fixed-position tuples) is not supported in structured outputs; use an object with "
        "named properties, or one items schema for every element"
    ),
    "$dynamicRef": (
        '$dynamicRef is not supported in structured outputs; use $ref to an entry of $defs ("#/$defs/Name")'
    ),
}

_FREE_FORM_MAP = (
    "additionalProperties: free-form maps are not supported in structured outputs; list the properties instead"
)
_NO_PROPERTIES = (
    "properties: an object without properties is a free-form map, which structured outputs do not "
    "support; list its properties"
)
_ANY_VALUE = (
    "this schema accepts any value, which structured outputs cannot express; give it a type "
    '("string", "number", "integer", "boolean", "object", "array" or "null"), an enum, a const, '
    "an anyOf or a $ref"
)
_NO_TYPE = (
    'this schema has no type; add "type": "{type}" (structured outputs cannot express a schema that accepts any value)'
)
_NOTHING = "this schema (false) accepts no value at all; remove it or give it a type"
_ROOT_ANY_OF = (
    "the root of the schema cannot be anyOf/oneOf in structured outputs; make the root an object "
    "and put the alternatives in one of its properties"
)
_ROOT_NOT_OBJECT = 'the root of the schema must be an object: set "type": "object" and list its properties'
_NO_ITEMS = "items: an array needs an items schema describing its elements; add items"

# A schema without one of these accepts any value.
_SHAPE_KEYWORDS: Final = ("type", "enum", "const", "anyOf", "oneOf", "$ref")
# Keywords that would survive next to a $ref in the strict copy; strict mode refuses $ref siblings.
_REF_CONFLICTS: Final = (_KEPT - {"title", "description"}) | {
    "type",
    "enum",
    "const",
    "anyOf",
    "oneOf",
    "properties",
    "required",
    "items",
    "format",
}
_MAX_REF_HOPS: Final = 64
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def check_user_schema(schema: object, *, loc: Loc = ("schema",)) -> None:
    """Raise :class:`UnsupportedSchema` unless ``schema`` is a usable user schema.

    Usable means: a JSON object nested at most :data:`MAX_JSON_DEPTH` levels, holding only finite
    numbers and valid Unicode strings (``NaN`` passes the meta-schema, then breaks every comparison
    and the request sent upstream), valid against the draft 2020-12 meta-schema (the first
    meta-schema error is reported with its message and its path inside the schema, appended to
    ``loc``), whose root is ``"type": "object"`` with ``properties``, and whose patterns the service
    can run: every ``pattern`` one RE2 compiles (``nodes.patterns`` says why one cannot, and what to
    write instead), all of them within :data:`MAX_TOTAL_PATTERN_SIZE` together. ``patternProperties``
    is refused wherever it appears, also where :func:`to_strict` does not look (under ``contains``,
    say, which only the validation of the answer applies): jsonschema's ``unevaluatedProperties``
    would match its keys with Python's backtracking ``re``. Otherwise it does not check the
    structured-outputs subset; :func:`to_strict` does that.
    """
    if not isinstance(schema, Mapping):
        _raise([FieldIssue(loc, f"the schema must be a JSON object, got {_json_type(schema)}")])
    document = dict(schema)
    unusable = _unusable_value(document)
    if unusable is not None:
        where, msg = unusable
        _raise([FieldIssue((*loc, *where), msg)])
    found: list[ValidationError] = []
    invalid = False
    for error in _PATTERN_FINDER.iter_errors(document):
        if error.validator == "format" and error.validator_value == "regex":
            found.append(error)
        else:
            invalid = True
    # A pattern that the finder fails inside an anyOf of the meta-schema shows as another error: ask again.
    if invalid and not _META.is_valid(document):
        try:
            # The same verdict, and the error as jsonschema words it.
            Draft202012Validator.check_schema(document, format_checker=_META_FORMATS)
        except SchemaError as err:
            _raise([FieldIssue((*loc, *err.absolute_path), f"this is not valid JSON Schema: {err.message}")])
    pattern_issues = _pattern_issues(_in_document_order(found, document), loc)
    if pattern_issues:
        _raise(pattern_issues)
    if document.get("type") != "object":
        root_union = next((key for key in ("anyOf", "oneOf") if key in document), None)
        if root_union is not None:
            _raise([FieldIssue((*loc, root_union), _ROOT_ANY_OF)])
        _raise([FieldIssue((*loc, "type"), _ROOT_NOT_OBJECT)])
    if "properties" not in document:
        _raise([FieldIssue((*loc, "properties"), _NO_PROPERTIES)])


def to_strict(schema: Mapping[str, Any], *, loc: Loc = ("schema",)) -> dict[str, Any]:
    """Return a new strict-mode copy of ``schema``; ``schema`` itself is never changed.

    Runs :func:`check_user_schema` first. In the copy every object gets
    ``additionalProperties: false`` and ``required`` listing all its properties in order; a
    property that was optional is made nullable (``"null"`` added to its ``type``, ``null`` to its
    ``enum``; a ``$ref`` or ``const`` is wrapped as ``anyOf: [it, {"type": "null"}]``, keeping its
    ``title``/``description`` on the wrapper; an ``anyOf`` gets a ``{"type": "null"}`` branch);
    ``oneOf`` becomes ``anyOf``; root ``definitions`` become ``$defs`` and their refs are rewritten;
    shape-neutral keywords strict mode does not take are dropped, as are ``title``/``description``
    next to a ``$ref`` that is not wrapped (strict mode refuses keywords beside ``$ref``), unknown
    keywords, and object/array keywords under a ``type`` that has no object/array (they had no
    effect there).

    Raises :class:`UnsupportedSchema` listing every construct that cannot be expressed, each
    issue's ``loc`` being ``loc`` plus the path inside the schema.
    """
    check_user_schema(schema, loc=loc)
    converter = _Converter(schema, loc)
    strict = converter.convert()
    if converter.issues:
        _raise(converter.issues)
    # The converter refuses references to other documents where it walks; the answer is also validated
    # against parts it does not walk (``contains``, say), and nothing may be fetched there either.
    remote = _remote_reference(schema)
    if remote is not None:
        where, target = remote
        _raise([FieldIssue((*loc, *where), _REMOTE_REFERENCE.format(keyword=where[-1], target=target))])
    return strict


def restore_optional(instance: Any, original: Mapping[str, Any]) -> Any:
    """Return a copy of a strict answer with the ``null`` stand-ins for omitted properties removed.

    A key is removed when its value is ``None``, it is not in its object's ``required`` in
    ``original``, and its property schema in ``original`` does not itself accept ``null``
    (checked with ``jsonschema``, refs included). The walk follows the instance through
    ``properties``, ``items`` and local ``$ref`` pointers into ``original`` (``$defs``,
    ``definitions``, ``#``). For ``anyOf``/``oneOf`` it takes the branches that could have produced
    the value (for an object: branches with ``properties`` covering all its keys; for an array:
    branches with ``items``), restores against each in order, and keeps the first result that the
    branch accepts, else the first result. Anything it does not understand is copied unchanged;
    ``instance`` is never modified.
    """
    return _Restorer(original).restore(instance, original)


class _Converter:
    """One :func:`to_strict` run: builds the copy and collects every issue on the way."""

    def __init__(self, root: Mapping[str, Any], loc: Loc) -> None:
        self.root = root
        self.loc = loc
        self.issues: list[FieldIssue] = []
        self.defs: dict[str, dict[str, Any]] = {}
        for container in ("$defs", "definitions"):
            entries = root.get(container)
            self.defs[container] = dict(entries) if isinstance(entries, Mapping) else {}
        self.refs = _RefGraph(root, self.defs)
        self.property_count = 0
        self.enum_value_count = 0
        self.char_count = 0

    def issue(self, path: Loc, msg: str) -> None:
        self.issues.append(FieldIssue((*self.loc, *path), msg))

    def convert(self) -> dict[str, Any]:
        self.check_refs()
        strict = self.node(self.root, (), 0, nullable=False, is_root=True)
        if self.property_count > MAX_TOTAL_PROPERTIES:
            self.issue(
                (),
                f"the schema has {self.property_count:,} properties in total; structured outputs allow "
                f"at most {MAX_TOTAL_PROPERTIES:,}, so remove some or split the task",
            )
        if self.enum_value_count > MAX_TOTAL_ENUM_VALUES:
            self.issue(
                (),
                f"the schema has {self.enum_value_count:,} enum values in total (counting the null added "
                f"to optional enum fields); structured outputs allow at most {MAX_TOTAL_ENUM_VALUES:,}, "
                "so shorten the enum lists",
            )
        if self.char_count > MAX_TOTAL_CHARS:
            self.issue(
                (),
                f"property names, $defs names, enum values and const values add up to {self.char_count:,} "
                f"characters; structured outputs allow at most {MAX_TOTAL_CHARS:,}, so shorten them",
            )
        return strict

    def node(self, node: Any, path: Loc, depth: int, *, nullable: bool, is_root: bool = False) -> dict[str, Any]:
        """Convert one subschema; ``depth`` is the number of object schemas enclosing it."""
        if not isinstance(node, Mapping):
            self.issue(path, _ANY_VALUE if node is True else _NOTHING)
            return {}
        has_ref = "$ref" in node
        # Next to a $ref, type & co. are reported as conflicts below and otherwise ignored.
        types = [] if has_ref else _types(node.get("type"))
        is_object = "object" in types
        is_array = "array" in types
        level = depth + 1 if is_object else depth
        shaped = any(key in node for key in _SHAPE_KEYWORDS)
        if not shaped and not any(key in _REJECTED for key in node):
            # With a rejected keyword present, its own issue says enough.
            if any(key in node for key in ("properties", "required", "additionalProperties")):
                self.issue(path, _NO_TYPE.format(type="object"))
            elif any(key in node for key in ("items", "minItems", "maxItems")):
                self.issue(path, _NO_TYPE.format(type="array"))
            else:
                self.issue(path, _ANY_VALUE)
        out: dict[str, Any] = {}
        for key, value in node.items():
            here = (*path, key)
            if key in _REJECTED:
                self.issue(here, _REJECTED[key])
            elif has_ref and key in _REF_CONFLICTS:
                self.issue(
                    here,
                    f"$ref cannot be combined with {key} in structured outputs; "
                    f"move {key} into the referenced definition",
                )
            elif key == "type":
                out[key] = list(value) if isinstance(value, list) else value
            elif key in _KEPT:
                out[key] = copy.deepcopy(value)
            elif key == "format":
                if value in SUPPORTED_FORMATS:
                    out[key] = value
            elif key == "enum":
                out[key] = copy.deepcopy(value)
            elif key == "const":
                out[key] = copy.deepcopy(value)
                self.char_count += _chars(value)
            elif key == "properties":
                if is_object:
                    out[key] = self.properties(node, value, here, level)
                elif shaped and not types:
                    self.issue(here, 'properties only apply to objects; add "type": "object" next to them')
            elif key == "required":
                if is_object:
                    out[key] = []  # filled in below, keeping the key's place
                    self.check_required(node, here)
                elif shaped and not types:
                    self.issue(here, 'required only applies to objects; add "type": "object" next to it')
            elif key == "additionalProperties":
                if value is not False:
                    self.issue(here, _FREE_FORM_MAP)
                elif is_object:
                    out[key] = False
            elif key == "items":
                if is_array:
                    out[key] = self.node(value, here, level, nullable=False)
                elif shaped and not types:
                    self.issue(here, 'items only applies to arrays; add "type": "array" next to it')
            elif key in ("anyOf", "oneOf"):
                if is_root:
                    self.issue(here, _ROOT_ANY_OF)
                elif key == "oneOf" and "anyOf" in node:
                    self.issue(here, "oneOf cannot be combined with anyOf in one schema; keep only one of them")
                else:
                    out["anyOf"] = [
                        self.node(branch, (*here, index), level, nullable=False) for index, branch in enumerate(value)
                    ]
            elif key == "$ref":
                out[key] = self.ref(value, here, depth)
            elif key in ("$defs", "definitions"):
                if is_root:
                    self.definitions(out.setdefault("$defs", {}), key, value)
                else:
                    self.issue(here, f"{key} is only supported at the root of the schema; move it there as $defs")
            # Everything else (_DROPPED and unknown keywords) is left out of the strict copy.

        if is_object:
            if isinstance(node.get("properties"), Mapping):
                out["required"] = list(out.get("properties", {}))
                out["additionalProperties"] = False
            elif not any(_is_map_keyword(key, value) for key, value in node.items()):
                # A free-form-map keyword already has its own issue saying to list the properties.
                self.issue((*path, "properties"), _NO_PROPERTIES)
            if level == MAX_OBJECT_DEPTH + 1:
                self.issue(
                    path,
                    f"objects are nested more than {MAX_OBJECT_DEPTH} levels deep here; structured outputs "
                    f"allow at most {MAX_OBJECT_DEPTH} levels of nested objects, so flatten the structure",
                )
        if is_array and "items" not in node:
            self.issue((*path, "items"), _NO_ITEMS)

        result = out
        if "$ref" in out:
            # Strict mode refuses keywords beside $ref: the annotations move to the nullable
            # wrapper when there is one, and are dropped otherwise.
            result = _wrap_nullable(out)
            if not nullable:
                result = out
        elif nullable:
            result = _make_nullable(out)
        enum = out.get("enum")
        if isinstance(enum, list):
            self.count_enum(enum, (*path, "enum"))
        return result

    def check_refs(self) -> None:
        """What only the $ref graph shows: loops that describe nothing, values that never end, depth."""
        loops = self.refs.loops()
        for where, loop in loops:
            names = [_def_ref(key) for key in loop]
            if len(names) > 6:
                names = [*names[:3], f"… {len(names) - 5} more …", *names[-2:]]
            self.issue(
                where,
                f"this $ref leads back to {names[0]} ({' → '.join(names)}) without passing through an object's "
                "properties or an array's items, so it never describes a value; recursive schemas are supported "
                "only through properties or items, so remove the loop",
            )
        if not loops:
            endless = _endless(self.root, self.defs)
            for key in endless:
                if key != _ROOT or len(endless) == 1:
                    self.issue(
                        () if key == _ROOT else key,
                        f"no finite value satisfies this {'schema' if key == _ROOT else 'definition'}: its required "
                        "properties (and arrays with minItems) recurse through $ref at every level, so a value "
                        "would have to be infinitely deep; make a recursive property optional or nullable, or let "
                        "the array be empty",
                    )
        too_deep = self.refs.too_deep(MAX_JSON_DEPTH)
        if too_deep is not None:
            where, levels = too_deep
            self.issue(
                where,
                f"with its definitions filled in, this $ref nests schemas {levels} levels deep; at most "
                f"{MAX_JSON_DEPTH} are supported, so flatten the definitions (or point $ref at the final one)",
            )

    def properties(self, node: Mapping[str, Any], props: Mapping[str, Any], path: Loc, level: int) -> dict[str, Any]:
        required = node.get("required")
        required_names = set(required) if isinstance(required, list) else set()
        out: dict[str, Any] = {}
        for name, sub in props.items():
            self.property_count += 1
            self.char_count += len(name)
            out[name] = self.node(sub, (*path, name), level, nullable=name not in required_names)
        return out

    def check_required(self, node: Mapping[str, Any], path: Loc) -> None:
        props = node.get("properties")
        names = props if isinstance(props, Mapping) else {}
        for index, name in enumerate(node["required"]):
            if name not in names:
                self.issue(
                    (*path, index),
                    f"required lists {name!r}, which is not in properties; add it to properties "
                    "or remove it from required",
                )

    def definitions(self, target: dict[str, Any], container: str, entries: Mapping[str, Any]) -> None:
        for name, body in entries.items():
            here = (container, name)
            if name in target:
                self.issue(here, f"a definition named {name!r} is in both $defs and definitions; rename one")
                continue
            self.char_count += len(name)
            target[name] = self.node(body, here, 0, nullable=False)

    def ref(self, value: str, path: Loc, depth: int) -> str:
        if value == "#":
            return value
        if not value.startswith("#"):
            self.issue(
                path,
                f"$ref {value!r} points outside this schema; only local references such as "
                '"#/$defs/Name" are supported, so copy the referenced schema into $defs',
            )
            return value
        target = _parse_def_ref(value)
        if target is None:
            self.issue(
                path,
                f'$ref {value!r} is not supported; point $ref at an entry of $defs ("#/$defs/Name") '
                'or at the root ("#")',
            )
            return value
        container, name, segment = target
        if name not in self.defs[container]:
            self.issue(
                path,
                f"$ref {value!r} points to a definition that does not exist; add {name!r} to {container}",
            )
            return value
        height = self.refs.object_height((container, name))
        if depth <= MAX_OBJECT_DEPTH and height <= MAX_OBJECT_DEPTH < depth + height:
            self.issue(
                path,
                f"this $ref nests objects {depth + height} levels deep; structured outputs allow at most "
                f"{MAX_OBJECT_DEPTH} levels of nested objects, so flatten the structure",
            )
        return f"#/$defs/{segment}"

    def count_enum(self, values: list[Any], path: Loc) -> None:
        self.enum_value_count += len(values)
        self.char_count += sum(_chars(value) for value in values)
        strings = [value for value in values if isinstance(value, str)]
        string_chars = sum(len(value) for value in strings)
        if len(strings) > STRING_ENUM_SIZE_THRESHOLD and string_chars > MAX_STRING_ENUM_CHARS:
            self.issue(
                path,
                f"this enum has {len(strings):,} string values totalling {string_chars:,} characters; "
                f"structured outputs allow at most {MAX_STRING_ENUM_CHARS:,} characters in an enum of more "
                f"than {STRING_ENUM_SIZE_THRESHOLD} values, so shorten the values or use fewer",
            )


DefKey = tuple[str, str]  # (container, name): an entry of $defs or definitions
_ROOT: Final[DefKey] = ("", "#")  # the schema's root, where "#" points


@dataclass
class _Body:
    """What one definition (or the root) holds, from one walk through its subschemas.

    ``objects``/``levels``: the object levels and the schema levels inside the body itself;
    ``refs``: every reference to a definition, with the object and schema levels down to it (its
    own node included) and its place; ``heads``: the references reached without going into
    ``properties`` or ``items``, i.e. that describe the very value the body describes.
    """

    objects: int = 0
    levels: int = 0
    refs: list[tuple[DefKey, int, int, Loc]] = field(default_factory=list)
    heads: list[tuple[DefKey, Loc]] = field(default_factory=list)


class _RefGraph:
    """The definitions and the references between them, walked without recursion.

    Recursion through ``properties`` or ``items`` is fine (each turn describes a deeper part of the
    value); a loop of references and ``anyOf``/``oneOf`` branches alone is not (it describes
    nothing, and a validator following it never returns). Heights follow references; one back into
    a definition being measured adds nothing, so inside a loop a height is a lower bound.
    """

    def __init__(self, root: Mapping[str, Any], defs: Mapping[str, Mapping[str, Any]]) -> None:
        self.root = _scan(root, (), defs)
        self.bodies = {
            (container, name): _scan(body, (container, name), defs)
            for container, entries in defs.items()
            for name, body in entries.items()
        }
        self.heights: dict[DefKey, tuple[int, int]] = {}
        for key in self.bodies:
            self._measure(key)

    def object_height(self, key: DefKey) -> int:
        """Object levels the definition adds where it is referenced."""
        return self.heights[key][0]

    def loops(self) -> list[tuple[Loc, list[DefKey]]]:
        """Each loop of references that never goes into properties or items: the closing one, the loop."""
        found: list[tuple[Loc, list[DefKey]]] = []
        state: dict[DefKey, bool] = {}  # False while on the current path, True once finished
        for start in self.bodies:
            if start in state:
                continue
            path = [start]
            state[start] = False
            pending = [iter(self.bodies[start].heads)]
            while pending:
                for target, where in pending[-1]:
                    if target not in state:
                        state[target] = False
                        path.append(target)
                        pending.append(iter(self.bodies[target].heads))
                        break
                    if not state[target]:
                        found.append((where, [*path[path.index(target) :], target]))
                else:
                    state[path.pop()] = True
                    pending.pop()
        return found

    def too_deep(self, limit: int) -> tuple[Loc, int] | None:
        """The first ``$ref`` under the root whose filled-in schema nests more than ``limit`` levels."""
        for target, _, levels, where in self.root.refs:
            total = levels + self.heights[target][1]
            if total > limit:
                return where, total
        return None

    def _measure(self, start: DefKey) -> None:
        """Fill ``heights`` for ``start`` and everything it references (a depth-first walk, post-order)."""
        if start in self.heights:
            return
        best: dict[DefKey, tuple[int, int]] = {start: (self.bodies[start].objects, self.bodies[start].levels)}
        # One frame per definition being measured: its key, its remaining refs, and the ref that led here.
        stack: list[tuple[DefKey, Any, int, int]] = [(start, iter(self.bodies[start].refs), 0, 0)]
        while stack:
            key, refs, via_objects, via_levels = stack[-1]
            for target, objects, levels, _ in refs:
                if target in self.heights or target in best:
                    # Measured already, or on the current path (recursion adds nothing).
                    height = self.heights.get(target, (0, 0))
                    best[key] = _higher(best[key], (objects + height[0], levels + height[1]))
                    continue
                body = self.bodies[target]
                best[target] = (body.objects, body.levels)
                stack.append((target, iter(body.refs), objects, levels))
                break
            else:
                stack.pop()
                height = best.pop(key)
                self.heights[key] = height
                if stack:
                    parent = stack[-1][0]
                    best[parent] = _higher(best[parent], (via_objects + height[0], via_levels + height[1]))


def _scan(body: Any, path: Loc, defs: Mapping[str, Mapping[str, Any]]) -> _Body:
    """Walk one body through ``properties``, ``items``, ``anyOf`` and ``oneOf``, in document order."""
    result = _Body()
    # Each entry: a subschema, its place, object and schema levels above it, and whether it
    # describes the same value as the body's root (no properties/items on the way).
    stack: list[tuple[Any, Loc, int, int, bool]] = [(body, path, 0, 0, True)]
    while stack:
        node, where, objects, levels, same = stack.pop()
        if not isinstance(node, Mapping):
            continue
        levels += 1
        if "object" in _types(node.get("type")):
            objects += 1
        result.objects = max(result.objects, objects)
        result.levels = max(result.levels, levels)
        ref = node.get("$ref")
        target = _parse_def_ref(ref) if isinstance(ref, str) else None
        if target is not None and target[1] in defs.get(target[0], {}):
            key = (target[0], target[1])
            result.refs.append((key, objects, levels, (*where, "$ref")))
            if same:
                result.heads.append((key, (*where, "$ref")))
        children: list[tuple[Any, Loc, int, int, bool]] = []
        props = node.get("properties")
        if isinstance(props, Mapping):
            children.extend((sub, (*where, "properties", name), objects, levels, False) for name, sub in props.items())
        if "items" in node:
            children.append((node["items"], (*where, "items"), objects, levels, False))
        for keyword in ("anyOf", "oneOf"):
            branches = node.get(keyword)
            if isinstance(branches, list):
                children.extend(
                    (branch, (*where, keyword, i), objects, levels, same) for i, branch in enumerate(branches)
                )
        stack.extend(reversed(children))
    return result


def _endless(root: Mapping[str, Any], defs: Mapping[str, Mapping[str, Any]]) -> list[DefKey]:
    """The definitions (:data:`_ROOT`: the root) that no finite value satisfies, in document order.

    Only recursion can cause that here: each subschema becomes a node that holds once all its
    conditions hold (its ``$ref`` target, one ``anyOf``/``oneOf`` branch, one of its types: an
    object's required properties, an array's items when ``minItems`` >= 1; anything else counts as
    satisfiable), and satisfaction is propagated from the leaves up, in time linear in the schema.
    """
    needs: list[int] = []  # conditions still unmet, per node
    parents: list[list[int]] = []

    def new(conditions: int) -> int:
        needs.append(conditions)
        parents.append([])
        return len(needs) - 1

    def either(choices: list[int]) -> int:
        # Holds as soon as one choice holds (the choices are linked to it below).
        node = new(1)
        for choice in choices:
            parents[choice].append(node)
        return node

    heads: dict[DefKey, int] = {}
    pending_refs: list[tuple[int, DefKey]] = []
    bodies: list[tuple[DefKey, Any]] = [(_ROOT, root)]
    bodies += [((container, name), body) for container, entries in defs.items() for name, body in entries.items()]
    for key, body in bodies:
        # Post-order walk: a subschema's node is made after the nodes of the subschemas it needs.
        made: dict[int, int] = {}
        stack: list[tuple[Any, bool]] = [(body, False)]
        while stack:
            node, expanded = stack.pop()
            if not isinstance(node, Mapping):
                made[id(node)] = new(0)
                continue
            kids = _needed(node)
            if not expanded:
                stack.append((node, True))
                stack.extend((kid, False) for group in kids for kid in group if id(kid) not in made)
                continue
            branches, all_of = kids
            conditions = [made[id(kid)] for kid in all_of]
            if branches:
                conditions.append(either([made[id(kid)] for kid in branches]))
            ref = _ref_key(node, defs)
            this = new(len(conditions) + (ref is not None))
            for condition in conditions:
                parents[condition].append(this)
            if ref is not None:
                pending_refs.append((this, ref))
            made[id(node)] = this
        heads[key] = made[id(body)]
    for node, ref in pending_refs:
        parents[heads[ref]].append(node)

    ready = [node for node, count in enumerate(needs) if count == 0]
    holds = [False] * len(needs)
    while ready:
        node = ready.pop()
        if holds[node]:
            continue
        holds[node] = True
        for parent in parents[node]:
            needs[parent] -= 1
            if needs[parent] <= 0 and not holds[parent]:
                ready.append(parent)
    return [key for key, _ in bodies if not holds[heads[key]]]


def _needed(node: Mapping[str, Any]) -> tuple[list[Any], list[Any]]:
    """The subschemas a value of ``node`` must satisfy: (one of these branches, all of these)."""
    branches: list[Any] = []
    for keyword in ("anyOf", "oneOf"):
        value = node.get(keyword)
        if isinstance(value, list):
            branches.extend(value)
    types = set(_types(node.get("type")))
    if not types or "enum" in node or "const" in node or types - {"object", "array"}:
        return branches, []  # a scalar (or an untyped value) can end the recursion
    if types == {"array"}:
        min_items = node.get("minItems")
        if "items" in node and isinstance(min_items, int) and min_items >= 1:
            return branches, [node["items"]]
        return branches, []
    if types == {"object"}:
        props = node.get("properties")
        required = node.get("required")
        if isinstance(props, Mapping) and isinstance(required, list):
            names = dict.fromkeys(name for name in required if isinstance(name, str) and name in props)
            return branches, [props[name] for name in names]
    return branches, []  # an object or an array: assume one of them can end the recursion


def _ref_key(node: Mapping[str, Any], defs: Mapping[str, Mapping[str, Any]]) -> DefKey | None:
    """The definition ``node`` refers to (:data:`_ROOT` for ``"#"``), if any."""
    ref = node.get("$ref")
    if ref == "#":
        return _ROOT
    target = _parse_def_ref(ref) if isinstance(ref, str) else None
    if target is None or target[1] not in defs.get(target[0], {}):
        return None
    return target[0], target[1]


def _higher(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    return max(a[0], b[0]), max(a[1], b[1])


def _def_ref(key: DefKey) -> str:
    container, name = key
    return f"#/{container}/{name.replace('~', '~0').replace('/', '~1')}"


class _Restorer:
    """One :func:`restore_optional` run over one original schema."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root
        self.validator = Validator(root)
        self.null_ok: dict[int, bool] = {}

    def restore(self, instance: Any, schema: Any) -> Any:
        schema = self.deref(schema)
        if not isinstance(schema, Mapping):
            return copy.deepcopy(instance)
        if isinstance(instance, dict):
            props = schema.get("properties")
            if isinstance(props, Mapping):
                return self.restore_object(instance, schema, props)
            keys = set(instance)
            return self.restore_branches(
                instance,
                schema,
                lambda branch: isinstance(branch.get("properties"), Mapping) and keys <= set(branch["properties"]),
            )
        if isinstance(instance, list):
            if "items" in schema:
                return [self.restore(element, schema["items"]) for element in instance]
            return self.restore_branches(instance, schema, lambda branch: "items" in branch)
        return copy.deepcopy(instance)

    def restore_object(self, instance: dict[str, Any], schema: Mapping[str, Any], props: Mapping[str, Any]) -> Any:
        required = schema.get("required")
        required_names = set(required) if isinstance(required, list) else set()
        out: dict[str, Any] = {}
        for key, value in instance.items():
            if key not in props:
                out[key] = copy.deepcopy(value)
            elif value is None and key not in required_names and not self.accepts_null(props[key]):
                continue
            else:
                out[key] = self.restore(value, props[key])
        return out

    def restore_branches(
        self, instance: Any, schema: Mapping[str, Any], fits: Callable[[Mapping[str, Any]], bool]
    ) -> Any:
        branches: list[Any] = []
        for key in ("anyOf", "oneOf"):
            value = schema.get(key)
            if isinstance(value, list):
                branches.extend(value)
        first: Any = None
        found = False
        for branch in branches:
            resolved = self.deref(branch)
            if not isinstance(resolved, Mapping) or not fits(resolved):
                continue
            restored = self.restore(instance, resolved)
            if self.is_valid(restored, resolved):
                return restored
            if not found:
                first, found = restored, True
        return first if found else copy.deepcopy(instance)

    def deref(self, schema: Any) -> Any:
        """Follow a chain of local ``$ref``s (that have no ``properties``/``items`` of their own)."""
        for _ in range(_MAX_REF_HOPS):
            if not isinstance(schema, Mapping) or "properties" in schema or "items" in schema:
                return schema
            ref = schema.get("$ref")
            if not isinstance(ref, str):
                return schema
            target = resolve_pointer(self.root, ref)
            if target is None:
                return schema
            schema = target
        return schema

    def accepts_null(self, schema: Any) -> bool:
        key = id(schema)
        if key not in self.null_ok:
            self.null_ok[key] = self.is_valid(None, schema)
        return self.null_ok[key]

    def is_valid(self, instance: Any, schema: Any) -> bool:
        try:
            return self.validator.evolve(schema=schema).is_valid(instance)
        except Unresolvable:
            return False


def _flat_meta_schema() -> dict[str, Any]:
    """The draft 2020-12 meta-schema as one schema: the same keywords, about five times faster to check.

    The official meta-schema is an ``allOf`` of seven vocabulary meta-schemas that point back at it
    with ``$dynamicRef: "#meta"``, and resolving that dynamic scope at every subschema is most of the
    cost of checking a schema. Validated from the official meta-schema, ``#meta`` always lands on its
    root, so the vocabularies' ``properties`` and ``$defs`` merge into one schema (no name is in two
    of them) whose ``$ref: "#"`` means the same. When that ever stops being true, the official
    meta-schema is used as it is.
    """
    official = Draft202012Validator.META_SCHEMA
    parts = [SPECIFICATIONS.contents(urljoin(official["$id"], entry["$ref"])) for entry in official["allOf"]]
    flat: dict[str, Any] = {"type": ["object", "boolean"], "properties": {}, "$defs": {}}
    for part in [*parts, official]:
        for keyword in ("properties", "$defs"):
            for name, sub in part.get(keyword, {}).items():
                if name in flat[keyword]:
                    return dict(official)
                flat[keyword][name] = sub
    known = {"$schema", "$id", "$vocabulary", "$dynamicAnchor", "$comment", "title", "type", "allOf"}
    if any(set(part) - known - {"properties", "$defs"} for part in [*parts, official]):
        return dict(official)
    flat = copy.deepcopy(flat)
    stack: list[Any] = [flat]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("$dynamicRef") == "#meta":
                del node["$dynamicRef"]
                node["$ref"] = "#"
            ref = node.get("$ref")
            if isinstance(ref, str) and "#/$defs/" in ref:
                node["$ref"] = "#/$defs/" + ref.split("#/$defs/", 1)[1]  # "meta/core#/$defs/x": now local
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return flat


def _meta_formats(regex: Callable[[object], bool]) -> FormatChecker:
    """Draft 2020-12's format checks, with ``regex`` decided by ``regex`` (never by Python's ``re``)."""
    checker = FormatChecker(formats=())
    checker.checkers.update(Draft202012Validator.FORMAT_CHECKER.checkers)
    checker.checks("regex")(regex)
    return checker


# Whether a pattern can run is RE2's to say, with a sentence of its own (_pattern_issues): the meta-schema
# takes any string as a regex. The finder takes none, so that one pass finds every pattern with its place.
_META_FORMATS: Final = _meta_formats(lambda instance: True)
_FLAT_META: Final = _flat_meta_schema()
_META: Final = Draft202012Validator(_FLAT_META, format_checker=_META_FORMATS)
_PATTERN_FINDER: Final = Draft202012Validator(
    _FLAT_META, format_checker=_meta_formats(lambda instance: not isinstance(instance, str))
)


def _in_document_order(found: list[ValidationError], document: Mapping[str, Any]) -> list[ValidationError]:
    """The patterns ``found`` in the order the document holds them (jsonschema visits properties in no set order)."""
    positions: dict[int, dict[Any, int]] = {}

    def position(node: Mapping[str, Any], key: Any) -> int:
        table = positions.get(id(node))
        if table is None:
            table = positions[id(node)] = {name: index for index, name in enumerate(node)}
        return table[key]

    def order(error: ValidationError) -> list[int]:
        node: Any = document
        at: list[int] = []
        for part in error.absolute_path:
            at.append(int(part) if isinstance(node, list) else position(node, part))
            node = node[part]
        if isinstance(node, Mapping):  # the pattern is a key of patternProperties
            at.append(position(node, error.instance))
        return at

    return sorted(found, key=order)


def _pattern_issues(found: list[ValidationError], loc: Loc) -> list[FieldIssue]:
    """The issues of the patterns the finder found: refused ones, and the first past the schema's budget.

    Compiling is what the budget bounds, so no pattern is compiled past it, nor past one too large to compile.
    """
    issues: list[FieldIssue] = []
    refused_maps: set[Loc] = set()
    sizes: dict[str, int] = {}
    total = 0
    for error in found:
        where = (*loc, *error.absolute_path)
        if list(error.schema_path)[-2:-1] == ["propertyNames"]:  # a key of patternProperties
            if where not in refused_maps:
                refused_maps.add(where)
                issues.append(FieldIssue(where, _REJECTED["patternProperties"]))
            continue
        pattern = str(error.instance)  # a string: the finder fails no other value
        if pattern in sizes:
            continue
        try:
            sizes[pattern] = program_size(pattern)
        except UnsupportedPattern as exc:
            issues.append(FieldIssue(where, exc.reason))
            if exc.too_large:
                break
            continue
        total += sizes[pattern]
        if total > MAX_TOTAL_PATTERN_SIZE:
            issues.append(
                FieldIssue(
                    where,
                    f"with this pattern the schema's patterns compile to {total:,} instructions of the "
                    f"regular-expression engine, over the {MAX_TOTAL_PATTERN_SIZE:,} one schema may use; simplify "
                    "them (a bounded repetition such as [a-z]{1,100} is copied once per repetition: use + or * and "
                    "limit the length with maxLength) or use fewer",
                )
            )
            break
    return issues


def _make_nullable(out: dict[str, Any]) -> dict[str, Any]:
    """Let a converted, non-``$ref`` schema also accept ``null``."""
    if "const" in out:
        return _wrap_nullable(out)
    if "type" in out:
        out["type"] = _with_null(out["type"])
    enum = out.get("enum")
    if isinstance(enum, list) and None not in enum:
        out["enum"] = [*enum, None]
    branches = out.get("anyOf")
    if isinstance(branches, list) and not any(_is_null_branch(branch) for branch in branches):
        branches.append({"type": "null"})
    return out


def _is_map_keyword(key: str, value: Any) -> bool:
    if key == "additionalProperties":
        return value is not False
    return key in ("patternProperties", "propertyNames", "unevaluatedProperties")


def _wrap_nullable(out: dict[str, Any]) -> dict[str, Any]:
    """Return ``{"anyOf": [out, {"type": "null"}]}``, moving ``title``/``description`` out of ``out``."""
    wrapper: dict[str, Any] = {key: out.pop(key) for key in ("title", "description") if key in out}
    wrapper["anyOf"] = [out, {"type": "null"}]
    return wrapper


def _is_null_branch(branch: Any) -> bool:
    if not isinstance(branch, Mapping) or "enum" in branch or "const" in branch or "$ref" in branch:
        return False
    return "null" in _types(branch.get("type"))


def _with_null(type_value: Any) -> Any:
    if isinstance(type_value, list):
        return type_value if "null" in type_value else [*type_value, "null"]
    return type_value if type_value == "null" else [type_value, "null"]


def _types(type_value: Any) -> list[str]:
    if isinstance(type_value, str):
        return [type_value]
    if isinstance(type_value, list):
        return [item for item in type_value if isinstance(item, str)]
    return []


def _unescape(segment: str) -> str:
    """Decode one JSON-pointer segment taken from a URI fragment."""
    return unquote(segment).replace("~1", "/").replace("~0", "~")


def _parse_def_ref(ref: str) -> tuple[str, str, str] | None:
    """Split ``#/$defs/<name>`` or ``#/definitions/<name>`` into (container, name, raw segment)."""
    for container in ("$defs", "definitions"):
        prefix = f"#/{container}/"
        if ref.startswith(prefix):
            segment = ref[len(prefix) :]
            if segment and "/" not in segment:
                return container, _unescape(segment), segment
    return None


def resolve_pointer(root: Mapping[str, Any], ref: str) -> Any:
    """Resolve a local ``#``-rooted JSON pointer in ``root``; ``None`` when it does not resolve."""
    if ref == "#":
        return root
    if not ref.startswith("#/"):
        return None
    node: Any = root
    for raw in ref[2:].split("/"):
        part = _unescape(raw)
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _chars(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False))


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    return type(value).__name__


_REFERENCE_KEYWORDS = frozenset({"$ref", "$dynamicRef", "$recursiveRef"})
_REMOTE_REFERENCE = (
    '{keyword} {target!r} points outside this schema; only local references such as "#/$defs/Name" are '
    "supported (nothing is fetched while answers are checked), so copy the referenced schema into $defs"
)


def _remote_reference(document: Mapping[str, Any]) -> tuple[Loc, str] | None:
    """The place and target of the first reference to another document, wherever it is; found without recursion."""
    stack: list[tuple[Any, Loc]] = [(document, ())]
    while stack:
        value, where = stack.pop()
        if isinstance(value, Mapping):
            for key, child in value.items():
                if key in _REFERENCE_KEYWORDS and isinstance(child, str) and not child.startswith("#"):
                    return (*where, key), child
                stack.append((child, (*where, key)))
        elif isinstance(value, list):
            stack.extend((child, (*where, index)) for index, child in enumerate(value))
    return None


def _unusable_value(document: Mapping[str, Any]) -> tuple[Loc, str] | None:
    """Nesting beyond :data:`MAX_JSON_DEPTH`, a non-finite number or a lone surrogate; found without recursion."""
    stack: list[tuple[Any, Loc]] = [(document, ())]
    while stack:
        value, where = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            literal = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
            return where, f"{literal} is not a finite number; JSON Schema takes finite numbers only, so use one"
        if isinstance(value, str):
            if _SURROGATE.search(value):
                return where, "this string contains a lone UTF-16 surrogate, which is not valid Unicode; fix the text"
            continue
        if isinstance(value, Mapping):
            children: list[tuple[Any, Loc]] = []
            for key, child in value.items():
                if isinstance(key, str) and _SURROGATE.search(key):
                    return (
                        where,
                        f'the key "{_escaped(key)}" contains a lone UTF-16 surrogate, which is not valid Unicode; '
                        "rename it",
                    )
                children.append((child, (*where, key)))
        elif isinstance(value, list):
            children = [(child, (*where, index)) for index, child in enumerate(value)]
        else:
            continue
        if len(where) >= MAX_JSON_DEPTH:
            return (), f"the schema is nested more than {MAX_JSON_DEPTH} levels deep; flatten it"
        stack.extend(reversed(children))
    return None


def _escaped(text: str) -> str:
    return _SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def _render_loc(loc: Loc) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "(root)"


def _raise(issues: list[FieldIssue]) -> NoReturn:
    first = issues[0]
    where = _render_loc(first.loc)
    if len(issues) == 1:
        detail = f"The JSON Schema cannot be used for structured outputs: {first.msg} (at {where})."
    else:
        detail = (
            f"The JSON Schema cannot be used for structured outputs ({len(issues)} problems, all listed in "
            f"errors); the first: {first.msg} (at {where})."
        )
    raise UnsupportedSchema(detail, errors=issues)

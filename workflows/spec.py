"""WorkflowSpec v1: the typed workflow document, and `validate_spec()`, which checks one.

`validate_spec(data)` takes raw JSON (bytes or str) or an already parsed dict and never
raises: it returns a `Report` listing every problem found, each a `SpecError` with a JSON
path, a stable code and a message. `report.spec` is the parsed `WorkflowSpec` when there
is no error at all.

Paths: `$` is the document; `.name` for object keys that are identifiers, `["my-key"]` for
other keys, `[i]` for list items, e.g. `$.nodes[2].prompt`, `$.edges[0].from`,
`$.sources.writer.credential`. Paths use the JSON field names (`from`, not `from_`) and
never contain the node type pydantic inserts for tagged unions.

Codes are `<area>.<problem>`:
- `json.invalid`, `json.encoding`, `json.not_object`: the body is not a JSON object
  (invalid JSON with line and column, bad UTF-8, NaN/Infinity, NUL characters, ...).
- `limit.body_size`, `limit.depth`, `limit.nodes`, `limit.string_length`: over `Limits`.
  A document over the size, depth or node limit is not examined further.
- `schema.<pydantic error type>` for structural errors: `schema.missing`,
  `schema.extra_forbidden`, `schema.string_type`, `schema.literal_error`, ...;
  `schema.union_type` when a value matches none of several scalar types;
  `node.unknown_type` for a node (or map inline node) whose `type` is not known;
  `name.invalid` for a key of inputs/sources/queues/sub_queues that breaks the naming rule.
- Rules inside one model: `input.default_type`, `input.default_enum`, `input.default_range`,
  `input.default_length`, `input.items`, `input.bounds`, `input.enum`,
  `source.credential_conflict`, `router.duplicate_route`, `router.source_required`,
  `reference.unknown_route`, `aggregator.template_required`.
- Graph: `graph.duplicate_id`, `graph.unknown_node`, `graph.self_loop`, `graph.duplicate_edge`,
  `graph.start`, `graph.unreachable`, `graph.cycle`. These run on the raw document, so they
  are reported alongside schema errors.
- References: `reference.unknown_source`, `reference.source_kind`, `reference.fallback_self`,
  `reference.unknown_queue`, `reference.unknown_lane`, `reference.unknown_credential` (only
  when credential names are given); for an aggregator's `inputs_from`, `graph.unknown_node`
  and `reference.not_upstream`.
- Templates: `template.syntax`, `expression.syntax`, `template.unknown_node`,
  `template.not_upstream`, `template.unknown_input`, `template.unknown_name`.
- `secret.inline`: a string shaped like a provider key, or a secret-named option of a
  source. The message never repeats the value.
- `internal.error`: the validator itself failed (logged); the document is rejected.

Reference and template checks run on every node, edge and source that is valid on its own,
so one malformed node does not hide problems elsewhere; its own templates are checked once
its schema errors are fixed.
"""
import hashlib
import json
import logging
import math
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, get_args

from pydantic import Field, TypeAdapter, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from providers.base import known_providers

from . import templating
from .nodes import NODE_TYPES, InlineNode, InputNode, Node
from .nodes.base import NAME_PATTERN, StrictModel

logger = logging.getLogger(__name__)

SCHEMA_ID = "urn:agentflow:workflow-spec:v1"
INPUT_NAME_PATTERN = r"^[a-z_][a-z0-9_]*$"
ENV_NAME_PATTERN = r"^[A-Z_][A-Z0-9_]*$"

InputName = Annotated[str, Field(pattern=INPUT_NAME_PATTERN, max_length=64)]
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=64)]

_INPUT_PYTHON_TYPES = {
    "string": (str,),
    "text": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


def _is_a(value: Any, input_type: str) -> bool:
    if isinstance(value, bool) and input_type != "boolean":
        return False  # bool is an int in Python, not in JSON Schema
    return isinstance(value, _INPUT_PYTHON_TYPES[input_type])


def _rule(code: str, message: str, field_name: str | None = None, **ctx) -> PydanticCustomError:
    # `field` in ctx lets the validator point at the offending field inside the model.
    if field_name:
        ctx["field"] = (field_name,)
    return PydanticCustomError(code, message, ctx)


class InputField(StrictModel):
    """One field of the run form; `default` prefills it and must match `type`."""

    type: Literal["string", "text", "integer", "number", "boolean", "array", "object"]
    title: str = ""
    description: str = ""
    default: Any = None
    required: bool = False
    enum: list[str | int | float] | None = None
    items: Literal["string", "integer", "number"] | None = None  # element type of an array
    min: float | None = None
    max: float | None = None
    max_length: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _check_input(self):
        numeric = self.type in ("integer", "number")
        if self.items is not None and self.type != "array":
            raise _rule("input.items", "items is only for array inputs", "items")
        if (self.min is not None or self.max is not None) and not numeric:
            raise _rule("input.bounds", "min and max are only for integer and number inputs", "min")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise _rule("input.bounds", "min is greater than max", "min")
        if self.enum is not None:
            if self.type not in ("string", "text", "integer", "number"):
                raise _rule("input.enum", "enum is only for string, integer and number inputs", "enum")
            for value in self.enum:
                if not _is_a(value, self.type):
                    raise _rule("input.enum", "enum value {value} is not a valid {type}", "enum",
                                value=json.dumps(value), type=self.type)
        if self.default is not None:
            self._check_value(self.default)
        return self

    def _check_value(self, value):
        if not _is_a(value, self.type):
            raise _rule("input.default_type", "default should be a {type}", "default", type=self.type)
        if self.type == "array" and self.items is not None:
            if not all(_is_a(item, self.items) for item in value):
                raise _rule("input.default_type", "every default item should be a {items}",
                            "default", items=self.items)
        if self.enum is not None and value not in self.enum:
            raise _rule("input.default_enum", "default is not one of the enum values", "default")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
                raise _rule("input.default_range", "default is outside min..max", "default")
        if self.max_length is not None and isinstance(value, (str, list)) and len(value) > self.max_length:
            raise _rule("input.default_length", "default is longer than max_length", "default")


    def parse_text(self, text: str):
        """A value typed in a form or on the command line, as this input's type."""
        if self.type in ("string", "text"):
            return text
        if self.type == "integer":
            return int(text)
        if self.type == "number":
            return float(text)
        if self.type == "boolean":
            lowered = text.strip().lower()
            if lowered in ("true", "1", "yes", "on"):
                return True
            if lowered in ("false", "0", "no", "off", ""):
                return False
            raise ValueError(f"{text!r} is not true or false")
        if self.type == "array" and not text.lstrip().startswith("["):
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            return [int(x) if self.items == "integer" else float(x) if self.items == "number" else x for x in lines]
        return json.loads(text)

    def problems(self, value) -> list[str]:
        """Why `value` is not acceptable for this input (empty when it is)."""
        try:
            self._check_value(value)
        except PydanticCustomError as exc:
            return [exc.message().replace("default", "value", 1)]
        return []


class Source(StrictModel):
    """A named external service. Its key is a credential name or an environment variable,
    never the key itself."""

    kind: Literal["llm", "image", "embedding", "http", "db"]
    provider: str = Field(min_length=1, max_length=64)  # "mock", "openai", "anthropic", ...
    model: str = ""
    credential: str | None = None
    api_key_env: str | None = Field(None, pattern=ENV_NAME_PATTERN)
    base_url: str | None = Field(None, pattern=r"^https?://")
    # Provider options (temperature, max_tokens, ...). The mock provider reads
    # "responses" ([{"match": regex, "text": str}]), "latency_ms" and "tokens_per_second".
    options: dict[str, Any] = Field(default_factory=dict)
    fallbacks: list[str] = Field(default_factory=list)  # other sources tried, in order
    queue: str | None = None
    lane: str | None = None

    @model_validator(mode="after")
    def _check_key(self):
        if self.credential is not None and self.api_key_env is not None:
            raise _rule("source.credential_conflict",
                        "give either credential or api_key_env, not both", "credential")
        return self


class SubQueue(StrictModel):
    weight: int = Field(1, ge=1)


class Queue(StrictModel):
    """A rate-limited channel shared by every run and worker; `sub_queues` (lanes) share
    its capacity by weight."""

    max_requests_per_minute: int | None = Field(None, gt=0)
    max_tokens_per_minute: int | None = Field(None, gt=0)
    max_messages_per_second: float | None = Field(None, gt=0)
    burst_size: int | None = Field(None, ge=1)
    sub_queues: dict[Name, SubQueue] = Field(default_factory=dict)


class Edge(StrictModel):
    """`from` → `to`; live when `from` succeeded and the expression `when` (if any) holds."""

    from_: str = Field(alias="from")
    to: str
    when: str | None = None


class RunSettings(StrictModel):
    timeout_s: float = Field(3600, gt=0)
    max_steps: int = Field(1000, ge=1)
    max_cost_usd: float | None = Field(None, ge=0)
    parallelism: int = Field(4, ge=1, le=64)
    max_tokens: int | None = Field(None, gt=0)


class WorkflowSpec(StrictModel):
    version: Literal[1]
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    inputs: dict[InputName, InputField] = Field(default_factory=dict)
    sources: dict[Name, Source] = Field(default_factory=dict)
    queues: dict[Name, Queue] = Field(default_factory=dict)
    nodes: list[Node] = Field(min_length=1)
    edges: list[Edge] = Field(default_factory=list)
    outputs: dict[str, str] = Field(default_factory=dict)  # name -> template over the final state
    settings: RunSettings = Field(default_factory=RunSettings)

    @field_validator("version", mode="before")
    @classmethod
    def _exactly_one(cls, value):
        if type(value) is not int:  # Literal[1] alone lets true and 1.0 through
            raise PydanticCustomError("literal_error", "Input should be 1")
        return value

    @classmethod
    def json_schema(cls) -> dict:
        """The JSON Schema of the document (JSON field names, node types under `$defs`)."""
        schema = cls.model_json_schema(by_alias=True)
        schema["title"] = "AgentFlow workflow spec, version 1"
        return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}

    def node(self, node_id: str) -> Node:
        """The node with this id; KeyError if there is none."""
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)

    def start_node(self) -> InputNode:
        return next(node for node in self.nodes if node.type == "input")

    def incoming(self, node_id: str) -> list[Edge]:
        return [edge for edge in self.edges if edge.to == node_id]

    def outgoing(self, node_id: str) -> list[Edge]:
        return [edge for edge in self.edges if edge.from_ == node_id]

    def predecessors(self, node_id: str) -> list[str]:
        """Ids of the nodes with an edge into this one, in edge order."""
        return list(dict.fromkeys(edge.from_ for edge in self.incoming(node_id)))

    def successors(self, node_id: str) -> list[str]:
        return list(dict.fromkeys(edge.to for edge in self.outgoing(node_id)))

    def check_inputs(self, values: dict, *, from_text: bool = False) -> tuple[dict, list[dict]]:
        """The run's inputs with defaults filled in, and every problem as {path, code, message}.

        With `from_text`, string values (a web form, the command line) are parsed per type.
        """
        problems, clean = [], {}
        if not isinstance(values, dict):
            return {}, [{"path": "$.inputs", "code": "inputs.type", "message": "inputs must be an object"}]
        for name in values:
            if name not in self.inputs:
                problems.append({"path": f"$.inputs.{name}", "code": "inputs.unknown",
                                 "message": f"'{name}' is not an input of this workflow"})
        for name, declared in self.inputs.items():
            path = f"$.inputs.{name}"
            value = values.get(name)
            if from_text and isinstance(value, str):
                if value == "" and declared.type not in ("string", "text"):
                    value = None
                else:
                    try:
                        value = declared.parse_text(value)
                    except ValueError as exc:
                        problems.append({"path": path, "code": "inputs.type", "message": f"not a valid {declared.type}: {exc}"})
                        continue
            if value is None or (value == "" and declared.required):
                if declared.required and declared.default is None:
                    problems.append({"path": path, "code": "inputs.required", "message": f"'{name}' is required"})
                    continue
                value = declared.default
            if value is None:
                continue
            for message in declared.problems(value):
                problems.append({"path": path, "code": "inputs.invalid", "message": message})
            clean[name] = value
        return clean, problems

    def to_json(self) -> dict:
        """The document as JSON-ready data, with JSON field names and no null fields."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def spec_hash(data: dict | WorkflowSpec) -> str:
    """sha256 hex of the canonical JSON of a spec document (sorted keys, no spaces)."""
    if isinstance(data, WorkflowSpec):
        data = data.to_json()
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Limits:
    """Size limits; the Django layer passes `Limits(**settings.AGENTFLOW_SPEC_LIMITS)`."""

    body_bytes: int = 1024 * 1024
    depth: int = 32  # nested objects/arrays, the document itself counting as 1
    nodes: int = 500
    string_bytes: int = 100 * 1024  # UTF-8 bytes of any one string (keys included)


@dataclass(frozen=True)
class SpecError:
    path: str
    code: str
    message: str

    def as_dict(self) -> dict:
        return {"path": self.path, "code": self.code, "message": self.message}


@dataclass
class Report:
    errors: list[SpecError] = field(default_factory=list)
    spec: WorkflowSpec | None = None

    @property
    def valid(self) -> bool:
        return not self.errors and self.spec is not None

    def as_dict(self) -> dict:
        return {"valid": self.valid, "errors": [error.as_dict() for error in self.errors]}


def validate_spec(data: Any, *, limits: Limits | None = None,
                  credential_names: set[str] | frozenset[str] | None = None) -> Report:
    """Check a workflow document and return every problem found; never raises.

    `data` is the raw body (bytes or str) or a parsed dict. `credential_names`, when given,
    is the set of credential names sources may reference.
    """
    errors = _Errors()
    spec = None
    try:
        spec = _validate(data, limits or Limits(), credential_names, errors)
    except Exception:  # bad input must come back as a report, whatever went wrong
        logger.exception("workflow spec validation failed")
        errors.add((), "internal.error", "the document could not be checked")
    return Report(errors.items, spec if not errors.items else None)


class _Errors:
    def __init__(self):
        self.items: list[SpecError] = []
        self._seen: set[SpecError] = set()

    def add(self, loc: tuple, code: str, message: str):
        error = SpecError(json_path(loc), code, message)
        if error not in self._seen:
            self._seen.add(error)
            self.items.append(error)


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def json_path(loc: tuple) -> str:
    """("nodes", 2, "prompt") -> "$.nodes[2].prompt"."""
    parts = ["$"]
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif _IDENTIFIER.match(part):
            parts.append(f".{part}")
        else:
            parts.append(f"[{json.dumps(part, ensure_ascii=False)}]")
    return "".join(parts)


def _validate(data, limits: Limits, credential_names, errors: _Errors) -> WorkflowSpec | None:
    doc = _load(data, limits, errors)
    if doc is None:
        return None
    if not _walk(doc, limits, errors):
        return None
    if not isinstance(data, (bytes, bytearray, memoryview, str)):
        size = len(json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass"))
        if size > limits.body_bytes:
            _too_big(size, limits, errors)
            return None
    if isinstance(doc.get("nodes"), list) and len(doc["nodes"]) > limits.nodes:
        errors.add(("nodes",), "limit.nodes",
                   f"the workflow has {len(doc['nodes'])} nodes; the limit is {limits.nodes}")
        return None

    spec = None
    try:
        spec = WorkflowSpec.model_validate(doc)
    except ValidationError as exc:
        _add_schema_errors(exc, doc, errors)
    parts = _Parts(doc, spec)
    graph = _check_graph(doc, errors)
    _check_references(parts, graph, credential_names, errors)
    _check_templates(doc, parts, graph, errors)
    return spec


# -- loading and limits ---------------------------------------------------------------

class _NotJson(ValueError):
    pass


def _reject_constant(name):
    raise _NotJson(f"{name} is not valid JSON")


def _load(data, limits: Limits, errors: _Errors) -> dict | None:
    """The document as a dict, or None after recording why it cannot be one."""
    if isinstance(data, (bytes, bytearray, memoryview, str)):
        if isinstance(data, str):
            size = len(data) if len(data) > limits.body_bytes else len(data.encode("utf-8", "surrogatepass"))
        else:
            data = bytes(data)
            size = len(data)
        if size > limits.body_bytes:
            _too_big(size, limits, errors)
            return None
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                errors.add((), "json.encoding", f"the document is not valid UTF-8 (byte {exc.start})")
                return None
        text = data.removeprefix("\ufeff")
        # json.loads recurses per nesting level, so deep nesting is refused before parsing.
        if _nesting_exceeds(text, limits.depth):
            errors.add((), "limit.depth", f"the document is nested more than {limits.depth} levels deep")
            return None
        try:
            doc = json.loads(text, parse_constant=_reject_constant)
        except json.JSONDecodeError as exc:
            errors.add((), "json.invalid", f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})")
            return None
        except RecursionError:
            errors.add((), "limit.depth", f"the document is nested more than {limits.depth} levels deep")
            return None
        except _NotJson as exc:
            errors.add((), "json.invalid", f"invalid JSON: {exc}")
            return None
        except ValueError:  # Python refuses integers of more than 4300 digits
            errors.add((), "json.invalid", "invalid JSON: a number has too many digits")
            return None
    else:
        doc = data
    if not isinstance(doc, dict):
        errors.add((), "json.not_object", f"a workflow spec must be a JSON object, not {_json_kind(doc)}")
        return None
    return doc


def _too_big(size: int, limits: Limits, errors: _Errors):
    errors.add((), "limit.body_size", f"the document is {size} bytes; the limit is {limits.body_bytes}")


def _json_kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    return type(value).__name__


# A JSON string, a bracket, or an unterminated string's opening quote.
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]|"', re.S)


def _nesting_exceeds(text: str, limit: int) -> bool:
    depth = 0
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token == "[" or token == "{":
            depth += 1
            if depth > limit:
                return True
        elif token == "]" or token == "}":
            depth -= 1
        elif token == '"':
            return False  # unterminated string: invalid JSON, which json.loads reports
    return False


# The sk- shapes need a digit in the key, so that prose like "sk-everything-about-risk"
# (hyphenated words) is not taken for a key.
_SECRET_SHAPES = [
    (re.compile(r"(?<![\w-])sk-ant-(?=[A-Za-z_-]*[0-9])[\w-]{20,}", re.A), "an Anthropic API key"),
    (re.compile(r"(?<![\w-])sk-(?:proj-)?(?=[A-Za-z_-]*[0-9])[\w-]{20,}", re.A), "an OpenAI API key"),
    (re.compile(r"(?<![A-Z0-9])AKIA[0-9A-Z]{16}(?![0-9A-Z])"), "an AWS access key"),
    (re.compile(r"(?<![A-Za-z0-9])gh[pousr]_[A-Za-z0-9]{36}"), "a GitHub token"),
    (re.compile(r"(?<![A-Za-z0-9])xox[abprs]-[A-Za-z0-9-]{10,}"), "a Slack token"),
    (re.compile(r"(?<![A-Za-z0-9])AIza[0-9A-Za-z_-]{35}"), "a Google API key"),
    (re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"), "a private key"),
]
_SECRET_OPTION = re.compile(
    r"(?:^|[_-])(?:api[_-]?key|apikey|password|passwd|secret|token|access[_-]?key|"
    r"private[_-]?key|authorization)(?:$|[_-])",
    re.I,
)
_HOW_TO_FIX = "reference a credential or api_key_env instead"


def _walk(doc: dict, limits: Limits, errors: _Errors) -> bool:
    """Check every value: depth, string sizes, JSON types, inline secrets.

    Iterative, so no input can exhaust the stack. Returns False when the document is too
    deep or holds values JSON cannot (a parsed dict from Python code), so it is not examined
    further.
    """
    json_values = True
    stack = [(doc, (), 1)]
    while stack:
        value, loc, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > limits.depth:
                errors.add(loc, "limit.depth", f"nested more than {limits.depth} levels deep")
                return False
            if isinstance(value, dict):
                children = []
                for key, child in value.items():
                    if not isinstance(key, str):
                        errors.add(loc, "json.invalid", "object keys must be strings")
                        json_values = False
                        continue
                    _check_string(key, loc + (key,), limits, errors)
                    if isinstance(child, str) and _is_secret_option(loc, key, child):
                        errors.add(loc + (key,), "secret.inline",
                                   f"option {key!r} looks like a secret; {_HOW_TO_FIX}")
                    children.append((child, loc + (key,), depth + 1))
            else:
                children = [(child, loc + (i,), depth + 1) for i, child in enumerate(value)]
            stack.extend(reversed(children))  # reversed, so errors come in document order
        elif isinstance(value, str):
            _check_string(value, loc, limits, errors)
        elif isinstance(value, float):
            if not math.isfinite(value):
                errors.add(loc, "json.invalid", "NaN and Infinity are not valid JSON")
        elif not (value is None or isinstance(value, (bool, int))):
            errors.add(loc, "json.invalid", f"{type(value).__name__} is not a JSON value")
            json_values = False
    return json_values


def _check_string(value: str, loc: tuple, limits: Limits, errors: _Errors):
    size = len(value)
    if size * 4 > limits.string_bytes:  # only then can the UTF-8 form be over the limit
        size = len(value.encode("utf-8", "surrogatepass"))
    if size > limits.string_bytes:
        errors.add(loc, "limit.string_length", f"string is {size} bytes; the limit is {limits.string_bytes}")
    # Neither can be stored in a PostgreSQL jsonb column.
    if "\x00" in value:
        errors.add(loc, "json.invalid", "strings cannot contain NUL characters")
    elif not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            errors.add(loc, "json.invalid", "strings cannot contain unpaired surrogates")
    for shape, what in _SECRET_SHAPES:
        if shape.search(value):
            errors.add(loc, "secret.inline", f"looks like {what}; {_HOW_TO_FIX}")
            break


def _is_secret_option(loc: tuple, key: str, value: str) -> bool:
    return (len(loc) >= 3 and loc[0] == "sources" and loc[2] == "options"
            and bool(value) and bool(_SECRET_OPTION.search(key)))


# -- schema errors --------------------------------------------------------------------

_MISSING = object()


def _add_schema_errors(exc: ValidationError, doc: dict, errors: _Errors):
    union_messages: dict[tuple, list[tuple[str, str]]] = {}
    for err in exc.errors(include_url=False):
        raw_loc = err["loc"]
        loc, scalar_union = _json_loc(raw_loc, doc)
        kind, ctx, msg = err["type"], err.get("ctx") or {}, err["msg"]
        if kind in ("union_tag_invalid", "union_tag_not_found"):
            expected = ", ".join(_node_tags(loc))
            if kind == "union_tag_invalid":
                errors.add(loc + ("type",), "node.unknown_type",
                           f"unknown node type {ctx.get('tag')!r}; expected one of {expected}")
            else:
                errors.add(loc + ("type",), "schema.missing",
                           f"a node needs a type; expected one of {expected}")
        elif raw_loc and raw_loc[-1] == "[key]":
            rule = _name_rule(ctx["pattern"]) if "pattern" in ctx else msg
            errors.add(loc, "name.invalid", f"invalid name {loc[-1]!r}: {rule}")
        elif "." in kind:  # a rule of our own, raised by a model validator
            errors.add(loc + tuple(ctx.get("field", ())), kind, msg)
        elif scalar_union:
            union_messages.setdefault(loc, []).append((kind, msg))
        elif kind == "missing":
            errors.add(loc, "schema.missing", f"missing required field {loc[-1]!r}")
        elif kind == "extra_forbidden":
            errors.add(loc, "schema.extra_forbidden", f"unknown field {loc[-1]!r}")
        else:
            errors.add(loc, f"schema.{kind}", _PLAIN_MESSAGES.get(kind, msg))
    for loc, found in union_messages.items():
        if len(found) == 1:
            errors.add(loc, f"schema.{found[0][0]}", found[0][1])
        else:
            options = [msg.removeprefix("Input should be ") for _, msg in found]
            errors.add(loc, "schema.union_type",
                       f"Input should be {', '.join(options[:-1])} or {options[-1]}")


# Pydantic's wording for these names Python classes; the document is JSON.
_PLAIN_MESSAGES = {
    "model_type": "Input should be an object",
    "model_attributes_type": "Input should be an object",
    "dict_type": "Input should be an object",
    "list_type": "Input should be an array",
}


def _json_loc(loc: tuple, doc: dict) -> tuple[tuple, bool]:
    """Pydantic's loc as a path into the document, without the tags it adds for unions.

    Follows the document: a part that is neither a key nor an index of the value reached
    so far is the node type tag of a tagged union (when it equals the value's "type") or
    the member name of a scalar union (when the value is a scalar). Returns the path and
    whether a scalar union member was dropped.
    """
    out: list = []
    current: Any = doc
    scalar_union = False
    for part in loc:
        if part == "[key]":
            continue
        if isinstance(current, dict):
            if part in current:
                current = current[part]
            elif current.get("type") == part:
                continue
            else:
                current = _MISSING
            out.append(part)
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            current = current[part]
            out.append(part)
        elif current is not _MISSING and isinstance(part, str):
            scalar_union = True
        else:
            out.append(part)
            current = _MISSING
    return tuple(out), scalar_union


def _node_tags(loc: tuple) -> list[str]:
    if loc and loc[-1] == "node":  # a map's inline node
        union = get_args(InlineNode)[0]
        return sorted(cls.type_name() for cls in get_args(union))
    return sorted(NODE_TYPES)


def _name_rule(pattern: str) -> str:
    if pattern == INPUT_NAME_PATTERN:
        return "use lowercase letters, digits and _, starting with a letter or _"
    if pattern == NAME_PATTERN:
        return "use lowercase letters, digits, _ and -, starting with a letter"
    return f"must match {pattern}"


# -- the well-formed parts of a document that failed as a whole ------------------------

class _Parts:
    """Every piece of the document that is valid on its own, so that reference and
    template checks also run when some other part has schema errors."""

    def __init__(self, doc: dict, spec: WorkflowSpec | None):
        # None when that part is malformed: names cannot be checked against it then.
        self.input_names = _keys(doc, "inputs")
        self.source_names = _keys(doc, "sources")
        self.queue_names = _keys(doc, "queues")
        if spec is not None:
            self.sources = dict(spec.sources)
            self.queues = dict(spec.queues)
            self.nodes = list(enumerate(spec.nodes))
            self.edges = list(enumerate(spec.edges))
            return
        self.sources = dict(_valid_items(Source.model_validate, doc.get("sources")))
        self.queues = dict(_valid_items(Queue.model_validate, doc.get("queues")))
        self.nodes = _valid_items(_NODE_ADAPTER.validate_python, doc.get("nodes"))
        self.edges = _valid_items(Edge.model_validate, doc.get("edges"))


def _keys(doc: dict, key: str) -> set[str] | None:
    value = doc.get(key, {})
    return set(value) if isinstance(value, dict) else None


_NODE_ADAPTER = TypeAdapter(Node)


def _valid_items(validate, value) -> list[tuple]:
    """(key or index, parsed item) for the items of a dict or list that pass `validate`."""
    pairs = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    found = []
    for key, item in pairs:
        try:
            found.append((key, validate(item)))
        except ValidationError:
            pass
    return found


# -- graph ----------------------------------------------------------------------------

@dataclass
class _Graph:
    index: dict[str, int]  # node id -> position of its first definition
    predecessors: dict[str, set[str]]
    _ancestors: dict[str, set[str]] = field(default_factory=dict)

    def ancestors(self, node_id: str) -> set[str]:
        if node_id not in self._ancestors:
            seen: set[str] = set()
            queue = deque(self.predecessors.get(node_id, ()))
            while queue:
                current = queue.popleft()
                if current not in seen:
                    seen.add(current)
                    queue.extend(self.predecessors.get(current, ()))
            self._ancestors[node_id] = seen
        return self._ancestors[node_id]


def _check_graph(doc: dict, errors: _Errors) -> _Graph:
    """Graph rules, on the raw nodes and edges (whatever their other fields look like)."""
    raw_nodes = doc.get("nodes") if isinstance(doc.get("nodes"), list) else []
    raw_edges = doc.get("edges") if isinstance(doc.get("edges"), list) else []
    index: dict[str, int] = {}
    types: dict[str, Any] = {}
    for i, node in enumerate(raw_nodes):
        node_id = node.get("id") if isinstance(node, dict) else None
        if not isinstance(node_id, str):
            continue
        if node_id in index:
            errors.add(("nodes", i, "id"), "graph.duplicate_id",
                       f"node id {node_id!r} is already used by nodes[{index[node_id]}]")
            continue
        index[node_id] = i
        types[node_id] = node.get("type")

    successors: dict[str, list[str]] = {node_id: [] for node_id in index}
    predecessors: dict[str, set[str]] = {node_id: set() for node_id in index}
    edges: list[tuple[int, str, str]] = []
    seen: dict[tuple[str, str], int] = {}
    for k, edge in enumerate(raw_edges):
        if not isinstance(edge, dict):
            continue
        ends = {"from": edge.get("from", edge.get("from_")), "to": edge.get("to")}
        known = True
        for end, node_id in ends.items():
            if not isinstance(node_id, str):
                known = False
            elif node_id not in index:
                errors.add(("edges", k, end), "graph.unknown_node", f"there is no node {node_id!r}")
                known = False
        if not known:
            continue
        source, target = ends["from"], ends["to"]
        if source == target:
            errors.add(("edges", k), "graph.self_loop", f"edge from {source!r} to itself")
        elif (source, target) in seen:
            errors.add(("edges", k), "graph.duplicate_edge",
                       f"edges[{seen[source, target]}] already goes from {source!r} to {target!r}")
        else:
            seen[source, target] = k
            edges.append((k, source, target))
            successors[source].append(target)
            predecessors[target].add(source)

    starts = [node_id for node_id in index if types[node_id] == "input"]
    if raw_nodes and not starts:
        errors.add(("nodes",), "graph.start", "a workflow needs one node of type 'input', where runs start")
    for extra in starts[1:]:
        errors.add(("nodes", index[extra], "type"), "graph.start",
                   f"a workflow has one input node; {starts[0]!r} is already the start")
    for k, source, target in edges:
        if target in starts:
            errors.add(("edges", k, "to"), "graph.start",
                       f"the input node {target!r} is where runs start; no edge can lead into it")

    if starts:
        reached = set(starts)
        queue = deque(starts)
        while queue:
            for target in successors[queue.popleft()]:
                if target not in reached:
                    reached.add(target)
                    queue.append(target)
        for node_id, i in index.items():
            if node_id not in reached:
                errors.add(("nodes", i), "graph.unreachable",
                           f"node {node_id!r} cannot be reached from the input node {starts[0]!r}")

    for cycle in _cycles(list(index), successors):
        errors.add(("nodes", index[cycle[0]]), "graph.cycle",
                   f"nodes {' → '.join(cycle + [cycle[0]])} form a cycle; workflows are acyclic "
                   "(use a map node to repeat work)")
    return _Graph(index, predecessors)


def _cycles(node_ids: list[str], successors: dict[str, list[str]]) -> list[list[str]]:
    """One cycle per strongly connected component that has one (iterative Tarjan)."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    for root in node_ids:
        if root in order:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                order[node] = low[node] = len(order)
                stack.append(node)
                on_stack.add(node)
            targets = successors[node]
            if i < len(targets):
                work.append((node, i + 1))
                target = targets[i]
                if target not in order:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], order[target])
                continue
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == order[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(component)

    position = {node_id: i for i, node_id in enumerate(node_ids)}
    cycles = []
    for component in components:
        members = set(component)
        path = [min(component, key=position.get)]
        while True:
            following = next(t for t in successors[path[-1]] if t in members)
            if following in path:
                cycles.append(path[path.index(following):])
                break
            path.append(following)
    cycles.sort(key=lambda cycle: position[cycle[0]])
    return cycles


# -- references -----------------------------------------------------------------------

def _check_references(parts: _Parts, graph: _Graph, credential_names, errors: _Errors):
    for name, source in parts.sources.items():
        loc = ("sources", name)
        for j, fallback in enumerate(source.fallbacks):
            _check_source(parts, loc + ("fallbacks", j), fallback, source.kind, errors)
            if fallback == name:
                errors.add(loc + ("fallbacks", j), "reference.fallback_self",
                           "a source cannot fall back to itself")
        _check_queue(parts, loc, source.queue, source.lane, errors)
        if source.provider not in known_providers():
            errors.add(loc + ("provider",), "reference.unknown_provider",
                       f"there is no provider {source.provider!r}; known: {', '.join(known_providers())}")
        elif source.provider != "mock" and not source.model:
            errors.add(loc + ("model",), "source.model_required", f"a {source.provider} source needs a model")
        if (credential_names is not None and source.credential is not None
                and source.credential not in credential_names):
            errors.add(loc + ("credential",), "reference.unknown_credential",
                       f"there is no credential named {source.credential!r}")

    for i, node in parts.nodes:
        for part_loc, part in [((), node), *node.inline_nodes()]:
            loc = ("nodes", i, *part_loc)
            for ref in part.source_refs():
                _check_source(parts, loc + ref.loc, ref.name, ref.kind, errors)
            source_queue = next((parts.sources[ref.name].queue for ref in part.source_refs()
                                 if ref.name in parts.sources), None)
            _check_queue(parts, loc, part.queue, part.lane, errors, fallback_queue=source_queue)
            for ref_loc, node_id in part.node_refs():
                if node_id not in graph.index:
                    errors.add(loc + ref_loc, "graph.unknown_node", f"there is no node {node_id!r}")
                elif node.id in graph.index and node_id not in graph.ancestors(node.id):
                    errors.add(loc + ref_loc, "reference.not_upstream",
                               f"node {node_id!r} does not run before {node.id!r}")


def _check_source(parts: _Parts, loc: tuple, name: str, kind: str | None, errors: _Errors):
    if parts.source_names is None:
        return
    if name not in parts.source_names:
        errors.add(loc, "reference.unknown_source", f"there is no source named {name!r}")
    elif kind is not None and name in parts.sources and parts.sources[name].kind != kind:
        errors.add(loc, "reference.source_kind",
                   f"source {name!r} is a {parts.sources[name].kind} source; this needs a {kind} source")


def _check_queue(parts: _Parts, loc: tuple, queue: str | None, lane: str | None, errors: _Errors,
                 fallback_queue: str | None = None):
    if queue is not None and parts.queue_names is not None and queue not in parts.queue_names:
        errors.add(loc + ("queue",), "reference.unknown_queue", f"there is no queue named {queue!r}")
    if lane is None:
        return
    queue = queue or fallback_queue
    if queue is None:
        errors.add(loc + ("lane",), "reference.unknown_lane", f"lane {lane!r} needs a queue")
    elif queue in parts.queues and lane not in parts.queues[queue].sub_queues:
        errors.add(loc + ("lane",), "reference.unknown_lane",
                   f"queue {queue!r} has no sub-queue named {lane!r}")


# -- templates ------------------------------------------------------------------------

def _check_templates(doc: dict, parts: _Parts, graph: _Graph, errors: _Errors):
    for i, node in parts.nodes:
        scope = graph.ancestors(node.id) if node.id in graph.index else set()
        for part_loc, part in [((), node), *node.inline_nodes()]:
            in_map = bool(part_loc)
            for template in part.templates():
                _check_template(("nodes", i, *part_loc, *template.loc), template.source,
                                template.expression, scope, in_map, parts, graph, errors)
    for k, edge in parts.edges:
        if edge.when is not None:
            scope = {edge.from_} | graph.ancestors(edge.from_)
            _check_template(("edges", k, "when"), edge.when, True, scope, False, parts, graph, errors)
    outputs = doc.get("outputs")
    if isinstance(outputs, dict):
        for name, source in outputs.items():
            if isinstance(name, str) and isinstance(source, str):
                _check_template(("outputs", name), source, False, None, False, parts, graph, errors)


def _check_template(loc: tuple, source: str, expression: bool, scope: set[str] | None,
                    in_map: bool, parts: _Parts, graph: _Graph, errors: _Errors):
    """`scope`: the node ids whose output is available (None: any node)."""
    kind = "expression" if expression else "template"
    try:
        ast = templating.parse_expression(source) if expression else templating.parse_template(source)
        refs = templating.references(ast)
    except templating.TemplateError as exc:
        errors.add(loc, f"{kind}.syntax", exc.message)
        return
    except RecursionError:
        errors.add(loc, f"{kind}.syntax", f"{kind} is nested too deeply")
        return
    for ref in sorted(refs):
        name = ref[0]
        if name == "nodes" and len(ref) == 2:
            node_id = ref[1]
            if node_id not in graph.index:
                errors.add(loc, "template.unknown_node", f"nodes.{node_id}: there is no node {node_id!r}")
            elif scope is not None and node_id not in scope:
                errors.add(loc, "template.not_upstream",
                           f"nodes.{node_id}: node {node_id!r} does not run before this point, "
                           "so its output is not available here")
        elif name == "inputs" and len(ref) == 2:
            if parts.input_names is not None and ref[1] not in parts.input_names:
                errors.add(loc, "template.unknown_input", f"inputs.{ref[1]}: there is no input {ref[1]!r}")
        elif name in ("nodes", "inputs", "run"):
            continue
        elif name in ("item", "index"):
            if not in_map:
                errors.add(loc, "template.unknown_name",
                           f"{name!r} is only defined inside a map's inline node")
        else:
            errors.add(loc, "template.unknown_name",
                       f"unknown name {name!r}; templates can read inputs, nodes and run")

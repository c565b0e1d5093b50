"""A loopback server that answers like the OpenAI and Anthropic HTTP APIs, so that the real
SDKs, and the adapters built on them, can be rehearsed and tested with no network and no keys.

Under its `url` it serves:

- OpenAI (SDK base_url `url + "/v1"`): POST /v1/chat/completions, plain or streamed as
  `data:` chunks (a usage chunk when stream_options.include_usage is set, then
  `data: [DONE]`), with response_format json_schema or json_object; POST
  /v1/images/generations (b64_json of a small real PNG); POST /v1/embeddings (float or
  base64); GET /v1/models and /v1/models/{id}.
- Anthropic (SDK base_url `url`): POST /v1/messages, plain or streamed with the events the
  real API sends (message_start, content_block_start, ping, content_block_delta...,
  content_block_stop, message_delta with usage, message_stop); a system prompt; a forced tool
  call answered with the tool's input; temperature, top_p and top_k refused with a 400 from
  API version 2026-10-21 on, as the real API does. GET /v1/models answers in Anthropic's
  shape when the request carries an `anthropic-version` header, as the SDK's do.
- Control, for tests whose calls come from another process (a worker): POST /_fake/script
  (a rule, a list of rules, or {"rules": [...]}), POST /_fake/reset, GET /_fake/requests.
  `FakeLLMControl(url)` wraps them with the same methods as the in-process server.

Answers are deterministic: a rule's scripted `reply` when one fits, otherwise text derived
from the prompt (like the mock provider's) or, for a JSON schema or a forced tool, the
simplest JSON that fits the schema. Usage counts about four characters a token.

Faults are scripted with rules too (`Rule.fault`), by prompt regex, model, endpoint and a
number of `times`: rate_limit (429, Retry-After when `retry_after` is set), quota (OpenAI's
429 insufficient_quota; Anthropic's 400 "credit balance is too low"), server_error (500),
overloaded (Anthropic 529 overloaded_error, OpenAI 503), bad_request (400), not_found (404
unknown model), hang (waits `hang_s` before answering: past a client's timeout), cut (a stream
stops after `after_chunks` chunks without [DONE] / message_stop; `abrupt` drops the connection
mid-body instead; a plain answer is cut half-way), malformed (a body or an event that is not
JSON), stream_error (an error event inside a stream that began with 200), refusal (the model
declines: OpenAI's `refusal` field instead of content, Anthropic's stop_reason "refusal"; the
text is the rule's reply or a stock sentence).

Keys: given `keys`, a request must carry one of them (Authorization: Bearer, x-api-key or
api-key) or it gets 401 in its vendor's error format. The OpenAI-style 401 message quotes the
key it was given in full, harsher than the real service (which masks most of it), so tests
show that adapters never pass that text on. With no keys any request passes.

Every request to the vendor endpoints is recorded (`requests`): path, model, prompt, system,
headers without the key, the parsed body, the fault applied and the status answered.
"""
import base64
import hashlib
import json
import re
import socket
import struct
import threading
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .base import estimate_tokens

DEFAULT_MODELS = (
    "gpt-4o-mini", "gpt-4.1-mini", "gpt-image-1", "text-embedding-3-small",
    "claude-haiku-4-5", "claude-sonnet-4-6",
)
# Request headers never recorded: they carry the key.
SECRET_HEADERS = {"authorization", "x-api-key", "api-key", "cookie", "proxy-authorization"}
EMBEDDING_DIMENSIONS = 8
# Anthropic's API refuses sampling parameters, at any value, from this API version on.
SAMPLING_PARAMETERS = ("temperature", "top_p", "top_k")
SAMPLING_REFUSED_SINCE = "2026-10-21"

Fault = Literal["rate_limit", "quota", "server_error", "overloaded", "bad_request", "not_found",
                "hang", "cut", "malformed", "stream_error", "refusal"]
REFUSAL = "I can't help with that."


class Rule(BaseModel):
    """One scripted behaviour. The first rule that fits a request (its `match`, `model`, `api`
    and `endpoint` all fit) and has uses left decides the answer: its `fault`, else its
    `reply`. Rules are tried in the order they were scripted."""

    model_config = ConfigDict(extra="forbid")

    match: str = ""  # regex searched, ignoring case, in the system prompt and messages (or image prompt, inputs)
    model: str | None = None  # exact model name; None fits any
    api: Literal["openai", "anthropic"] | None = None
    endpoint: Literal["chat", "images", "embeddings", "models"] | None = None  # chat includes /v1/messages
    times: int | None = Field(None, ge=1)  # uses before the rule retires; None: every time
    reply: str | dict | list | None = None  # the answer's text, or the JSON of a schema / tool answer
    fault: Fault | None = None
    status: int | None = Field(None, ge=400, le=599)  # overrides the fault's HTTP status
    message: str | None = None  # overrides the fault's error message
    retry_after: float | None = Field(None, ge=0)  # seconds, sent as Retry-After with an error status
    after_chunks: int = Field(2, ge=0)  # cut, malformed, stream_error: content chunks sent first
    abrupt: bool = False  # cut: drop the connection mid-body instead of ending it cleanly
    hang_s: float = Field(60, gt=0, le=3600)
    chunk_delay_ms: int = Field(0, ge=0, le=10_000)  # pause between streamed chunks
    usage: bool = True  # False: the answer reports no usage, as some servers' streams do

    @field_validator("match")
    @classmethod
    def _compiles(cls, value):
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        return value


@dataclass
class _Scripted:
    rule: Rule
    used: int = 0


class FakeLLMServer:
    """The server, run on a background thread: `FakeLLMServer(port=0).start()`, or as a
    context manager (`with FakeLLMServer() as server:`), then `.url`, `.script(...)`,
    `.requests`, `.reset()` and `.stop()`."""

    def __init__(self, port=0, *, host="127.0.0.1", keys=None, models=DEFAULT_MODELS):
        self.host = host
        self.port = port
        self.keys = set(keys or ())
        self.models = tuple(models)
        self._lock = threading.Lock()
        self._rules: list[_Scripted] = []
        self._requests: list[dict] = []
        self._release = threading.Event()  # set to end every hang (reset, stop)
        self._httpd = None
        self._thread = None
        self._connections: set[socket.socket] = set()

    # Life cycle -----------------------------------------------------------------------

    def start(self):
        """Bind and serve on a daemon thread; returns self. Port 0 picks a free port."""
        self._httpd = _HTTPServer((self.host, self.port), _Handler, self)
        self.port = self._httpd.server_address[1]
        # A short poll interval: stop() waits for the serving loop to notice, once per test.
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"fake-llm-{self.port}", daemon=True)
        self._thread.start()
        return self

    def wait(self):
        """Block until the server is stopped (from another thread, or by Ctrl+C here)."""
        self._thread.join()

    def stop(self):
        """Stop serving, end hanging answers and close open connections (a client's pooled
        connection must not keep talking to a stopped server)."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._thread.join()
        self._close()

    def _close(self):
        self._release.set()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._httpd.server_close()
        self._httpd = None

    def __enter__(self):
        return self.start() if self._httpd is None else self

    def __exit__(self, *exc_info):
        self.stop()

    @property
    def url(self):
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def openai_base_url(self):
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self):
        return self.url

    # Scripting ------------------------------------------------------------------------

    def script(self, *rules, **fields):
        """Add rules, after those already scripted: each positional argument is a Rule or a
        dict of its fields, and keyword arguments make one more rule. Returns the rules added.
        Raises pydantic.ValidationError for a rule that does not parse."""
        parsed = [rule if isinstance(rule, Rule) else Rule.model_validate(rule) for rule in rules]
        if fields:
            parsed.append(Rule.model_validate(fields))
        with self._lock:
            self._rules.extend(_Scripted(rule) for rule in parsed)
        return parsed

    def reset(self):
        """Forget every rule and recorded request, and end hanging answers."""
        with self._lock:
            self._rules.clear()
            self._requests.clear()
            released, self._release = self._release, threading.Event()
        released.set()

    @property
    def requests(self):
        """A copy of the recorded requests, oldest first."""
        with self._lock:
            return [dict(entry) for entry in self._requests]

    def rules(self):
        """The scripted rules, in order, each with how often it has been `used`."""
        with self._lock:
            return [{**s.rule.model_dump(exclude_defaults=True), "used": s.used} for s in self._rules]

    # Used by the handler ----------------------------------------------------------------

    def _record(self, entry):
        with self._lock:
            entry["seq"] = len(self._requests) + 1
            self._requests.append(entry)
        return entry

    def _pick(self, *, api, endpoint, model, text):
        with self._lock:
            for scripted in self._rules:
                rule = scripted.rule
                if rule.times is not None and scripted.used >= rule.times:
                    continue
                if rule.api not in (None, api) or rule.endpoint not in (None, endpoint):
                    continue
                if rule.model is not None and rule.model != model:
                    continue
                if not re.search(rule.match, text, re.IGNORECASE | re.DOTALL):
                    continue
                scripted.used += 1
                return rule
        return None

    def _key_ok(self, headers):
        if not self.keys:
            return True, ""
        given = headers.get("x-api-key") or headers.get("api-key") or ""
        auth = headers.get("authorization") or ""
        if auth.lower().startswith("bearer "):
            given = given or auth[7:].strip()
        return given in self.keys, given


class FakeLLMControl:
    """Scripts a FakeLLMServer running in another process, through its /_fake/ endpoints;
    same methods as the server's."""

    def __init__(self, url):
        self.url = url.rstrip("/")

    def _call(self, method, path, payload=None):
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raise ValueError(exc.read().decode(errors="replace")) from None

    def script(self, *rules, **fields):
        """Add rules (see FakeLLMServer.script); returns {"rules": how many are now
        scripted}. Raises ValueError with the server's error listing when one does not parse."""
        payload = [rule.model_dump(exclude_defaults=True) if isinstance(rule, Rule) else rule for rule in rules]
        if fields:
            payload.append(fields)
        return self._call("POST", "/_fake/script", {"rules": payload})

    def reset(self):
        self._call("POST", "/_fake/reset", {})

    @property
    def requests(self):
        return self._call("GET", "/_fake/requests")["requests"]


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, handler, fake):
        self.fake = fake
        super().__init__(address, handler)


# Answers --------------------------------------------------------------------------------

def _text_of(content):
    """The text of a message's content: a string, or a list of parts with text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def _digest(model, text):
    head = " ".join(text.split())[:80]
    tag = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"[fake {model or 'model'}] Response {tag} to: {head}"


def example_for(schema, text="", depth=0):
    """The simplest value that fits a JSON schema: its const, first enum value or default, a
    string of `text`, 0 (or the minimum), true, one item of an array, every property of an
    object. Schemas it cannot read ($ref, ...) give null."""
    if not isinstance(schema, dict) or depth > 12:
        return None
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for combinator in ("anyOf", "oneOf", "allOf"):
        if schema.get(combinator):
            return example_for(schema[combinator][0], text, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        return {name: example_for(sub, text, depth + 1) for name, sub in schema.get("properties", {}).items()}
    if kind == "array":
        return [example_for(schema.get("items", {}), text, depth + 1)] * max(1, schema.get("minItems", 1))
    if kind == "string":
        value = text or "text"
        return value[: schema["maxLength"]] if "maxLength" in schema else value
    if kind in ("integer", "number"):
        return schema.get("minimum", 0)
    if kind == "boolean":
        return True
    return None


def _png(width, height, rgb):
    """A real PNG file: `width` x `height` pixels of colour `rgb`, with a darker diagonal."""
    dark = bytes(c // 2 for c in rgb)
    rows = b"".join(b"\x00" + b"".join(dark if x == y else bytes(rgb) for x in range(width)) for y in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def _vector(model, text, dimensions):
    values = []
    counter = 0
    while len(values) < dimensions:
        block = hashlib.sha256(f"{model}\0{text}\0{counter}".encode()).digest()
        values.extend(byte / 127.5 - 1 for byte in block)
        counter += 1
    values = values[:dimensions]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    return [v / norm for v in values]


def _pieces(text, json_answer):
    """How an answer is cut into streamed chunks: words for text, short runs for JSON."""
    if json_answer:
        return [text[i:i + 12] for i in range(0, len(text), 12)] or [text]
    return re.findall(r"\S+\s*|\s+", text) or [text]


# What each fault answers, per vendor: (status, OpenAI type, OpenAI code, Anthropic type, message).
_FAULTS = {
    "rate_limit": (429, "requests", "rate_limit_exceeded", "rate_limit_error",
                   "Rate limit reached for requests. Please try again later."),
    "quota": (429, "insufficient_quota", "insufficient_quota", "invalid_request_error",
              "You exceeded your current quota, please check your plan and billing details."),
    "server_error": (500, "server_error", None, "api_error", "The server had an error while processing your request."),
    "overloaded": (503, "server_error", "overloaded", "overloaded_error", "Overloaded"),
    "bad_request": (400, "invalid_request_error", None, "invalid_request_error", "Invalid request."),
    "not_found": (404, "invalid_request_error", "model_not_found", "not_found_error", "The model does not exist."),
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs' connection pools expect
    server_version = "FakeLLM/1"
    server: _HTTPServer

    def log_message(self, format, *args):
        pass  # requests are recorded instead; the command prints its own summary

    def setup(self):
        super().setup()
        with self.server.fake._lock:
            self.server.fake._connections.add(self.connection)

    def finish(self):
        with self.server.fake._lock:
            self.server.fake._connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except OSError:
            # The client gave up (a timeout, an interrupted stream) or a fault hung up on it.
            self.close_connection = True

    # Routing --------------------------------------------------------------------------

    def do_GET(self):
        path, query = self._path()
        if path == "/_fake/requests":
            return self._json(200, {"requests": self.server.fake.requests})
        if path == "/_fake/rules":
            return self._json(200, {"rules": self.server.fake.rules()})
        if path == "/v1/models" or path.startswith("/v1/models/"):
            return self._models(path, query)
        return self._not_found(path)

    def do_POST(self):
        path, _ = self._path()
        body = self._body()
        if path == "/_fake/script":
            return self._script(body)
        if path == "/_fake/reset":
            self.server.fake.reset()
            return self._json(200, {})
        routes = {
            "/v1/chat/completions": self._chat,
            "/v1/messages": self._messages,
            "/v1/images/generations": self._images,
            "/v1/embeddings": self._embeddings,
        }
        if path not in routes:
            return self._not_found(path)
        return routes[path](body)

    def _path(self):
        parts = urlsplit(self.path)
        return parts.path.rstrip("/") or "/", parse_qs(parts.query)

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            return None  # answered with a 400 by the endpoint

    # Control --------------------------------------------------------------------------

    def _script(self, body):
        rules = body.get("rules", [body]) if isinstance(body, dict) else body
        if not isinstance(rules, list):
            return self._json(400, {"error": {"code": "invalid", "message": "expected a rule, a list of rules "
                                              "or {\"rules\": [...]}", "details": []}})
        details = []
        parsed = []
        for index, rule in enumerate(rules):
            try:
                parsed.append(Rule.model_validate(rule))
            except ValidationError as exc:
                details += [{"path": [index, *err["loc"]], "message": err["msg"]} for err in exc.errors()]
        if details:
            return self._json(400, {"error": {"code": "invalid", "message": "invalid rule", "details": details}})
        self.server.fake.script(*parsed)
        return self._json(200, {"rules": len(self.server.fake.rules())})

    # Vendor endpoints -----------------------------------------------------------------

    def _begin(self, api, endpoint, body, *, model="", prompt="", system="", text=None, stream=False):
        """Record the request, check its key and pick its rule. Returns (entry, rule), or
        (entry, None) after answering 401 / 400 itself (entry["status"] is then set)."""
        fake = self.server.fake
        headers = {k.lower(): v for k, v in self.headers.items() if k.lower() not in SECRET_HEADERS}
        entry = fake._record({
            "method": self.command, "path": self._path()[0], "api": api, "endpoint": endpoint,
            "model": model, "prompt": prompt, "system": system, "stream": stream,
            "headers": headers, "body": body, "fault": None, "status": None, "at": time.time(),
        })
        ok, given = fake._key_ok({k.lower(): v for k, v in self.headers.items()})
        if not ok:
            entry["status"] = 401
            if api == "anthropic":
                self._anthropic_error(401, "authentication_error", "invalid x-api-key")
            else:
                self._openai_error(401, "invalid_request_error", "invalid_api_key",
                                   f"Incorrect API key provided: {given}. You can find your API key "
                                   "in your account settings.")
            return entry, None
        if body is None:
            entry["status"] = 400
            self._error(api, 400, "invalid_request_error", None, "The request body is not valid JSON.")
            return entry, None
        rule = fake._pick(api=api, endpoint=endpoint, model=model,
                          text=text if text is not None else f"{system}\n{prompt}")
        entry["fault"] = rule.fault if rule else None
        return entry, rule or Rule()

    def _fault(self, entry, api, rule):
        """Answer an HTTP error fault, or wait out a hang. Returns True when it answered."""
        if rule.fault == "hang":
            self.server.fake._release.wait(rule.hang_s)
            return False
        if rule.fault not in _FAULTS:
            return False
        status, openai_type, openai_code, anthropic_type, message = _FAULTS[rule.fault]
        if api == "anthropic":
            if rule.fault == "overloaded":
                status = 529
            elif rule.fault == "quota":
                status, message = 400, "Your credit balance is too low to access the Anthropic API."
        status = rule.status or status
        message = rule.message or message
        headers = {"retry-after": f"{rule.retry_after:g}"} if rule.retry_after is not None else {}
        entry["status"] = status
        self._error(api, status, anthropic_type if api == "anthropic" else openai_type, openai_code, message, headers)
        return True

    def _models(self, path, query):
        fake = self.server.fake
        api = "anthropic" if self.headers.get("anthropic-version") else "openai"
        entry, rule = self._begin(api, "models", {}, text="")
        if rule is None or self._fault(entry, api, rule):
            return
        wanted = path[len("/v1/models/"):] if path.startswith("/v1/models/") else None
        ids = [m for m in fake.models if wanted in (None, m)]
        if wanted is not None and not ids:
            entry["status"] = 404
            return self._error(api, 404, "not_found_error" if api == "anthropic" else "invalid_request_error",
                               "model_not_found", f"The model {wanted} does not exist.")
        if api == "anthropic":
            after = query.get("after_id", [None])[0]
            if after in ids:
                ids = ids[ids.index(after) + 1:]
            limit = int(query["limit"][0]) if query.get("limit", [""])[0].isdigit() else 20
            answer = [{"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}
                      for m in ids[:max(1, limit)]]
            if wanted is None:
                answer = {"data": answer, "has_more": len(ids) > len(answer),
                          "first_id": answer[0]["id"] if answer else None,
                          "last_id": answer[-1]["id"] if answer else None}
        else:
            answer = [{"id": m, "object": "model", "created": 1735689600, "owned_by": "fake"} for m in ids]
            if wanted is None:
                answer = {"object": "list", "data": answer}
        entry["status"] = 200
        self._json(200, answer[0] if isinstance(answer, list) else answer,
                   cut=rule.fault == "cut", malformed=rule.fault == "malformed")

    def _chat(self, body):
        body_ok = isinstance(body, dict)
        messages = body.get("messages", []) if body_ok else []
        system = "\n".join(_text_of(m.get("content")) for m in messages
                           if isinstance(m, dict) and m.get("role") in ("system", "developer"))
        users = [_text_of(m.get("content")) for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        model = body.get("model", "") if body_ok else ""
        stream = bool(body.get("stream")) if body_ok else False
        all_text = "\n".join(_text_of(m.get("content")) for m in messages if isinstance(m, dict))
        entry, rule = self._begin("openai", "chat", body if body_ok else None, model=model,
                                  prompt=users[-1] if users else "", system=system, text=all_text, stream=stream)
        if rule is None or self._fault(entry, "openai", rule):
            return
        if not messages or not model:
            entry["status"] = 400
            return self._openai_error(400, "invalid_request_error", None, "model and messages are required.")
        response_format = body.get("response_format") or {}
        schema = None
        if response_format.get("type") == "json_schema":
            schema = (response_format.get("json_schema") or {}).get("schema") or {}
        elif response_format.get("type") == "json_object":
            schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
        text = self._answer_text(rule, model, all_text, schema)
        field = "content"
        if rule.fault == "refusal":
            text, field = rule.reply if isinstance(rule.reply, str) else REFUSAL, "refusal"
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        finish = "stop"
        if limit and schema is None and estimate_tokens(text) > limit:
            text, finish = text[: limit * 4], "length"
        usage = {"prompt_tokens": estimate_tokens(all_text), "completion_tokens": estimate_tokens(text)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        ident = f"chatcmpl-fake{entry['seq']}"
        created = int(time.time())
        entry["status"] = 200
        if not stream:
            answer = {
                "id": ident, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": None, "refusal": None,
                                                      field: text},
                             "logprobs": None, "finish_reason": finish}],
            }
            if rule.usage:
                answer["usage"] = usage
            return self._json(200, answer, cut=rule.fault == "cut", malformed=rule.fault == "malformed")

        include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and rule.usage

        def chunk(choices, chunk_usage=None):
            data = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": choices}
            if include_usage:
                data["usage"] = chunk_usage  # null on every chunk but the last, as OpenAI sends it
            return f"data: {json.dumps(data)}\n\n"

        def choice(delta, finish_reason=None):
            return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]

        events = [chunk(choice({"role": "assistant", "content": ""}))]
        events += [chunk(choice({field: piece})) for piece in _pieces(text, schema is not None)]
        events.append(chunk(choice({}, finish)))
        if include_usage:
            events.append(chunk([], usage))
        events.append("data: [DONE]\n\n")
        error = {"error": {"message": "The server had an error while processing your request.",
                           "type": "server_error", "param": None, "code": None}}
        self._stream(rule, events, first_content=1, error_event=f"data: {json.dumps(error)}\n\n",
                     malformed_event='data: {"id": "chatcmpl-broken", "choices": [\n\n')

    def _messages(self, body):
        body_ok = isinstance(body, dict)
        messages = body.get("messages", []) if body_ok else []
        system = _text_of(body.get("system", "")) if body_ok else ""
        users = [_text_of(m.get("content")) for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        model = body.get("model", "") if body_ok else ""
        stream = bool(body.get("stream")) if body_ok else False
        all_text = "\n".join([system, *(_text_of(m.get("content")) for m in messages if isinstance(m, dict))])
        entry, rule = self._begin("anthropic", "chat", body if body_ok else None, model=model,
                                  prompt=users[-1] if users else "", system=system, text=all_text, stream=stream)
        if rule is None or self._fault(entry, "anthropic", rule):
            return
        if not messages or not model or not body.get("max_tokens"):
            entry["status"] = 400
            return self._anthropic_error(400, "invalid_request_error", "model, messages and max_tokens are required.")
        refused = [name for name in SAMPLING_PARAMETERS if name in body]
        if refused and self.headers.get("anthropic-version", "") >= SAMPLING_REFUSED_SINCE:
            entry["status"] = 400
            return self._anthropic_error(400, "invalid_request_error", f"{refused[0]}: Extra inputs are not permitted")
        tool = self._forced_tool(body)
        limit = body["max_tokens"]
        stop_reason = "tool_use" if tool else "end_turn"
        if tool:
            reply = rule.reply
            if isinstance(reply, str):
                try:
                    reply = json.loads(reply)
                except ValueError:
                    reply = None
            tool_input = reply if isinstance(reply, dict) else example_for(
                tool.get("input_schema") or {}, _digest(model, all_text))
            text = json.dumps(tool_input)
            block = {"type": "tool_use", "id": f"toolu_fake{entry['seq']}", "name": tool.get("name", ""),
                     "input": tool_input}
        elif rule.fault == "refusal":
            text, stop_reason = rule.reply if isinstance(rule.reply, str) else REFUSAL, "refusal"
            block = {"type": "text", "text": text}
        else:
            text = self._answer_text(rule, model, all_text, None)
            if estimate_tokens(text) > limit:
                text, stop_reason = text[: limit * 4], "max_tokens"
            block = {"type": "text", "text": text}
        usage = {"input_tokens": estimate_tokens(all_text), "output_tokens": estimate_tokens(text)}
        message = {"id": f"msg_fake{entry['seq']}", "type": "message", "role": "assistant", "model": model,
                   "content": [block], "stop_reason": stop_reason, "stop_sequence": None}
        entry["status"] = 200
        if not stream:
            if rule.usage:
                message["usage"] = usage
            return self._json(200, message, cut=rule.fault == "cut", malformed=rule.fault == "malformed")

        def event(kind, data):
            return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n"

        start = {**message, "content": [], "stop_reason": None,
                 "usage": {"input_tokens": usage["input_tokens"] if rule.usage else 0, "output_tokens": 1}}
        events = [event("message_start", {"message": start}),
                  event("content_block_start", {"index": 0, "content_block": {**block, "input": {}} if tool
                                                else {"type": "text", "text": ""}}),
                  event("ping", {})]
        for piece in _pieces(text, bool(tool)):
            delta = ({"type": "input_json_delta", "partial_json": piece} if tool
                     else {"type": "text_delta", "text": piece})
            events.append(event("content_block_delta", {"index": 0, "delta": delta}))
        events.append(event("content_block_stop", {"index": 0}))
        events.append(event("message_delta", {"delta": {"stop_reason": stop_reason, "stop_sequence": None},
                                              "usage": {"output_tokens": usage["output_tokens"] if rule.usage else 0}}))
        events.append(event("message_stop", {}))
        error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        self._stream(rule, events, first_content=3, error_event=f"event: error\ndata: {json.dumps(error)}\n\n",
                     malformed_event="event: content_block_delta\ndata: {\"type\": \"content_block_delta\", \n\n")

    @staticmethod
    def _forced_tool(body):
        tools = [t for t in body.get("tools") or [] if isinstance(t, dict)]
        choice = body.get("tool_choice") or {}
        if not tools or choice.get("type") not in ("tool", "any"):
            return None
        if choice.get("type") == "tool":
            return next((t for t in tools if t.get("name") == choice.get("name")), None)
        return tools[0]

    def _images(self, body):
        body_ok = isinstance(body, dict)
        prompt = body.get("prompt", "") if body_ok else ""
        model = (body.get("model") or "dall-e-2") if body_ok else ""
        entry, rule = self._begin("openai", "images", body if body_ok else None, model=model, prompt=prompt,
                                  text=prompt)
        if rule is None or self._fault(entry, "openai", rule):
            return
        if not prompt:
            entry["status"] = 400
            return self._openai_error(400, "invalid_request_error", None, "prompt is required.")
        if body.get("response_format") == "url":
            entry["status"] = 400
            return self._openai_error(400, "invalid_request_error", None,
                                      "This server answers response_format b64_json only.")
        colour = hashlib.sha256(prompt.encode()).digest()[:3]
        image = base64.b64encode(_png(16, 16, colour)).decode()
        count = max(1, min(int(body.get("n") or 1), 4))
        answer = {"created": int(time.time()), "data": [{"b64_json": image, "revised_prompt": prompt}] * count,
                  "output_format": "png", "size": body.get("size") or "1024x1024"}
        if rule.usage:
            tokens = estimate_tokens(prompt)
            # 272 output tokens: what a low-quality 1024x1024 image counts at OpenAI.
            answer["usage"] = {"input_tokens": tokens, "output_tokens": 272 * count,
                               "total_tokens": tokens + 272 * count,
                               "input_tokens_details": {"text_tokens": tokens, "image_tokens": 0}}
        entry["status"] = 200
        self._json(200, answer, cut=rule.fault == "cut", malformed=rule.fault == "malformed")

    def _embeddings(self, body):
        body_ok = isinstance(body, dict)
        inputs = body.get("input", []) if body_ok else []
        inputs = [inputs] if isinstance(inputs, str) else list(inputs)
        model = body.get("model", "") if body_ok else ""
        texts = [item if isinstance(item, str) else json.dumps(item) for item in inputs]
        entry, rule = self._begin("openai", "embeddings", body if body_ok else None, model=model,
                                  prompt=texts[-1] if texts else "", text="\n".join(texts))
        if rule is None or self._fault(entry, "openai", rule):
            return
        if not texts or not model:
            entry["status"] = 400
            return self._openai_error(400, "invalid_request_error", None, "model and input are required.")
        dimensions = int(body.get("dimensions") or EMBEDDING_DIMENSIONS)
        data = []
        for index, text in enumerate(texts):
            vector = _vector(model, text, dimensions)
            if body.get("encoding_format") == "base64":
                vector = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": vector})
        tokens = sum(estimate_tokens(t) for t in texts)
        answer = {"object": "list", "data": data, "model": model,
                  "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
        entry["status"] = 200
        self._json(200, answer, cut=rule.fault == "cut", malformed=rule.fault == "malformed")

    def _answer_text(self, rule, model, text, schema):
        reply = rule.reply
        if reply is not None:
            return reply if isinstance(reply, str) else json.dumps(reply)
        if schema is not None:
            return json.dumps(example_for(schema, _digest(model, text)))
        return _digest(model, text)

    # Writing --------------------------------------------------------------------------

    def _stream(self, rule, events, *, first_content, error_event, malformed_event):
        """Send SSE `events` (events[first_content:] are the content chunks that
        `after_chunks` counts), honouring the rule's cut / malformed / stream_error."""
        cut_at = None
        if rule.fault in ("cut", "malformed", "stream_error"):
            cut_at = min(first_content + rule.after_chunks, len(events) - 1)
        clean_cut = rule.fault == "cut" and not rule.abrupt
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        if clean_cut:
            # No length and no chunking: the body ends when the connection closes, so the
            # client sees a complete HTTP answer whose stream just stops.
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        release = self.server.fake._release
        for index, data in enumerate(events):
            if index == cut_at:
                if rule.fault == "malformed":
                    self._write(malformed_event, chunked=True)
                elif rule.fault == "stream_error":
                    self._write(error_event, chunked=True)
                    self._write("", chunked=True)
                    return
                # Hang up: without [DONE] / message_stop, and (unless clean) without the
                # chunk that ends the body.
                self.close_connection = True
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self._write(data, chunked=not clean_cut)
            if rule.chunk_delay_ms and index >= first_content:
                release.wait(rule.chunk_delay_ms / 1000)
        if not clean_cut:
            self._write("", chunked=True)

    def _write(self, text, *, chunked):
        data = text.encode()
        if chunked:
            data = f"{len(data):x}\r\n".encode() + data + b"\r\n"
        self.wfile.write(data)
        self.wfile.flush()

    def _json(self, status, payload, headers=None, *, cut=False, malformed=False):
        data = json.dumps(payload).encode()
        if malformed:
            data = data[: max(1, len(data) // 2)]
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if cut:
            # Announce the whole body, send half of it, hang up.
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(data)

    def _error(self, api, status, error_type, code, message, headers=None):
        if api == "anthropic":
            return self._anthropic_error(status, error_type, message, headers)
        return self._openai_error(status, error_type, code, message, headers)

    def _openai_error(self, status, error_type, code, message, headers=None):
        self._json(status, {"error": {"message": message, "type": error_type, "param": None, "code": code}},
                   {**(headers or {}), "x-request-id": f"req_fake_{time.monotonic_ns()}"})

    def _anthropic_error(self, status, error_type, message, headers=None):
        self._json(status, {"type": "error", "error": {"type": error_type, "message": message},
                            "request_id": f"req_fake_{time.monotonic_ns()}"},
                   {**(headers or {}), "request-id": f"req_fake_{time.monotonic_ns()}"})

    def _not_found(self, path):
        self._json(404, {"error": {"message": f"Unknown path {path}.", "type": "invalid_request_error",
                                   "param": None, "code": "unknown_url"}})

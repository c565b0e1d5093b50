"""The one Jinja2 environment that renders workflow templates and evaluates expressions.

Templates (`"Write about {{ inputs.topic }}"`) and expressions (`nodes.r.output.route == "image"`)
run in an immutable sandbox with `StrictUndefined`, so a typo fails loudly instead of producing
empty text, and nothing user-written can reach Python internals. Autoescaping is off: the
output goes to models and JSON, not to HTML pages (those escape when they display it).

The names a template may read are `inputs`, `nodes` (`nodes.<id>.output`), `run`, and inside a
map's inline node `item` and `index`. The spec validator finds them with `references()`.
"""
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import StrictUndefined, meta, nodes
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

# Upper bound on the size of a string or list built with `*` and on `**` exponents, so that
# `{{ "x" * 10**10 }}` fails fast instead of exhausting the worker's memory.
MAX_REPEAT = 1_000_000
MAX_EXPONENT = 1_000


class TemplateError(Exception):
    """A template or expression failed to parse or render.

    `label` says which template ("nodes[2].prompt"), `lineno` is set for syntax errors.
    """

    def __init__(self, label: str, message: str, lineno: int | None = None):
        self.label = label
        self.message = message
        self.lineno = lineno
        super().__init__(f"{label}: {message}" if label else message)


class _Environment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def getattr(self, obj, attribute):
        # Dot access reads a key before a method (as Django templates do), so an input or
        # node named "items" or "values" is reachable as inputs.items.
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def call_binop(self, context, operator, left, right):
        if operator == "**" and isinstance(right, int) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"exponent {right} is too large")
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(count, int):
                    if len(seq) * count > MAX_REPEAT:
                        raise SecurityError("repeated sequence is too long")
        return super().call_binop(context, operator, left, right)


env = _Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)

# Names a template may read without them being in the render context (range, dict, ...).
GLOBAL_NAMES = frozenset(env.globals)


def parse_template(src: str) -> nodes.Template:
    """Parse a `{{ }}` template; raise TemplateError (with its line) on bad syntax."""
    try:
        return env.parse(src)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError("", f"{exc.message} (line {exc.lineno})", exc.lineno) from None
    except RecursionError:
        raise TemplateError("", "template is nested too deeply") from None


def parse_expression(src: str) -> nodes.Template:
    """Parse a bare expression such as `nodes.r.output.route == "image"`.

    Returns it wrapped in a one-output Template node, which is what `jinja2.meta` and
    `references()` walk. Raises TemplateError on bad syntax or trailing text.
    """
    try:
        parser = Parser(env, src, state="variable")
        expr = parser.parse_expression()
        if not parser.stream.eos:
            token = parser.stream.current
            raise jinja2.TemplateSyntaxError(
                f"unexpected {token.value!r} after the expression", token.lineno
            )
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError("", f"{exc.message} (line {exc.lineno})", exc.lineno) from None
    except RecursionError:
        raise TemplateError("", "expression is nested too deeply") from None
    template = nodes.Template([nodes.Output([expr], lineno=1)], lineno=1)
    return template.set_environment(env)


def references(src_or_ast: str | nodes.Template, *, expression: bool = False) -> set[tuple]:
    """The context names a template reads, as a set of tuples.

    `("nodes", id)` for `nodes.id…` / `nodes["id"]…`, `("inputs", name)` likewise,
    `("nodes",)` / `("inputs",)` when the key is not a constant (`nodes[x]`, `inputs.items()`),
    and `(name,)` for every other top-level name (`("run",)`, `("item",)`, `("index",)`,
    typos). Names the template defines itself (`{% set %}`, loop variables) and Jinja
    globals are left out.
    A string is parsed first, as an expression when `expression` is true.
    """
    if isinstance(src_or_ast, str):
        ast = parse_expression(src_or_ast) if expression else parse_template(src_or_ast)
    else:
        ast = src_or_ast
    undeclared = meta.find_undeclared_variables(ast) - GLOBAL_NAMES
    found = {(name,) for name in undeclared if name not in _SCOPES}
    scopes = _SCOPES & undeclared  # not when the template assigns the name itself
    if scopes:
        for scope, key in _keys_read(ast, scopes):
            found.add((scope, key) if key is not None else (scope,))
    return found


_SCOPES = frozenset({"nodes", "inputs"})


def _keys_read(ast: nodes.Node, scopes: set[str]) -> set[tuple[str, str | None]]:
    """(scope, key) for each `scope.key` or `scope["key"]` read from a top-level name.

    The key is None for any other use: a computed key, a dict method (`inputs.items()`),
    or the bare name passed on.
    """
    keys: set[tuple[str, str | None]] = set()
    consumed: set[int] = set()
    called = {id(call.node) for call in ast.find_all(nodes.Call)}
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        target = node.node
        if not (isinstance(target, nodes.Name) and target.name in scopes):
            continue
        consumed.add(id(target))
        if isinstance(node, nodes.Getattr):
            # inputs.items() is the dict method, unless an input is called "items"
            method = id(node) in called and hasattr(dict, node.attr)
            keys.add((target.name, None if method else node.attr))
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            keys.add((target.name, node.arg.value))
        else:
            keys.add((target.name, None))
    for name in ast.find_all(nodes.Name):
        if name.name in scopes and name.ctx == "load" and id(name) not in consumed:
            keys.add((name.name, None))
    return keys


@lru_cache(maxsize=1024)
def _compiled_template(src: str) -> jinja2.Template:
    return env.from_string(src)


@lru_cache(maxsize=1024)
def _compiled_expression(src: str):
    parse_expression(src)  # the same syntax rules as the validator, trailing text included
    return env.compile_expression(src, undefined_to_none=False)


def render(src: str, context: dict[str, Any], label: str = "template") -> str:
    """Render a template; any failure becomes a TemplateError naming `label`.

    A missing variable reads e.g. "nodes[2].prompt: 'topic' is undefined".
    """
    try:
        return _compiled_template(src).render(context)
    except TemplateError as exc:
        raise TemplateError(label, exc.message, exc.lineno) from None
    except Exception as exc:  # user templates can fail in any way; the step reports it
        raise _render_error(label, exc) from None


def evaluate(expr: str, context: dict[str, Any], label: str = "expression") -> Any:
    """Evaluate an expression and return its value (not stringified)."""
    try:
        compiled = _compiled_expression(expr)
        value = compiled(**context)
        if isinstance(value, jinja2.Undefined):
            value._fail_with_undefined_error()
        return value
    except TemplateError as exc:
        raise TemplateError(label, exc.message, exc.lineno) from None
    except Exception as exc:
        raise _render_error(label, exc) from None


def _render_error(label: str, exc: Exception) -> TemplateError:
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return TemplateError(label, f"{exc.message} (line {exc.lineno})", exc.lineno)
    if isinstance(exc, jinja2.UndefinedError):
        return TemplateError(label, exc.message or "undefined variable")
    if isinstance(exc, jinja2.TemplateError):
        return TemplateError(label, exc.message or type(exc).__name__)
    return TemplateError(label, f"{type(exc).__name__}: {exc}")

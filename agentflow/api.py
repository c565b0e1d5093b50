"""What every API endpoint shares: one error format and cursor pagination.

Every error answers {"error": {"code", "message", "details"}}; for bad input `details` lists
each problem as {"path", "code", "message"} so a client can show all of them at once.
"""
import json

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, pagination, parsers
from rest_framework.response import Response


class BodyTooLarge(exceptions.APIException):
    status_code = 413
    default_code = "body_too_large"
    default_detail = "The request body is too large."


def _refuse_constant(name):
    raise ValueError(f"{name} is not valid JSON")


class JSONParser(parsers.BaseParser):
    """JSON bodies, read with a size cap; too deep, NaN or malformed JSON is a 400, never a 500."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise BodyTooLarge(f"The request body is larger than {limit} bytes.")
        try:
            return json.loads(raw.decode("utf-8") or "null", parse_constant=_refuse_constant)
        except RecursionError:
            raise exceptions.ParseError("The JSON is nested too deeply.")
        except UnicodeDecodeError:
            raise exceptions.ParseError("The body is not valid UTF-8.")
        except ValueError as exc:
            raise exceptions.ParseError(f"Malformed JSON: {exc}")


class CursorPagination(pagination.CursorPagination):
    ordering = "-created_at"
    page_size_query_param = "page_size"
    max_page_size = 200


def _flatten(detail, path="$"):
    """DRF's nested error detail as a flat list of {path, code, message}."""
    if isinstance(detail, dict):
        out = []
        for key, value in detail.items():
            sub = path if key in ("non_field_errors", "detail") else f"{path}.{key}"
            out.extend(_flatten(value, sub))
        return out
    if isinstance(detail, list):
        if all(isinstance(item, exceptions.ErrorDetail) or isinstance(item, str) for item in detail):
            return [_problem(item, path) for item in detail]
        out = []
        for index, item in enumerate(detail):
            out.extend(_flatten(item, f"{path}[{index}]"))
        return out
    return [_problem(detail, path)]


def _problem(item, path):
    return {"path": path, "code": getattr(item, "code", "invalid"), "message": str(item)}


class ApiError(exceptions.APIException):
    """An error with a chosen code and a list of problems (e.g. every spec error)."""

    def __init__(self, message, *, code="invalid", status=400, details=None):
        super().__init__(detail=message, code=code)
        self.status_code = status
        self.error_code = code
        self.details = details or []


def exception_handler(exc, context):
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None  # a real server error: let Django log it and answer 500

    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))

    if isinstance(exc, ApiError):
        body = {"code": exc.error_code, "message": str(exc.detail), "details": exc.details}
    elif isinstance(exc, exceptions.ValidationError):
        details = _flatten(exc.detail)
        message = "; ".join(f"{d['path']}: {d['message']}" for d in details[:5]) or "Invalid input."
        body = {"code": "invalid", "message": message, "details": details}
    else:
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else "error"
        body = {"code": code, "message": str(exc.detail), "details": []}
    from rest_framework.views import set_rollback  # DRF's views import this module's settings

    set_rollback()
    return Response({"error": body}, status=exc.status_code, headers=headers)

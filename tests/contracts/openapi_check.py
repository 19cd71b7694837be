"""Check recorded HTTP requests against an OpenAPI 3.0 or Swagger 2.0 document.

The test doubles of InfluxDB and Grafana record every request they receive; running this checker
over them proves that what PowerView sends is what the official API contract documents: the
path and method exist, every query parameter is declared and valid, required ones are present,
and JSON bodies validate against the request schema. A double that answers a request the real
server would refuse would otherwise hide the bug until production.

Usage::

    contract = ApiContract.load(Path("tests/contracts/influxdb-oss-v2.yml"))
    problems = contract.check_requests(double.requests)
    assert not problems, "\\n".join(problems)

OpenAPI rules applied: header parameters named Accept, Content-Type or Authorization are
ignored (OpenAPI 3.0, Parameter Object); ``readOnly`` properties must not be sent and are not
required in requests; ``nullable`` (``x-nullable`` in Swagger 2) admits ``null``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from jsonschema import Draft4Validator, ValidationError, validators
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

CONTRACT_URI = "urn:api-contract"
IGNORED_HEADERS = {"accept", "content-type", "authorization"}
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


class _NoBody:
    def __repr__(self) -> str:
        return "NO_BODY"


class RawBody:
    """A request body that is present but not JSON (line protocol, Flux text...)."""

    def __init__(self, size: int) -> None:
        self.size = size


NO_BODY = _NoBody()


def _escape_pointer(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _pointer(*parts: str) -> str:
    return "#/" + "/".join(_escape_pointer(part) for part in parts)


def _read_only(validator: Any, read_only: Any, instance: Any, schema: dict) -> Iterator:
    if read_only:
        yield ValidationError("read-only property sent in a request")


def _required(validator: Any, required: list[str], instance: Any, schema: dict) -> Iterator:
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    for name in required:
        spec = properties.get(name, {})
        if isinstance(spec, dict) and spec.get("readOnly"):
            continue
        if name not in instance:
            yield ValidationError(f"{name!r} is a required property")


def _nullable_type(validator: Any, types: Any, instance: Any, schema: dict) -> Iterator:
    if instance is None and (schema.get("nullable") or schema.get("x-nullable")):
        return
    yield from Draft4Validator.VALIDATORS["type"](validator, types, instance, schema)


RequestValidator = validators.extend(
    Draft4Validator,
    {"readOnly": _read_only, "required": _required, "type": _nullable_type},
)


@dataclass(frozen=True)
class Operation:
    """One (method, path template) of the document with everything needed to check a call."""

    method: str
    template: str
    pattern: re.Pattern[str]
    pointer: tuple[str, ...]
    parameters: tuple[dict[str, Any], ...]
    literal_segments: int


class ApiContract:
    """An OpenAPI 3.0 / Swagger 2.0 document, ready to check requests against."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.swagger2 = str(document.get("swagger", "")).startswith("2")
        self.registry = Registry().with_resource(
            CONTRACT_URI, Resource.from_contents(document, default_specification=DRAFT4)
        )
        self.operations = list(self._operations())

    @classmethod
    def load(cls, path: Path) -> ApiContract:
        """Read a YAML or JSON contract file."""
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            return cls(json.loads(text))
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return cls(yaml.load(text, Loader=loader))

    # ---- building the operation table

    def resolve(self, node: Any) -> Any:
        """Follow a local ``$ref`` (one level at a time) inside the document."""
        while isinstance(node, dict) and "$ref" in node:
            reference = node["$ref"]
            if not reference.startswith("#/"):
                raise ValueError(f"only local references are supported: {reference}")
            node = self.document
            for part in reference[2:].split("/"):
                node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def _bases(self, *levels: dict[str, Any]) -> list[str]:
        if self.swagger2:
            return [str(self.document.get("basePath", "")).rstrip("/")]
        for level in levels:
            if "servers" in level:
                return [urlsplit(server["url"]).path.rstrip("/") for server in level["servers"]]
        return [""]

    def _operations(self) -> Iterator[Operation]:
        for template, raw_item in self.document.get("paths", {}).items():
            path_item = self.resolve(raw_item)
            shared = [self.resolve(p) for p in path_item.get("parameters", [])]
            for method in HTTP_METHODS:
                operation = path_item.get(method)
                if operation is None:
                    continue
                own = [self.resolve(p) for p in operation.get("parameters", [])]
                names = {(p["name"], p["in"]) for p in own}
                parameters = tuple(own + [p for p in shared if (p["name"], p["in"]) not in names])
                for base in self._bases(operation, path_item, self.document):
                    full = base + template
                    regex = "".join(
                        f"(?P<{_group(piece[1:-1])}>[^/]+)"
                        if piece.startswith("{")
                        else re.escape(piece)
                        for piece in re.split(r"(\{[^}]+\})", full)
                    )
                    yield Operation(
                        method.upper(),
                        full,
                        re.compile(regex),
                        ("paths", template, method),
                        parameters,
                        full.count("/") - full.count("{"),
                    )

    def operation(self, method: str, path: str) -> Operation | None:
        """The operation a request targets; literal path segments win over templated ones."""
        matches = [
            op
            for op in self.operations
            if op.method == method.upper() and op.pattern.fullmatch(path)
        ]
        return max(matches, key=lambda op: op.literal_segments) if matches else None

    # ---- checking

    def check(
        self,
        method: str,
        path: str,
        query: Mapping[str, Sequence[str]] | None = None,
        headers: Mapping[str, str] | None = None,
        body: Any = NO_BODY,
    ) -> list[str]:
        """Every way one request departs from the contract (an empty list: it conforms)."""
        where = f"{method.upper()} {path}"
        operation = self.operation(method, path)
        if operation is None:
            known = {op.method for op in self.operations if op.pattern.fullmatch(path)}
            if known:
                return [
                    f"{where}: method not in the contract (allowed: {', '.join(sorted(known))})"
                ]
            return [f"{where}: path not in the contract"]
        query = query or {}
        headers = {name.lower(): value for name, value in (headers or {}).items()}
        path_values = operation.pattern.fullmatch(path).groupdict()  # type: ignore[union-attr]
        problems: list[str] = []
        declared: set[tuple[str, str]] = set()
        for parameter in operation.parameters:
            name, location = parameter["name"], parameter["in"]
            declared.add((name, location))
            if location == "query":
                values = list(query.get(name, []))
            elif location == "path":
                values = [path_values.get(_group(name), "")]
            elif location == "header" and name.lower() not in IGNORED_HEADERS:
                values = [headers[name.lower()]] if name.lower() in headers else []
            else:
                continue
            if not values:
                if parameter.get("required"):
                    problems.append(f"{where}: required {location} parameter {name!r} is missing")
                continue
            for value in values:
                problems.extend(
                    f"{where}: {location} parameter {name!r}={value!r}: {message}"
                    for message in self._check_parameter(parameter, value)
                )
        for name in query:
            if (name, "query") not in declared:
                problems.append(f"{where}: query parameter {name!r} is not declared")
        problems.extend(
            f"{where}: {message}" for message in self._check_body(operation, headers, body)
        )
        return problems

    def check_requests(self, requests: Iterable[Any]) -> list[str]:
        """Check recorded requests (objects with method, path, query, headers, json, body)."""
        problems: list[str] = []
        for request in requests:
            problems.extend(
                self.check(
                    request.method, request.path, request.query, request.headers, body_of(request)
                )
            )
        return problems

    def _parameter_schema(self, parameter: dict[str, Any]) -> dict[str, Any]:
        if "schema" in parameter:
            return self.resolve(parameter["schema"])
        return {key: value for key, value in parameter.items() if key in _SWAGGER_SCHEMA_KEYS}

    def _check_parameter(self, parameter: dict[str, Any], raw: str) -> list[str]:
        schema = self._parameter_schema(parameter)
        value, error = _coerce(raw, schema.get("type"))
        if error:
            return [error]
        return [error.message for error in self._validator(schema).iter_errors(value)]

    def _request_body(self, operation: Operation) -> tuple[dict[str, Any] | None, tuple[str, ...]]:
        """The body description and the JSON pointer of the schema per media type."""
        node = self.resolve(self._at(operation.pointer))
        if self.swagger2:
            for parameter in operation.parameters:
                if parameter["in"] == "body":
                    consumes = (
                        node.get("consumes")
                        or self.document.get("consumes")
                        or ["application/json"]
                    )
                    content = {media: {"schema": parameter.get("schema", {})} for media in consumes}
                    return {"required": parameter.get("required", False), "content": content}, ()
            return None, ()
        body = node.get("requestBody")
        return (self.resolve(body) if body is not None else None), operation.pointer

    def _check_body(self, operation: Operation, headers: Mapping[str, str], body: Any) -> list[str]:
        description, _ = self._request_body(operation)
        if description is None:
            return (
                []
                if body is NO_BODY or (isinstance(body, RawBody) and not body.size)
                else ["the contract declares no request body"]
            )
        if body is NO_BODY:
            return ["required request body is missing"] if description.get("required") else []
        content = description.get("content", {})
        media_type = headers.get("content-type", "application/json").split(";")[0].strip().lower()
        schema_node = _media(content, media_type)
        if schema_node is None:
            return [f"Content-Type {media_type!r} is not declared (declared: {sorted(content)})"]
        if isinstance(body, RawBody) or "schema" not in schema_node:
            return []
        if "json" not in media_type:
            return []
        schema = schema_node["schema"]
        return [
            f"body{_location(error)}: {error.message}"
            for error in self._validator(schema).iter_errors(body)
        ]

    def _at(self, pointer: tuple[str, ...]) -> Any:
        node: Any = self.document
        for part in pointer:
            node = node[part]
        return node

    def _validator(self, schema: dict[str, Any]) -> Any:
        return RequestValidator(
            {"$ref": f"{CONTRACT_URI}#/__inline__"}, registry=self._inline(schema)
        )

    def _inline(self, schema: dict[str, Any]) -> Registry:
        """A registry where ``#/__inline__`` is ``schema``, with the document's references."""
        document = dict(self.document)
        document["__inline__"] = schema
        return Registry().with_resource(
            CONTRACT_URI, Resource.from_contents(document, default_specification=DRAFT4)
        )


_SWAGGER_SCHEMA_KEYS = {
    "type", "format", "items", "enum", "minimum", "maximum", "minLength", "maxLength",
    "pattern", "default",
}  # fmt: skip


def _group(name: str) -> str:
    """A regex group name for a path parameter (``{dashboard-uid}`` is a legal template)."""
    return "p_" + re.sub(r"\W", "_", name)


def _coerce(raw: str, type_: str | None) -> tuple[Any, str | None]:
    try:
        if type_ == "integer":
            return int(raw), None
        if type_ == "number":
            return float(raw), None
    except ValueError:
        return raw, f"expected {type_}"
    if type_ == "boolean":
        if raw not in ("true", "false"):
            return raw, "expected true or false"
        return raw == "true", None
    if type_ == "array":
        return raw.split(","), None
    return raw, None


def _media(content: Mapping[str, Any], media_type: str) -> dict[str, Any] | None:
    if media_type in content:
        return content[media_type]
    wildcard = media_type.split("/", maxsplit=1)[0] + "/*"
    return content.get(wildcard) or content.get("*/*")


def _location(error: ValidationError) -> str:
    return "".join(f"[{part!r}]" for part in error.absolute_path)


def body_of(request: Any) -> Any:
    """The body of a recorded request as the checker wants it: JSON, RawBody or NO_BODY."""
    if getattr(request, "json", None) is not None:
        return request.json
    raw = getattr(request, "body", None)
    if raw:
        return RawBody(len(raw))
    headers = {
        name.lower(): value for name, value in (getattr(request, "headers", {}) or {}).items()
    }
    length = int(headers.get("content-length") or 0)
    chunked = headers.get("transfer-encoding", "").lower() == "chunked"
    return RawBody(length) if length or chunked else NO_BODY

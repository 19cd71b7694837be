"""A small Flux subset for the InfluxDB test double: tokenizer, parser, evaluator, annotated CSV.

The double answers ``POST /api/v2/query`` for the queries PowerView sends (``--verify`` counts
the points of one file) and the few more a test may want. The query is tokenized and parsed
into a pipeline of calls, then evaluated on the stored points; anything outside the subset is a
``FluxError`` (HTTP 400) naming what is missing, so a test notices when the project starts to
send something the double cannot answer faithfully instead of getting a plausible wrong number.

Supported::

    from(bucket: "b")
      |> range(start: <time | int seconds | duration | now()>, stop: ...)
      |> filter(fn: (r) => <r.col or r["col"]> ==|!=|<|<=|>|>= <literal>,
                           combined with and / or / not / parentheses, exists r.col)
      |> count() | sum() | first() | last() | limit(n: N)
      |> group() | group(columns: [...], mode: "by"|"except")
      |> keep(columns: [...]) | drop(columns: [...])
      |> yield(name: "...")

Tables follow Flux's data model: ``from`` yields one table per series and field, ``range`` adds
``_start``/``_stop`` to the group key, ``filter`` drops tables left empty, aggregates keep the
group key columns, ``group()`` merges everything into one table.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from tests.doubles.line_protocol import UInt, field_kind


class FluxError(ValueError):
    """A query the subset cannot compile or run; the message is sent back with HTTP 400."""


# --------------------------------------------------------------------------- tokens

_TOKEN_PATTERNS = [
    ("space", r"[ \t\r\n]+"),
    ("comment", r"//[^\n]*"),
    (
        "time",
        r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2}))?(?![\w])",
    ),
    ("duration", r"(?:\d+(?:mo|ms|us|µs|ns|y|w|d|h|m|s))+(?![\w])"),
    ("float", r"\d+\.\d+(?:[eE][+-]?\d+)?"),
    ("int", r"\d+"),
    ("string", r'"(?:[^"\\]|\\.)*"'),
    ("regex", r"/(?:[^/\\\n]|\\.)+/"),
    ("ident", r"[A-Za-z_][A-Za-z0-9_]*"),
    ("op", r"\|>|=>|==|!=|<=|>=|=~|!~|[()\[\]{},:.<>+\-*=]"),
]
_TOKEN_RE = re.compile("|".join(f"(?P<{name}>{pattern})" for name, pattern in _TOKEN_PATTERNS))
_DURATION_PART = re.compile(r"(\d+)(mo|ms|us|µs|ns|y|w|d|h|m|s)")
_DURATION_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
    "w": 7 * 86_400_000_000_000,
}
_STRING_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t", "$": "$"}


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    offset: int


def tokenize(source: str) -> list[Token]:
    """Split Flux source into tokens; an unknown character is a compilation error."""
    tokens: list[Token] = []
    position = 0
    while position < len(source):
        match = _TOKEN_RE.match(source, position)
        if match is None:
            raise FluxError(f"compilation failed: unexpected character {source[position]!r}")
        kind = match.lastgroup or ""
        if kind not in ("space", "comment"):
            if kind == "regex" and tokens and tokens[-1].kind in ("ident", "int", "float"):
                kind, text = "op", "/"
                match_end = position + 1
                tokens.append(Token(kind, text, position))
                position = match_end
                continue
            tokens.append(Token(kind, match.group(), position))
        position = match.end()
    tokens.append(Token("end", "", len(source)))
    return tokens


# --------------------------------------------------------------------------- syntax tree


@dataclass(frozen=True)
class Literal:
    value: Any
    kind: str  # string, int, float, bool, time, duration


@dataclass(frozen=True)
class Column:
    name: str


@dataclass(frozen=True)
class Call:
    name: str
    args: dict[str, Any]


@dataclass(frozen=True)
class Binary:
    operator: str
    left: Any
    right: Any


@dataclass(frozen=True)
class Unary:
    operator: str
    operand: Any


@dataclass(frozen=True)
class Function:
    parameter: str
    body: Any


@dataclass(frozen=True)
class ArrayLiteral:
    items: tuple[Any, ...]


class Parser:
    """Recursive descent over the tokens of one pipeline expression."""

    def __init__(self, source: str) -> None:
        self.tokens = tokenize(source)
        self.index = 0
        self.function_parameter: str | None = None

    def peek(self, offset: int = 0) -> Token:
        return self.tokens[min(self.index + offset, len(self.tokens) - 1)]

    def next(self) -> Token:
        token = self.peek()
        self.index += 1
        return token

    def expect(self, text: str) -> Token:
        token = self.next()
        if token.text != text or token.kind in ("string", "end"):
            found = token.text or "end of query"
            raise FluxError(
                f"compilation failed: expected {text!r} at offset {token.offset}, found {found!r}"
            )
        return token

    def accept(self, text: str) -> bool:
        token = self.peek()
        if token.text == text and token.kind not in ("string", "end"):
            self.index += 1
            return True
        return False

    def parse_program(self) -> list[Call]:
        first = self.peek()
        if first.kind == "ident" and first.text in ("import", "option", "package"):
            raise FluxError(f"'{first.text}' statements are not supported by the test double")
        if first.kind == "ident" and self.peek(1).text == "=":
            raise FluxError("variable assignments are not supported by the test double")
        stages = [self.parse_call()]
        while self.accept("|>"):
            stages.append(self.parse_call())
        if self.peek().kind != "end":
            raise FluxError(
                "only one pipeline expression is supported by the test double; unexpected "
                f"{self.peek().text!r} at offset {self.peek().offset}"
            )
        return stages

    def parse_call(self) -> Call:
        name = self.next()
        if name.kind != "ident":
            raise FluxError(f"compilation failed: expected a function call at offset {name.offset}")
        self.expect("(")
        args: dict[str, Any] = {}
        while not self.accept(")"):
            key = self.next()
            if key.kind != "ident":
                raise FluxError(
                    f"compilation failed: expected a named argument in {name.text}() at offset "
                    f"{key.offset}"
                )
            self.expect(":")
            if key.text in args:
                raise FluxError(f"duplicate argument {key.text!r} in {name.text}()")
            args[key.text] = self.parse_expression()
            if not self.accept(","):
                self.expect(")")
                break
        return Call(name.text, args)

    def parse_expression(self) -> Any:
        if (
            self.peek().text == "("
            and self.peek(1).kind == "ident"
            and self.peek(2).text == ")"
            and self.peek(3).text == "=>"
        ):
            return self.parse_function()
        return self.parse_or()

    def parse_function(self) -> Function:
        self.expect("(")
        parameter = self.next().text
        self.expect(")")
        self.expect("=>")
        outer, self.function_parameter = self.function_parameter, parameter
        try:
            body = self.parse_or()
        finally:
            self.function_parameter = outer
        return Function(parameter, body)

    def parse_or(self) -> Any:
        left = self.parse_and()
        while self.accept("or"):
            left = Binary("or", left, self.parse_and())
        return left

    def parse_and(self) -> Any:
        left = self.parse_unary()
        while self.accept("and"):
            left = Binary("and", left, self.parse_unary())
        return left

    def parse_unary(self) -> Any:
        if self.accept("not"):
            return Unary("not", self.parse_unary())
        if self.accept("exists"):
            operand = self.parse_primary()
            if not isinstance(operand, Column):
                raise FluxError("exists needs a record column such as r.tag")
            return Unary("exists", operand)
        return self.parse_comparison()

    def parse_comparison(self) -> Any:
        left = self.parse_primary()
        operator = self.peek().text
        if self.peek().kind == "op" and operator in ("==", "!=", "<", "<=", ">", ">="):
            self.index += 1
            return Binary(operator, left, self.parse_primary())
        if operator in ("=~", "!~"):
            raise FluxError("regular expression comparisons are not supported by the test double")
        if self.peek().kind == "op" and operator in ("+", "-", "*", "/"):
            raise FluxError("arithmetic is not supported by the test double")
        return left

    def parse_primary(self) -> Any:
        token = self.next()
        if token.text == "(" and token.kind == "op":
            inner = self.parse_or()
            self.expect(")")
            return inner
        if token.text == "[" and token.kind == "op":
            items = []
            while not self.accept("]"):
                items.append(self.parse_primary())
                if not self.accept(","):
                    self.expect("]")
                    break
            return ArrayLiteral(tuple(items))
        if token.text == "-" and token.kind == "op":
            operand = self.next()
            if operand.kind == "duration":
                return Literal(-parse_duration(operand.text), "duration")
            if operand.kind in ("int", "float"):
                return Literal(-_number(operand), operand.kind)
            raise FluxError(f"compilation failed: cannot negate {operand.text!r}")
        if token.kind == "string":
            return Literal(_unquote(token.text), "string")
        if token.kind in ("int", "float"):
            return Literal(_number(token), token.kind)
        if token.kind == "duration":
            return Literal(parse_duration(token.text), "duration")
        if token.kind == "time":
            return Literal(parse_time(token.text), "time")
        if token.kind == "regex":
            raise FluxError("regular expressions are not supported by the test double")
        if token.kind == "ident":
            return self.parse_identifier(token)
        raise FluxError(
            f"compilation failed: unexpected {token.text or 'end of query'!r} "
            f"at offset {token.offset}"
        )

    def parse_identifier(self, token: Token) -> Any:
        if token.text in ("true", "false"):
            return Literal(token.text == "true", "bool")
        if self.function_parameter is not None and token.text == self.function_parameter:
            if self.accept("."):
                name = self.next()
                if name.kind != "ident":
                    raise FluxError(
                        f"compilation failed: expected a column name after {token.text}."
                    )
                return Column(name.text)
            if self.accept("["):
                name = self.next()
                if name.kind != "string":
                    raise FluxError("compilation failed: expected a string column name in []")
                self.expect("]")
                return Column(_unquote(name.text))
            raise FluxError(f"the record {token.text!r} can only be used as {token.text}.column")
        if token.text == "now" and self.accept("("):
            self.expect(")")
            return Call("now", {})
        raise FluxError(
            f"identifier {token.text!r} is not supported by the test double "
            "(no variables, packages or user functions)"
        )


def _number(token: Token) -> int | float:
    return int(token.text) if token.kind == "int" else float(token.text)


def _unquote(text: str) -> str:
    body = text[1:-1]
    if "${" in body:
        raise FluxError("string interpolation is not supported by the test double")
    return re.sub(r"\\(.)", lambda match: _STRING_ESCAPES.get(match.group(1), match.group(0)), body)


def parse_duration(text: str) -> int:
    """A Flux duration literal (``1h30m``) in nanoseconds; months and years are refused."""
    total = 0
    for amount, unit in _DURATION_PART.findall(text):
        if unit in ("mo", "y"):
            raise FluxError("calendar durations (mo, y) are not supported by the test double")
        total += int(amount) * _DURATION_NS[unit]
    return total


def parse_time(text: str) -> int:
    """An RFC3339 date or date-time literal in Unix nanoseconds (UTC when only a date)."""
    if "T" not in text:
        text += "T00:00:00Z"
    main, _, rest = text.partition(".")
    fraction = ""
    if rest:
        digits = re.match(r"\d+", rest)
        fraction = digits.group() if digits else ""
        main += rest[len(fraction) :]
    moment = datetime.fromisoformat(main.replace("Z", "+00:00"))
    seconds = int(moment.timestamp())
    return seconds * 1_000_000_000 + int((fraction + "000000000")[:9])


# --------------------------------------------------------------------------- tables


@dataclass
class Table:
    """Columns in order with their Flux types, the group key, and the rows (dicts)."""

    columns: list[tuple[str, str]]
    key: tuple[str, ...]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def key_values(self) -> tuple[Any, ...]:
        first = self.rows[0] if self.rows else {}
        return tuple(first.get(name) for name in self.key)


FLUX_TYPES = {
    "float": "double",
    "integer": "long",
    "unsigned": "unsignedLong",
    "string": "string",
    "boolean": "boolean",
}

SeriesSource = Callable[[], Iterable[tuple[str, tuple[tuple[str, str], ...], str, dict[int, Any]]]]


@dataclass
class QueryResult:
    """The name given by ``yield`` (``_result`` by default) and the tables."""

    name: str
    tables: list[Table]


_STAGE_ARGS: dict[str, set[str]] = {
    "range": {"start", "stop"},
    "filter": {"fn", "onEmpty"},
    "count": {"column"},
    "sum": {"column"},
    "first": {"column"},
    "last": {"column"},
    "limit": {"n", "offset"},
    "group": {"columns", "mode"},
    "keep": {"columns"},
    "drop": {"columns"},
    "yield": {"name"},
}


def compile_query(source: str) -> list[Call]:
    """Parse a query and check every stage against the supported subset."""
    stages = Parser(source).parse_program()
    head = stages[0]
    if head.name != "from":
        raise FluxError(f"the query must start with from(), not {head.name}()")
    if set(head.args) - {"bucket"} or "bucket" not in head.args:
        raise FluxError('from() is supported with a bucket name only: from(bucket: "name")')
    if not isinstance(head.args["bucket"], Literal) or head.args["bucket"].kind != "string":
        raise FluxError("from(bucket:) needs a string literal")
    for stage in stages[1:]:
        if stage.name == "from":
            raise FluxError("from() can only start the pipeline")
        allowed = _STAGE_ARGS.get(stage.name)
        if allowed is None:
            raise FluxError(f"function {stage.name}() is not supported by the test double")
        unknown = set(stage.args) - allowed
        if unknown:
            raise FluxError(
                f"{stage.name}() argument(s) {sorted(unknown)} are not supported by the test double"
            )
    if len(stages) < 2 or stages[1].name != "range":
        raise FluxError(
            f'cannot submit unbounded read to "{bucket_of(stages)}"; try bounding '
            "'from' with a call to 'range'"
        )
    if [stage.name for stage in stages].count("yield") > 1 or (
        any(stage.name == "yield" for stage in stages[:-1])
    ):
        raise FluxError("yield() is supported once, at the end of the pipeline")
    return stages


def bucket_of(stages: list[Call]) -> str:
    """The bucket name of a compiled query's ``from``."""
    return stages[0].args["bucket"].value


def _time_argument(value: Any, now_ns: int, name: str) -> int:
    if isinstance(value, Call) and value.name == "now":
        return now_ns
    if isinstance(value, Literal):
        if value.kind == "time":
            return value.value
        if value.kind == "duration":
            return now_ns + value.value
        if value.kind == "int":
            return value.value * 1_000_000_000
    raise FluxError(f"range({name}:) needs a time, a duration, an integer (Unix seconds) or now()")


def _strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, ArrayLiteral) or not all(
        isinstance(item, Literal) and item.kind == "string" for item in value.items
    ):
        raise FluxError(f"{what} needs an array of strings")
    return [item.value for item in value.items]


def _literal(value: Any, kinds: tuple[str, ...], what: str) -> Any:
    if not isinstance(value, Literal) or value.kind not in kinds:
        raise FluxError(f"{what} needs a {' or '.join(kinds)} literal")
    return value.value


def _evaluate(node: Any, row: dict[str, Any]) -> Any:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Column):
        return row.get(node.name)
    if isinstance(node, Unary):
        if node.operator == "exists":
            return row.get(node.operand.name) is not None
        operand = _evaluate(node.operand, row)
        return None if operand is None else not operand
    if isinstance(node, Binary):
        if node.operator == "and":
            left = _evaluate(node.left, row)
            return bool(left) and bool(_evaluate(node.right, row))
        if node.operator == "or":
            left = _evaluate(node.left, row)
            return bool(left) or bool(_evaluate(node.right, row))
        left, right = _evaluate(node.left, row), _evaluate(node.right, row)
        if left is None or right is None:
            return None
        if isinstance(left, str) != isinstance(right, str):
            raise FluxError(
                f"type error: cannot compare {type(left).__name__} with "
                f"{type(right).__name__} using {node.operator}"
            )
        return {
            "==": left == right,
            "!=": left != right,
            "<": left < right,
            "<=": left <= right,
            ">": left > right,
            ">=": left >= right,
        }[node.operator]
    if isinstance(node, Call):
        raise FluxError(f"{node.name}() cannot be used inside a filter by the test double")
    raise FluxError(f"unsupported expression in filter: {node!r}")


def _regroup(tables: list[Table], key: list[str]) -> list[Table]:
    groups: dict[tuple[Any, ...], Table] = {}
    for table in tables:
        for row in table.rows:
            values = tuple(row.get(name) for name in key)
            target = groups.get(values)
            if target is None:
                target = groups[values] = Table([], tuple(key))
            for column in table.columns:
                if column not in target.columns:
                    target.columns.append(column)
            target.rows.append(row)
    return list(groups.values())


def _aggregate(table: Table, column: str, how: str) -> Table:
    values = [row[column] for row in table.rows if row.get(column) is not None]
    types = dict(table.columns)
    value_type = types.get(column, "double")
    if how == "count":
        result, value_type = len(values), "long"
    else:
        if value_type in ("string", "boolean", "dateTime:RFC3339"):
            raise FluxError(f"unsupported input type for sum aggregate: {value_type}")
        result = sum(values) if values else None
        if value_type == "unsignedLong" and result is not None:
            result = UInt(result)
    columns = [c for c in table.columns if c[0] in table.key] + [(column, value_type)]
    row = {name: table.rows[0].get(name) for name in table.key} if table.rows else {}
    row[column] = result
    return Table(columns, table.key, [row])


def _select(table: Table, column: str, last: bool) -> Table:
    rows = [row for row in table.rows if row.get(column) is not None]
    chosen = rows[-1:] if last else rows[:1]
    return Table(list(table.columns), table.key, chosen)


def run_query(stages: list[Call], series: SeriesSource, now_ns: int) -> QueryResult:
    """Evaluate a compiled pipeline over (measurement, tags, field, {time: value}) series."""
    start_ns = stop_ns = 0
    tables: list[Table] = []
    result_name = "_result"
    for index, stage in enumerate(stages[1:], start=1):
        args = stage.args
        if stage.name == "range":
            if "start" not in args:
                raise FluxError("range() needs a start")
            start_ns = _time_argument(args["start"], now_ns, "start")
            stop_ns = _time_argument(args.get("stop", Call("now", {})), now_ns, "stop")
            tables = _read(series, start_ns, stop_ns)
        elif stage.name == "filter":
            function = args.get("fn")
            if not isinstance(function, Function):
                raise FluxError("filter() needs fn: (r) => <predicate>")
            on_empty = _literal(
                args.get("onEmpty", Literal("drop", "string")), ("string",), "filter(onEmpty:)"
            )
            kept = []
            for table in tables:
                rows = [row for row in table.rows if _evaluate(function.body, row) is True]
                if rows or on_empty == "keep":
                    kept.append(Table(table.columns, table.key, rows))
            tables = kept
        elif stage.name in ("count", "sum"):
            column = _literal(
                args.get("column", Literal("_value", "string")),
                ("string",),
                f"{stage.name}(column:)",
            )
            tables = [_aggregate(table, column, stage.name) for table in tables]
        elif stage.name in ("first", "last"):
            column = _literal(
                args.get("column", Literal("_value", "string")),
                ("string",),
                f"{stage.name}(column:)",
            )
            tables = [_select(table, column, stage.name == "last") for table in tables]
            tables = [table for table in tables if table.rows]
        elif stage.name == "limit":
            count = _literal(args.get("n"), ("int",), "limit(n:)")
            offset = _literal(args.get("offset", Literal(0, "int")), ("int",), "limit(offset:)")
            tables = [Table(t.columns, t.key, t.rows[offset : offset + count]) for t in tables]
        elif stage.name == "group":
            columns = _strings(args.get("columns", ArrayLiteral(())), "group(columns:)")
            mode = _literal(args.get("mode", Literal("by", "string")), ("string",), "group(mode:)")
            if mode not in ("by", "except"):
                raise FluxError(f'group(mode:) must be "by" or "except", not {mode!r}')
            if mode == "except":
                every = [name for table in tables for name, _ in table.columns]
                columns = [name for name in dict.fromkeys(every) if name not in columns]
            tables = _regroup(tables, columns)
        elif stage.name in ("keep", "drop"):
            columns = _strings(args.get("columns"), f"{stage.name}(columns:)")
            for table in tables:
                keep = stage.name == "keep"
                table.columns = [c for c in table.columns if (c[0] in columns) == keep]
                names = {name for name, _ in table.columns}
                table.key = tuple(name for name in table.key if name in names)
                table.rows = [{k: v for k, v in row.items() if k in names} for row in table.rows]
        elif stage.name == "yield":
            result_name = _literal(
                args.get("name", Literal("_result", "string")), ("string",), "yield(name:)"
            )
        else:  # pragma: no cover - compile_query already refused it
            raise FluxError(f"function {stage.name}() is not supported (stage {index})")
    return QueryResult(result_name, tables)


def _read(series: SeriesSource, start_ns: int, stop_ns: int) -> list[Table]:
    tables = []
    for measurement, tags, field_name, values in series():
        times = sorted(t for t in values if start_ns <= t < stop_ns)
        if not times:
            continue
        sample = values[times[0]]
        tag_names = [name for name, _ in tags]
        columns = [
            ("_start", "dateTime:RFC3339"),
            ("_stop", "dateTime:RFC3339"),
            ("_time", "dateTime:RFC3339"),
            ("_value", FLUX_TYPES[field_kind(sample)]),
            ("_field", "string"),
            ("_measurement", "string"),
        ] + [(name, "string") for name in tag_names]
        key = ("_start", "_stop", "_field", "_measurement", *tag_names)
        base = {
            "_start": start_ns,
            "_stop": stop_ns,
            "_field": field_name,
            "_measurement": measurement,
            **dict(tags),
        }
        rows = [{**base, "_time": t, "_value": values[t]} for t in times]
        tables.append(Table(columns, key, rows))
    return tables


# --------------------------------------------------------------------------- annotated CSV


def format_time(time_ns: int) -> str:
    """RFC3339 with nanoseconds, trailing zeros trimmed, as Flux writes ``_time``."""
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    return text + "Z"


def format_value(value: Any, flux_type: str) -> str:
    """One CSV cell in Flux's spelling (Go's shortest float form without exponent)."""
    if value is None:
        return ""
    if flux_type == "dateTime:RFC3339":
        return format_time(value)
    if flux_type == "boolean":
        return "true" if value else "false"
    if flux_type == "double":
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        text = repr(float(value))
        if "e" in text or "E" in text:
            text = format(Decimal(text), "f")
        return text[:-2] if text.endswith(".0") else text
    return str(int(value)) if flux_type in ("long", "unsignedLong") else str(value)


@dataclass(frozen=True)
class Dialect:
    """The ``dialect`` object of a query request (defaults as in the OpenAPI contract)."""

    header: bool = True
    delimiter: str = ","
    annotations: tuple[str, ...] = ()
    comment_prefix: str = "#"

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Dialect:
        """Read a request's dialect; a missing one means header, comma, no annotations."""
        data = data or {}
        return cls(
            header=bool(data.get("header", True)),
            delimiter=str(data.get("delimiter", ",")),
            annotations=tuple(data.get("annotations") or ()),
            comment_prefix=str(data.get("commentPrefix", "#")),
        )


def to_annotated_csv(result: QueryResult, dialect: Dialect) -> str:
    """Annotated CSV as InfluxDB 2 sends it: one block per table schema, CRLF line ends."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=dialect.delimiter, lineterminator="\r\n")
    previous_schema = None
    for table_number, table in enumerate(result.tables):
        schema = (tuple(table.columns), table.key)
        if schema != previous_schema:
            if previous_schema is not None:
                out.write("\r\n")
            names = [name for name, _ in table.columns]
            prefix = dialect.comment_prefix
            if "datatype" in dialect.annotations:
                writer.writerow(
                    [
                        f"{prefix}datatype",
                        "string",
                        "long",
                        *(flux_type for _, flux_type in table.columns),
                    ]
                )
            if "group" in dialect.annotations:
                writer.writerow(
                    [
                        f"{prefix}group",
                        "false",
                        "false",
                        *("true" if name in table.key else "false" for name in names),
                    ]
                )
            if "default" in dialect.annotations:
                writer.writerow([f"{prefix}default", result.name, *([""] * (len(names) + 1))])
            if dialect.header:
                writer.writerow(["", "result", "table", *names])
            previous_schema = schema
        result_cell = "" if "default" in dialect.annotations else result.name
        for row in table.rows:
            writer.writerow(
                [
                    "",
                    result_cell,
                    str(table_number),
                    *(format_value(row.get(name), flux_type) for name, flux_type in table.columns),
                ]
            )
    out.write("\r\n")
    return out.getvalue()

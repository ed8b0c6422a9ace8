"""The rules of a batch input file's lines: one function per error code of the contract (the whole file's
are file_rules.py's).

A line rule returns the Problem it finds in one line, or None (the two that need no looking, a missing field
and a body that is not an object, are called once that is known); `LineRules` applies them in the contract's
order and remembers what spans lines (custom_ids taken, embedding inputs). Where the contract is silent:

- A field that is absent is `missing_required_parameter`; a field that is present, even as null, is judged
  by its value (`invalid_custom_id`, `invalid_method`, `url_mismatch`, `invalid_body`).
- A line reports every problem it has, in the order custom_id, method, url, body (one entry per missing
  field); only a line that is not a JSON object stops at that.
- A url without its leading slash names the same endpoint (`v1/embeddings`); otherwise it must be exact.
- method must be exactly `POST`. `body.model` is checked only when the key is present; null differs.
- A custom_id is taken at its first valid occurrence, even if that line has other problems; every later
  occurrence is a duplicate.
- Nesting deep enough to exhaust the parser is not JSON either.

A line is judged as Python's json judges it (its verdicts and messages are the contract's). orjson
reads it first, decoding UTF-8 and parsing in one pass: where it takes a line its value is json's, but
for integers beyond 64 bits, which become floats (only the embeddings count tells an int from a float,
and it asks json again). Where orjson refuses a line (invalid JSON or UTF-8, lone surrogate escapes,
numbers that overflow to infinity, nesting past 1,024 levels) json decides, and words the refusal; a
number that overflows, json reads as infinity, and it is refused as NaN is (`batchline.jsonl.decode`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, NamedTuple

import orjson

from batchline.jsonl import decode
from batchline.models import canonical_path

MAX_CUSTOM_ID_CHARS = 512
DUPLICATE_CUSTOM_ID_MESSAGE = (
    "The custom_id for this request is a duplicate of another request. "
    "The custom_id parameter must be unique for each request in a batch."
)
EMBEDDINGS = "/v1/embeddings"
# Field of the body each endpoint cannot do without.
_REQUIRED_BODY_FIELD = {
    "/v1/chat/completions": "messages",
    "/v1/completions": "prompt",
    "/v1/embeddings": "input",
    "/v1/responses": "input",
    "/v1/moderations": "input",
}
_JSON_TYPES = {str: "a string", bool: "a boolean", int: "a number", float: "a number", list: "an array"}


class Problem(NamedTuple):
    """One problem of a line, before it is numbered (a tuple: a failing file may have millions)."""

    code: str
    message: str
    param: str | None = None


def _json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for messages."""
    if value is None:
        return "null"
    return _JSON_TYPES.get(type(value), "an object")


def _show(value: Any) -> str:
    """A client value for a message: a string quoted and cut short (never echoed whole), else its type."""
    if not isinstance(value, str):
        return _json_type(value)
    text = json.dumps(value[:64], ensure_ascii=False)
    return text[:-1] + '…"' if len(value) > 64 else text


def _writable(text: str) -> bool:
    """A string UTF-8 can encode: JSON's `\\ud800` escape decodes to a lone surrogate, which it cannot."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def embedding_inputs(value: Any) -> int | None:
    """How many embeddings `input` asks for, or None when it is not a string or a non-empty array."""
    if isinstance(value, str):
        return 1
    if isinstance(value, list) and value:
        # A flat array of integers is one token array; otherwise each element is one input.
        return 1 if isinstance(value[0], int) else len(value)
    return None


def json_object(raw: bytes) -> dict[str, Any] | Problem:
    """invalid_json_line: the line's JSON object, or why it is not one (which stops its checks)."""
    try:
        request = decode(raw)
    except UnicodeDecodeError as exc:
        return Problem("invalid_json_line", f"This line is not valid UTF-8 (byte {exc.start + 1}).")
    except json.JSONDecodeError as exc:
        return _not_json(f"{exc.msg} (column {exc.colno})")
    except ValueError as exc:
        return _not_json(str(exc))
    except RecursionError:
        return _not_json("it is nested too deeply")
    if not isinstance(request, dict):
        return Problem("invalid_json_line", f"This line is {_json_type(request)}, not a JSON object.")
    return request


def _not_json(detail: str) -> Problem:
    return Problem("invalid_json_line", f"This line is not parseable as valid JSON: {detail}.")


def unwritable_string(raw: bytes, request: dict[str, Any]) -> Problem | None:
    """invalid_json_line: a key or string, the custom_id's value aside, that UTF-8 cannot write."""
    # Only an escape can make a lone surrogate (raw bytes must be strict UTF-8): look when there is one.
    if b"\\ud" not in raw and b"\\uD" not in raw:
        return None
    stack: list[Any] = [v for k, v in request.items() if k != "custom_id"] + list(request)
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if not _writable(value):
                return Problem(
                    "invalid_json_line",
                    "This line holds a string that cannot be written as UTF-8 (an escaped lone surrogate).",
                )
        elif isinstance(value, dict):
            stack.extend(value)
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return None


def missing_required_parameter(param: str) -> Problem:
    """missing_required_parameter: a required top-level field is absent."""
    return Problem("missing_required_parameter", f"Missing required parameter: '{param}'.", param)


def invalid_custom_id(custom_id: Any) -> Problem | None:
    """invalid_custom_id: not a non-empty string of at most 512 characters that UTF-8 can write."""
    if not isinstance(custom_id, str) or not 0 < len(custom_id) <= MAX_CUSTOM_ID_CHARS:
        got = f"a string of {len(custom_id)} characters" if isinstance(custom_id, str) else _show(custom_id)
        return Problem(
            "invalid_custom_id",
            f"Invalid 'custom_id': expected a non-empty string of at most {MAX_CUSTOM_ID_CHARS} characters, got {got}.",
            "custom_id",
        )
    if not _writable(custom_id):
        return Problem(
            "invalid_custom_id",
            "Invalid 'custom_id': it holds an escaped lone surrogate, which cannot be written as UTF-8.",
            "custom_id",
        )
    return None


def duplicate_custom_id(custom_id: str, taken: set[bytes]) -> Problem | None:
    """duplicate_custom_id: a custom_id an earlier line took; a new one is taken here."""
    # 16-byte digests: a false duplicate would fail a good batch, so 64 bits is too few at scale.
    digest = hashlib.blake2b(custom_id.encode("utf-8"), digest_size=16).digest()
    if digest in taken:
        return Problem("duplicate_custom_id", DUPLICATE_CUSTOM_ID_MESSAGE, "custom_id")
    taken.add(digest)
    return None


def invalid_method(method: Any) -> Problem | None:
    """invalid_method: anything but exactly POST."""
    if method == "POST":
        return None
    return Problem("invalid_method", f"Invalid 'method': only POST is supported, got {_show(method)}.", "method")


def url_mismatch(url: Any, endpoint: str) -> Problem | None:
    """url_mismatch: a url that is not the batch's endpoint."""
    if isinstance(url, str) and canonical_path(url) == endpoint:
        return None
    return Problem("url_mismatch", f"The url {_show(url)} does not match the batch's endpoint '{endpoint}'.", "url")


def invalid_body(body: Any) -> Problem:
    """invalid_body: the body is not an object (which stops the body's checks)."""
    return Problem("invalid_body", f"Invalid 'body': expected an object, got {_json_type(body)}.", "body")


def invalid_body_field(body: dict[str, Any], endpoint: str) -> Problem | None:
    """invalid_body: the field the endpoint cannot do without is absent or of the wrong shape."""
    field = _REQUIRED_BODY_FIELD[endpoint]
    value = body.get(field)
    if endpoint == EMBEDDINGS:
        valid = embedding_inputs(value) is not None
        need = "a string or a non-empty array"
    elif endpoint == "/v1/chat/completions":
        valid = isinstance(value, list) and bool(value)
        need = "a non-empty array of messages"
    else:
        valid = isinstance(value, str | list)
        need = "a string or an array"
    if valid:
        return None
    if field not in body:
        got = "it is missing"
    elif isinstance(value, list) and not value:
        got = "got an empty array"
    else:
        got = f"got {_json_type(value)}"
    return Problem("invalid_body", f"Invalid 'body.{field}': {endpoint} needs {need}; {got}.", f"body.{field}")


def model_mismatch(body: dict[str, Any], model: str | None, aliases: frozenset[str] = frozenset()) -> Problem | None:
    """model_mismatch: a body.model, when present, that is neither the job's model nor one of its aliases."""
    named = body.get("model", model)
    if model is None or named == model or (isinstance(named, str) and named in aliases):
        return None
    also = f" or its aliases ({', '.join(sorted(aliases))})" if aliases else ""
    return Problem(
        "model_mismatch",
        f"The model {_show(body['model'])} does not match the job's model '{model}'{also}.",
        "body.model",
    )


class LineRules:
    """The line rules of one file, in their order, and what they remember from line to line."""

    def __init__(self, endpoint: str, model: str | None, aliases: frozenset[str] = frozenset()) -> None:
        self.endpoint = endpoint
        self.model = model
        self.aliases = aliases
        self.custom_ids: set[bytes] = set()
        self.embedding_inputs = 0

    def check(self, raw: bytes) -> list[Problem]:
        """Every problem of one non-blank line, in the contract's order."""
        try:
            request = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return self._check_refused(raw)
        if not isinstance(request, dict):
            return [Problem("invalid_json_line", f"This line is {_json_type(request)}, not a JSON object.")]
        # orjson refuses lone surrogates: every string it gave UTF-8 can write.
        return self._check_request(raw, request, None)

    def _check_refused(self, raw: bytes) -> list[Problem]:
        """A line orjson refused: json's verdict, and when json takes it, the checks of its value."""
        request = json_object(raw)
        if isinstance(request, Problem):
            return [request]
        return self._check_request(raw, request, unwritable_string(raw, request))

    def _check_request(self, raw: bytes, request: dict[str, Any], unwritable: Problem | None) -> list[Problem]:
        # Written out, not looped over: this runs for each of up to millions of lines.
        found: list[Problem] = []
        if unwritable:
            found.append(unwritable)
        if "custom_id" not in request:
            found.append(missing_required_parameter("custom_id"))
        else:
            custom_id = request["custom_id"]
            if problem := invalid_custom_id(custom_id) or duplicate_custom_id(custom_id, self.custom_ids):
                found.append(problem)
        if unwritable:
            return found
        if "method" not in request:
            found.append(missing_required_parameter("method"))
        elif problem := invalid_method(request["method"]):
            found.append(problem)
        if "url" not in request:
            found.append(missing_required_parameter("url"))
        elif problem := url_mismatch(request["url"], self.endpoint):
            found.append(problem)
        if "body" not in request:
            found.append(missing_required_parameter("body"))
        elif not isinstance(body := request["body"], dict):
            found.append(invalid_body(body))
        else:
            if self.endpoint == EMBEDDINGS:
                self.embedding_inputs += self._embedding_inputs(raw, body.get("input")) or 0
            if problem := invalid_body_field(body, self.endpoint):
                found.append(problem)
            if problem := model_mismatch(body, self.model, self.aliases):
                found.append(problem)
        return found

    @staticmethod
    def _embedding_inputs(raw: bytes, value: Any) -> int | None:
        """embedding_inputs of json's value: orjson makes an integer beyond 64 bits a float."""
        if isinstance(value, list) and value and isinstance(value[0], float):
            value = decode(raw)["body"]["input"]
        return embedding_inputs(value)

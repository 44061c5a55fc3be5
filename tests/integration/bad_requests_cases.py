"""The catalogue of bad ``POST /v1/predict`` requests that ``test_bad_inputs.py`` sends to a served tiny model.

Each names the TestClient keyword arguments, the documented status and error code
(docs/serving.md) and the words the one-line message must contain. The server
under test has small limits: 4 inputs per request, 200 characters per input, a
4,000-byte body, max_new_tokens up to 16, num_beams up to 2.

Importable as ``bad_requests_cases`` (pytest puts this folder on sys.path: it has no __init__.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class HttpCase:
    """One bad ``POST /v1/predict``: keyword arguments for the TestClient and the documented answer."""

    name: str
    request: dict[str, Any]
    status: int
    code: str
    needles: tuple[str, ...]


JSON = {"content-type": "application/json"}

HTTP_CASES = [
    HttpCase("body cut off mid-JSON", {"content": b'{"inputs": "x",', "headers": JSON}, 400, "invalid_json", ("not valid JSON",)),
    HttpCase("body that is not UTF-8", {"content": b'{"inputs": "caf\xe9"}', "headers": JSON}, 400, "invalid_json", ("not valid JSON",)),
    HttpCase("JSON nested 1,900 deep", {"content": b'{"inputs": ' + b"[" * 1900 + b"]" * 1900 + b"}", "headers": JSON},
             400, "invalid_json", ("not valid JSON",)),
    HttpCase("Content-Length that is not a number", {"content": b'{"inputs": "x"}', "headers": {**JSON, "content-length": "ten"}},
             400, "bad_content_length", ("Content-Length",)),
    HttpCase("form body", {"content": b"inputs=x", "headers": {"content-type": "application/x-www-form-urlencoded"}},
             415, "unsupported_media_type", ("application/json",)),
    HttpCase("oversize body", {"json": {"inputs": "z" * 5000}}, 413, "body_too_large", ("limit is 4000",)),
    HttpCase("one input over the character limit", {"json": {"inputs": ["ok", "y" * 201]}}, 413, "input_too_long",
             ("input 1 has 201 characters",)),
    HttpCase("inputs null", {"json": {"inputs": None}}, 422, "invalid_request", ("inputs: must be a text",)),
    HttpCase("empty inputs list", {"json": {"inputs": []}}, 422, "invalid_request", ("list of 1 to 4",)),
    HttpCase("list of numbers", {"json": {"inputs": [1, 2]}}, 422, "invalid_request", ("inputs: must be a text",)),
    HttpCase("object with a number", {"json": {"inputs": {"text": 5}}}, 422, "invalid_request", ("inputs: must be a text",)),
    HttpCase("object without the task's input", {"json": {"inputs": {"question": "why?"}}}, 422, "invalid_input",
             ("input 0: 'text' must be non-empty text (got keys 'question')",)),
    HttpCase("empty text in a list", {"json": {"inputs": ["fine", ""]}}, 422, "invalid_input", ("input 1",)),
    HttpCase("num_beams 0", {"json": {"inputs": "x", "num_beams": 0}}, 422, "invalid_request", ("num_beams",)),
    HttpCase("negative temperature", {"json": {"inputs": "x", "do_sample": True, "temperature": -0.5}}, 422, "invalid_request",
             ("temperature",)),
    HttpCase("max_new_tokens 10**12", {"json": {"inputs": "x", "max_new_tokens": 10**12}}, 422, "invalid_request",
             ("max_new_tokens", "less than or equal to 16")),
    HttpCase("max_new_tokens true", {"json": {"inputs": "x", "max_new_tokens": True}}, 422, "invalid_request", ("max_new_tokens",)),
    HttpCase("top_k as text", {"json": {"inputs": "x", "top_k": "5"}}, 422, "invalid_request", ("top_k",)),
    HttpCase("Infinity repetition penalty", {"content": b'{"inputs": "x", "repetition_penalty": Infinity}', "headers": JSON},
             422, "invalid_request", ("repetition_penalty",)),
    HttpCase("min_new_tokens above max_new_tokens in a request", {"json": {"inputs": "x", "min_new_tokens": 9, "max_new_tokens": 2}},
             422, "invalid_input", ("min_new_tokens (9) is larger than max_new_tokens (2)",)),
    HttpCase("unknown request field", {"json": {"inputs": "x", "beams": 2}}, 422, "invalid_request", ("beams: an unknown",)),
]

#: Documented error statuses of POST /v1/predict (docs/serving.md); nothing else may answer bad input.
DOCUMENTED_STATUSES = {400, 401, 413, 415, 422, 503, 504}

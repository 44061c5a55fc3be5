"""Request and response bodies of the HTTP API (pydantic models, hence the OpenAPI schema).

The request model is built per server from its limits, so ``/openapi.json``
states the real bounds (most inputs per request, largest ``max_new_tokens``)
and a request outside them is refused with 422 before it reaches the model.
Types are strict: ``"8"`` is not a number and ``1`` is not ``true``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from texttune.config import ServeConfig
from texttune.config_fields import annotation_type
from texttune.tasks.registry import all_request_options, request_option_help

#: One input: a text, or an object keyed by the task's inputs ({"question", "context"},
#: {"tokens": [words]} for token classification, {"messages": [{"role", "content"}, ...]} for chat...).
Input = str | dict[str, str | list[str] | list[dict[str, str]]]

#: Server limits that cap a request option below its declared bound (ServeConfig field names).
_CAPS: dict[str, str] = {"max_new_tokens": "max_new_tokens_limit", "min_new_tokens": "max_new_tokens_limit",
                         "num_beams": "max_beams_limit"}


def _option_field(name: str, by_task: dict[str, Any], config: ServeConfig) -> tuple[Any, Any]:
    """(annotation, pydantic Field) of one request option: its type, choices and bounds as declared, capped by the server."""
    f = next(iter(by_task.values()))  # tasks sharing a name share its type and bounds (top_k)
    base, _ = annotation_type(f.type)
    kind: Any = Literal[tuple(f.metadata["choices"])] if f.metadata.get("choices") else base
    bounds = dict(f.metadata.get("bounds") or {})
    if name in _CAPS:
        bounds["le"] = min(bounds.get("le", float("inf")), getattr(config, _CAPS[name]))
    return kind | None, Field(None, description=request_option_help(by_task), **bounds)


def request_model(config: ServeConfig) -> type[BaseModel]:
    """The ``POST /v1/predict`` body for a server with these limits.

    The options are every registered task's request options, declared once with their
    bounds (``config.py`` and the tasks' options); a served model refuses those its task
    does not take (422, naming them).
    """
    inputs_doc = ("One input or a list of inputs. An input is a text, or an object keyed by the task's inputs "
                  "(see GET /v1/model: 'inputs'), e.g. {\"question\": ..., \"context\": ...}.")
    fields: dict[str, Any] = {
        "inputs": (Input | Annotated[list[Input], Field(min_length=1, max_length=config.max_inputs_per_request)],
                   Field(description=inputs_doc, examples=["A text to run the model on."])),
        **{name: _option_field(name, by_task, config) for name, by_task in all_request_options().items()},
    }
    model = create_model(  # type: ignore[call-overload]
        "PredictRequest",
        __config__=ConfigDict(extra="forbid", strict=True, allow_inf_nan=False),
        __doc__="Inputs and per-request options. Options that do not apply to the served task are refused (422).",
        **fields,
    )
    model.__module__ = __name__
    return model


class Timing(BaseModel):
    """Where the request's time went (milliseconds)."""

    total_ms: float = Field(description="From the request's arrival to its response.")
    queue_ms: float = Field(description="Longest wait of one of its inputs for a batch slot.")
    inference_ms: float = Field(description="Longest model call one of its inputs was part of.")
    batch_sizes: list[int] = Field(description="Size of the batch each input ran in (other requests' inputs included).")


class PredictResponse(BaseModel):
    """Outputs in input order: a text for generation tasks, an object for the others."""

    task: str
    outputs: list[Any]
    timing: Timing


class ErrorBody(BaseModel):
    status: int
    code: str
    message: str
    type: str = Field(description="OpenAI's error type: invalid_request_error, authentication_error, server_error...")
    param: str | None = Field(None, description="The request field at fault, when one is")


class ErrorResponse(BaseModel):
    """Every error the API returns has this shape."""

    error: ErrorBody


class Health(BaseModel):
    status: Literal["ok", "loading", "failed"]
    detail: str | None = None


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        400: "The body is not valid JSON.",
        401: "Missing or wrong API key.",
        413: "Body or one input too large.",
        415: "The body is not sent as application/json.",
        422: "Inputs or options invalid for this model, or beyond the server's limits.",
        503: "Queue full or model not loaded yet (see Retry-After).",
        504: "The request took longer than the server's timeout.",
    }.items()
}

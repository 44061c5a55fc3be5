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

#: One input: a text, or an object keyed by the task's inputs ({"question", "context"},
#: {"tokens": [words]} for token classification...).
Input = str | dict[str, str | list[str]]

AGGREGATIONS = Literal["none", "simple", "first", "max", "average"]
#: Smallest temperature and repetition penalty a request may ask for (logits are divided by them).
MIN_DIVISOR = 0.01


def request_model(config: ServeConfig) -> type[BaseModel]:
    """The ``POST /v1/predict`` body for a server with these limits."""
    inputs_doc = ("One input or a list of inputs. An input is a text, or an object keyed by the task's inputs "
                  "(see GET /v1/model: 'inputs'), e.g. {\"question\": ..., \"context\": ...}.")
    fields: dict[str, Any] = {
        "inputs": (Input | Annotated[list[Input], Field(min_length=1, max_length=config.max_inputs_per_request)],
                   Field(description=inputs_doc, examples=["A text to run the model on."])),
        "max_new_tokens": (int | None, Field(None, ge=1, le=config.max_new_tokens_limit, description="Most tokens to generate.")),
        "min_new_tokens": (int | None, Field(None, ge=0, le=config.max_new_tokens_limit, description="Fewest tokens to generate.")),
        "num_beams": (int | None, Field(None, ge=1, le=config.max_beams_limit, description="Beam search width.")),
        "do_sample": (bool | None, Field(None, description="Sample instead of greedy or beam decoding.")),
        # Lower bounds keep sampling finite: logits divided by 1e-300 overflow to inf and sampling fails.
        "temperature": (float | None, Field(None, ge=MIN_DIVISOR, le=100, description="Sampling temperature.")),
        "top_k": (int | None, Field(None, ge=1, le=1000, description="Generation: sample from the k most likely tokens. Fill-mask: candidates per mask.")),
        "top_p": (float | None, Field(None, gt=0, le=1, description="Nucleus sampling probability mass.")),
        "no_repeat_ngram_size": (int | None, Field(None, ge=1, le=100, description="Never repeat an n-gram of this size.")),
        "length_penalty": (float | None, Field(None, ge=-100, le=100, description="Beam search length penalty.")),
        "repetition_penalty": (float | None, Field(None, ge=MIN_DIVISOR, le=100, description="Penalty for repeated tokens.")),
        "aggregation": (AGGREGATIONS | None, Field(None, description="Token classification: how sub-token predictions form entities.")),
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

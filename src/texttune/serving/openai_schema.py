"""Request bodies of the OpenAI-compatible routes, as the ``openai`` package sends them.

Unknown fields are refused (``extra="forbid"``: a 400 naming the field), not ignored. Fields OpenAI
has and texttune cannot honour are declared only to accept the value that changes nothing (``n``
1, penalties 0, ``logprobs`` off, ``echo`` off, ``best_of`` 1): clients that send those defaults
explicitly still work, and any other value is refused with the reason.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: At most this many stop strings (OpenAI's limit).
MAX_STOPS = 4
#: The roles a chat message may have ("developer" is OpenAI's newer name for "system").
ROLES = ("system", "developer", "user", "assistant")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StreamOptions(_Strict):
    include_usage: bool = Field(False, description="Send a last chunk with the usage counts before [DONE].")


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ChatMessage(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]

    def text(self) -> str:
        """The content as one string (text parts joined, as OpenAI reads them)."""
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class _Sampling(_Strict):
    """What both routes share: the model, lengths, sampling, stops, seed, streaming."""

    model: str = Field(description="A name from GET /v1/models: the served model or one of its adapters.")
    max_tokens: int | None = Field(None, ge=1, description="Most tokens to generate (default: the model's).")
    temperature: float | None = Field(None, ge=0, le=2, description="0: greedy. Omitted: the model's defaults (greedy "
                                                                     "unless its generation config samples).")
    top_p: float | None = Field(None, gt=0, le=1, description="Nucleus sampling mass (samples at temperature 1 if "
                                                              "temperature is omitted).")
    n: int | None = Field(None, ge=1, le=1, description="Choices per prompt: only 1.")
    stop: str | list[str] | None = Field(None, description=f"Up to {MAX_STOPS} strings that end the output (left out).")
    seed: int | None = Field(None, ge=0, le=2**63 - 1, description="Seeds sampling; a seeded request is batched alone, so "
                                                                    "the same seed gives the same output.")
    stream: bool = Field(False, description="Send server-sent events, one per group of new tokens, then [DONE].")
    stream_options: StreamOptions | None = None
    frequency_penalty: float | None = Field(None, ge=0, le=0, description="Only 0 (not supported).")
    presence_penalty: float | None = Field(None, ge=0, le=0, description="Only 0 (not supported).")

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > MAX_STOPS:
            raise ValueError(f"at most {MAX_STOPS} stop strings")
        if value is not None and any(not s for s in ([value] if isinstance(value, str) else value)):
            raise ValueError("a stop string must not be empty")
        return value

    @model_validator(mode="after")
    def _stream_options_need_stream(self) -> _Sampling:
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options: only with stream: true")
        return self

    def stops(self) -> tuple[str, ...]:
        return () if self.stop is None else (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    def generation(self) -> dict[str, Any]:
        """texttune's generation options for this request (only those given: the model's defaults stay)."""
        options: dict[str, Any] = {}
        if self.max_tokens is not None:
            options["max_new_tokens"] = self.max_tokens
        if self.temperature == 0:
            options["do_sample"] = False
        elif self.temperature is not None or self.top_p is not None:
            options["do_sample"] = True
            options["temperature"] = 1.0 if self.temperature is None else self.temperature
            if self.top_p is not None:
                options["top_p"] = self.top_p
        return options


class ChatCompletionRequest(_Sampling):
    """``POST /v1/chat/completions``."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1, description="OpenAI's newer name for max_tokens.")
    logprobs: bool | None = Field(None, description="Only false (not supported).")

    @field_validator("logprobs")
    @classmethod
    def _no_logprobs(cls, value: bool | None) -> bool | None:
        if value:
            raise ValueError("log probabilities are not supported")
        return value

    @model_validator(mode="after")
    def _one_length(self) -> ChatCompletionRequest:
        if self.max_completion_tokens is not None:
            if self.max_tokens is not None and self.max_tokens != self.max_completion_tokens:
                raise ValueError("max_tokens and max_completion_tokens disagree; send one")
            self.max_tokens = self.max_completion_tokens
        return self


class CompletionRequest(_Sampling):
    """``POST /v1/completions``: the prompt is the task's input (the fine-tuned prompt layout is added)."""

    prompt: str | list[str] = Field(description="One input, or a list of inputs (one choice each).")
    echo: bool | None = Field(None, description="Only false (not supported).")
    best_of: int | None = Field(None, ge=1, le=1, description="Only 1.")
    logprobs: None = Field(None, description="Only null (not supported).")
    suffix: None = Field(None, description="Only null (not supported).")

    @field_validator("echo")
    @classmethod
    def _no_echo(cls, value: bool | None) -> bool | None:
        if value:
            raise ValueError("echo is not supported")
        return value

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)

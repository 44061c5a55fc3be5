"""What sits beside an exported ``.gguf``: the prompt layout the model was fine-tuned on, an Ollama ``Modelfile``
and a ``README.md`` with the commands that run it.

A text-to-text model (summarization, translation...) fine-tuned as a decoder-only model answers well only
when its input is framed exactly as in training: texttune's prompt layout (``tasks/prompting.py``: the
tokenizer's chat template around ``prefix + input``, else ``prefix / input / Response:``). The layout is
rendered here once with a placeholder, so the export records the very string texttune builds, split into
what comes before and after the input; the GGUF file (``texttune.prompt_template``), the Modelfile's
TEMPLATE and the README all carry it. A plain causal-LM model's prompt is its text as it is; a chat model's
is its tokenizer's chat template, which Ollama can only be given for the ChatML layout (other templates:
the caller lays out turns, as the README says).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from texttune.tasks.prompting import PromptFormat

#: Stands for the input in a rendered prompt; nothing a tokenizer or template produces.
PLACEHOLDER = "\x00texttune-input\x00"
#: Written in place of the input in ``texttune.prompt_template``.
INPUT = "{input}"
#: Ollama's ChatML template (SmolLM2, Qwen and friends), for chat models whose template is ChatML.
_CHATML = ('{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}'
           '<|im_start|>assistant\n')


@dataclass(frozen=True)
class PromptLayout:
    """The text around an input, and whether BOS goes in front once it is tokenized."""

    before: str
    after: str
    add_bos: bool
    max_new_tokens: int

    @property
    def template(self) -> str:
        """The layout with ``{input}`` in place of the input (GGUF ``texttune.prompt_template``)."""
        return f"{self.before}{INPUT}{self.after}"

    def render(self, text: str) -> str:
        """The prompt for one input, exactly as texttune lays it out before tokenizing."""
        return f"{self.before}{text}{self.after}"


def _adds_bos(tokenizer: Any) -> bool:
    bos = tokenizer.bos_token_id
    return bos is not None and tokenizer("a")["input_ids"][:1] == [bos]


def prompt_layout(task: str, task_state: dict[str, Any], tokenizer: Any) -> PromptLayout:
    """The prompt layout of a saved model's task (see the module docstring)."""
    if "prefix" in task_state:  # the text-to-text tasks
        fmt = PromptFormat(tokenizer=tokenizer, family="causal", prefix=task_state.get("prefix") or "")
        before, after = fmt.prompt_text(PLACEHOLDER).split(PLACEHOLDER)
        # texttune tokenizes a chat-template prompt without special tokens (the template holds any BOS)
        add_bos = _adds_bos(tokenizer) and not fmt.uses_chat_template
        limit = task_state.get("max_new_tokens") or task_state.get("max_target_length") or 128
        return PromptLayout(before=before, after=after, add_bos=add_bos, max_new_tokens=int(limit))
    return PromptLayout(before="", after="", add_bos=_adds_bos(tokenizer),
                        max_new_tokens=int(task_state.get("max_new_tokens") or 128))


def _go_literal(text: str) -> str:
    """Text written literally into a Go template (an action printing a quoted string when it holds braces)."""
    if "{{" in text or "}}" in text or '"""' in text:
        return "{{ " + json.dumps(text) + " }}"
    return text


def modelfile(*, gguf_name: str, layout: PromptLayout, chat_template: str | None, text_to_text: bool,
              stops: list[str], context_length: int) -> str:
    """An Ollama Modelfile: ``ollama create NAME -f Modelfile`` in the export directory, greedy as texttune predicts."""
    if text_to_text or not chat_template:
        template = f"{_go_literal(layout.before)}{{{{ .Prompt }}}}{_go_literal(layout.after)}"
    else:
        template = _CHATML if "<|im_start|>" in chat_template else "{{ .Prompt }}"
    lines = [f"FROM ./{gguf_name}", f'TEMPLATE """{template}"""']
    lines += [f"PARAMETER stop {json.dumps(stop)}" for stop in stops]
    lines += ["PARAMETER temperature 0", f"PARAMETER num_predict {layout.max_new_tokens}",
              f"PARAMETER num_ctx {min(context_length, 4096)}"]
    return "\n".join(lines) + "\n"


def readme(*, name: str, gguf_name: str, task: str, quantization: str, layout: PromptLayout, stops: list[str],
           source: str) -> str:
    """README.md of an export: what it is and the commands that run it in llama.cpp and Ollama."""
    example = "Your input text here."
    body = json.dumps({"prompt": layout.render(example), "n_predict": layout.max_new_tokens, "temperature": 0,
                       "stop": stops})
    quoted = body.replace("'", "'\\''")  # inside the shell's single quotes
    return f"""# {name}: GGUF export ({quantization})

Exported by `texttune export --format gguf` from `{source}` (task: {task}). `{gguf_name}` holds the weights,
hyperparameters, tokenizer, chat template and the prompt layout the model was fine-tuned with
(metadata key `texttune.prompt_template`, the input at `{INPUT}`):

```
{layout.template}
```

Send inputs in this layout (Ollama's template below does it for you); generate greedily for the
outputs `texttune predict` gives.

## Ollama

```bash
ollama create {name} -f Modelfile
ollama run {name} "{example}"
```

## llama.cpp

```bash
llama-server -m {gguf_name} --port 8080
curl -s http://localhost:8080/completion -H 'Content-Type: application/json' -d '{quoted}'
```

From Python, with llama-cpp-python (`pip install 'texttune[gguf]'`):

```python
from llama_cpp import Llama

llm = Llama("{gguf_name}", n_ctx=2048, verbose=False)
prompt = llm.metadata["texttune.prompt_template"].replace("{INPUT}", "{example}")
out = llm(prompt, max_tokens={layout.max_new_tokens}, temperature=0, stop={json.dumps(stops)})
print(out["choices"][0]["text"].strip())
```
"""


__all__ = ["INPUT", "PLACEHOLDER", "PromptLayout", "modelfile", "prompt_layout", "readme"]

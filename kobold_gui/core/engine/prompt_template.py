"""Turning a list of chat messages into the model's prompt with its own chat template."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Role = Literal["system", "user", "assistant"]

# Used when a model has no tokenizer.chat_template: ChatML is what most small instruct
# models were tuned on, and what llama.cpp's server falls back to.
CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@dataclass(frozen=True)
class Message:
    role: Role
    content: str

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


class TemplateError(ValueError):
    """The model's chat template failed to render these messages."""


class ChatFormatter:
    """Renders messages with a Jinja2 chat template (HF semantics), via llama-cpp-python's
    sandboxed Jinja2ChatFormatter."""

    def __init__(self, template: str | None, bos_token: str | None, eos_token: str | None):
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.template = template or CHATML
        self._formatter = Jinja2ChatFormatter(
            template=self.template, eos_token=eos_token or "", bos_token=bos_token or ""
        )

    def render(self, messages: Sequence[Message]) -> str:
        try:
            result = self._formatter(messages=[m.as_dict() for m in messages])  # type: ignore[misc]
        except Exception as e:  # a template's raise_exception(), or a Jinja error
            raise TemplateError(f"the model's chat template failed: {e}") from None
        return str(result.prompt)

"""One way from a request's sampling fields to SamplingParams, for both APIs and the window.

The fields have neutral names (SamplingParams' own, plus `json_schema`, `response_format`
and KoboldCPP's samplers that llama.cpp lacks); each API's schema renames its fields to
these. What llama.cpp cannot do is refused with a message instead of being ignored, but
only for values that would change the reply (front-ends send the neutral ones)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any

from kobold_gui.core.engine.sampler import SamplerError
from kobold_gui.core.engine.types import SAMPLER_NAMES, SamplingParams

# KoboldCPP's sampler ids (sampler_order): 0 top-k, 1 top-a, 2 top-p, 3 tail-free,
# 4 typical, 5 temperature, 6 repetition penalty.
KOBOLD_SAMPLERS = {0: "top_k", 1: "top_a", 2: "top_p", 3: "tfs", 4: "typical", 5: "temperature"}
KOBOLD_SAMPLERS[6] = "penalties"
# llama-server's other names for them (common_sampler_types_from_names), and KoboldCPP's
# tail-free and top-a, which front-ends list in an order (left out, as llama-server does).
SAMPLER_ALIASES = {
    "typical_p": "typical",
    "typ_p": "typical",
    "typ": "typical",
    "top-k": "top_k",
    "top-p": "top_p",
    "nucleus": "top_p",
    "min-p": "min_p",
    "top-n-sigma": "top_n_sigma",
    "temp": "temperature",
    "tfs_z": "tfs",
}

# KoboldCPP samplers llama.cpp has no sampler for, with the value that leaves them off.
UNSUPPORTED = {
    "top_a": (0.0, "top-a sampling"),
    "tfs": (1.0, "tail-free sampling"),
    "smoothing_factor": (0.0, "quadratic smoothing"),
}
_ORDERABLE = {*SAMPLER_NAMES, "top_a", "tfs"}
_PARAMS = {f.name for f in fields(SamplingParams)}


def sampling_params(values: Mapping[str, Any]) -> SamplingParams:
    """SamplingParams from neutral fields (None: the default). SamplerError says what
    cannot be honoured."""
    given = {k: v for k, v in values.items() if v is not None}
    _refuse_unsupported(given)
    out: dict[str, Any] = {k: v for k, v in given.items() if k in _PARAMS}
    if "logit_bias" in given:
        out["logit_bias"] = parse_logit_bias(given["logit_bias"])
    if "sampler_order" in given:
        out["sampler_order"] = sampler_order(given["sampler_order"])
    for key in ("stop", "banned_strings", "dry_sequence_breakers"):
        if key in given:
            out[key] = _strings(key, given[key])
    grammar = _grammar(given)
    if grammar:
        out["grammar"] = grammar
    if out.get("top_k", 0) < 0:
        out["top_k"] = 0  # -1: off, as llama.cpp and SillyTavern mean it
    if out.get("mirostat", 0) not in (0, 1, 2):
        raise SamplerError(f"mirostat: 0 (off), 1 or 2, not {out['mirostat']}")
    return replace(SamplingParams(), **out)


def _refuse_unsupported(given: Mapping[str, Any]) -> None:
    refused = [
        f"{key}={given[key]} ({what})"
        for key, (neutral, what) in UNSUPPORTED.items()
        if key in given and float(given[key]) != neutral
    ]
    if refused:
        neutral = ", ".join(f"{k}={v[0]:g}" for k, v in UNSUPPORTED.items())
        raise SamplerError(
            f"llama.cpp has no sampler for {', '.join(refused)}: send the neutral values "
            f"({neutral}) or leave them out"
        )


def parse_logit_bias(bias: Mapping[Any, Any]) -> tuple[tuple[int, float], ...]:
    """{token id: bias}, the id as a number or a string of one; biases kept within +-100
    (OpenAI's range); -inf or false-y "ban" values pass as -inf."""
    out = []
    for key, value in bias.items():
        try:
            token = int(key)
            number = float(value)
        except (TypeError, ValueError):
            raise SamplerError(
                f"logit_bias: keys must be token ids and values numbers, got {key!r}: {value!r}"
            ) from None
        out.append((token, number if number == float("-inf") else max(-100.0, min(100.0, number))))
    return tuple(out)


def sampler_order(order: Any) -> tuple[str, ...]:
    """KoboldCPP's ids (0-6) or llama.cpp's names, as SAMPLER_NAMES' names; top-a and
    tail-free are left out (they are refused unless neutral)."""
    if not isinstance(order, (list, tuple)):
        raise SamplerError("sampler_order: a list of sampler ids (0-6) or names")
    names = []
    for item in order:
        if isinstance(item, int) and not isinstance(item, bool) and item in KOBOLD_SAMPLERS:
            names.append(KOBOLD_SAMPLERS[item])
        elif isinstance(item, str) and SAMPLER_ALIASES.get(item, item) in _ORDERABLE:
            names.append(SAMPLER_ALIASES.get(item, item))
        else:
            known = ", ".join(SAMPLER_NAMES)
            raise SamplerError(f"sampler_order: unknown sampler {item!r} (0-6 or {known})")
    return tuple(n for n in names if n in SAMPLER_NAMES)


def _strings(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        if key == "dry_sequence_breakers" and value.startswith("["):
            try:  # llama-server and SillyTavern also send it as a JSON string
                value = json.loads(value)
            except ValueError:
                raise SamplerError(f"{key}: not a JSON list of strings") from None
        else:
            value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(s, str) for s in value):
        raise SamplerError(f"{key}: a string or a list of strings")
    return tuple(s for s in value if s)


def _grammar(given: Mapping[str, Any]) -> str:
    """The GBNF the reply must match: `grammar`, else from `json_schema`, else from an
    OpenAI `response_format` of type json_object or json_schema."""
    grammar = given.get("grammar") or ""
    schema = given.get("json_schema")
    fmt = given.get("response_format")
    if isinstance(fmt, Mapping) and fmt.get("type") in ("json_object", "json_schema"):
        inner = fmt.get("json_schema")
        found = inner.get("schema") if isinstance(inner, Mapping) else fmt.get("schema")
        schema = schema or found or {"type": "object"}
    elif fmt is not None and not (isinstance(fmt, Mapping) and fmt.get("type") == "text"):
        raise SamplerError("response_format: type must be text, json_object or json_schema")
    if grammar and schema:
        raise SamplerError("send either a grammar or a JSON schema, not both")
    if not isinstance(grammar, str):
        raise SamplerError("grammar: a GBNF text")
    return grammar or (schema_grammar(schema) if schema else "")


def schema_grammar(schema: Any) -> str:
    """GBNF for a JSON schema (llama-cpp-python's converter, llama.cpp's own rules)."""
    from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

    if schema == {"type": "object"} or schema is True:
        return JSON_GBNF
    if not isinstance(schema, Mapping):
        raise SamplerError("json_schema: a JSON schema is an object")
    try:
        return str(json_schema_to_gbnf(json.dumps(schema)))
    except (AssertionError, ValueError, KeyError, TypeError, RecursionError) as e:
        raise SamplerError(f"json_schema: cannot be turned into a grammar ({e})") from None

"""Log-probabilities of generated tokens, from the logits llama.cpp computed for the place
(the model's own distribution before any sampler, as llama-server reports by default)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import llama_cpp
import numpy as np

from kobold_gui.core.engine.types import TokenLogprob

MAX_TOP = 20  # OpenAI's top_logprobs limit


def token_logprob(
    ctx: Any,
    n_vocab: int,
    token: int,
    top_n: int,
    text: Callable[[int], str],
    index: int = -1,
) -> TokenLogprob:
    """The chosen `token`'s log-probability at the last decoded place (the batch's `index`
    with several sequences) and the `top_n` most likely tokens there with theirs."""
    ptr = llama_cpp.llama_get_logits_ith(ctx, index)
    logits = np.ctypeslib.as_array(ptr, shape=(n_vocab,)).astype(np.float64)
    top = logits.max()
    logz = top + np.log(np.exp(logits - top).sum())
    n = max(0, min(top_n, MAX_TOP, n_vocab))
    best = np.argpartition(-logits, n - 1)[:n] if n else np.array([], dtype=np.int64)
    best = best[np.argsort(-logits[best])]
    return TokenLogprob(
        token=text(token),
        logprob=float(logits[token] - logz),
        top=tuple((text(int(t)), float(logits[t] - logz)) for t in best),
    )

"""llama.cpp's sampler chain for a reply, built from SamplingParams (the one description the
window and both APIs fill in: core/engine/sampling_request.py).

The chain: logit bias (the APIs' logit_bias, banned EOS and banned strings that fit in one
token), the grammar, then the samplers in `sampler_order` (llama.cpp's order when it is
empty: penalties, DRY, top-n-sigma, top-k, typical, top-p, min-p, XTC, temperature) and a
seeded draw; greedy when the temperature is 0; mirostat 1 or 2 in place of the truncating
samplers. The penalties and DRY see the prompt's tokens too, as in llama-server and
KoboldCPP (the grammar does not: it constrains only the reply)."""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import llama_cpp

from kobold_gui.core.engine.types import SAMPLER_NAMES, EngineError, SamplingParams
from kobold_gui.core.llama.log import first_error_since, llama_log_count


class SamplerError(EngineError):
    """A sampling request that cannot be honoured (e.g. a grammar that does not parse)."""


def grammar_sampler(vocab: Any, grammar: str) -> Any:
    """A grammar sampler; SamplerError with llama.cpp's reason when the GBNF is wrong."""
    start = llama_log_count()
    smpl = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode("utf-8"), b"root")
    if not smpl:
        reason = first_error_since(start) or "it does not parse"
        raise SamplerError(f"grammar: not valid GBNF with a 'root' rule ({reason.strip()})")
    return smpl


def check_grammar(vocab: Any, grammar: str) -> None:
    if grammar:
        llama_cpp.llama_sampler_free(grammar_sampler(vocab, grammar))


def make_sampler(vocab: Any, params: SamplingParams, history: Sequence[int] = ()) -> Any:
    """A new chain; the caller frees it (llama_sampler_free). `history`: the prompt's tokens,
    which the penalties and DRY count as already said."""
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    add = llama_cpp.llama_sampler_chain_add
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    try:
        bias = logit_bias(vocab, params)
        if bias:
            arr = (llama_cpp.llama_logit_bias * len(bias))(
                *(llama_cpp.llama_logit_bias(t, b) for t, b in bias)
            )
            add(chain, llama_cpp.llama_sampler_init_logit_bias(n_vocab, len(bias), arr))
        if params.grammar:
            add(chain, grammar_sampler(vocab, params.grammar))
        seed = params.seed if params.seed >= 0 else llama_cpp.LLAMA_DEFAULT_SEED
        greedy = params.temperature <= 0
        for name in _order(params):
            trunc = greedy or params.mirostat > 0
            for smpl, window in _samplers(name, vocab, params, seed, trunc, len(history)):
                for token in _tail(history, window):
                    llama_cpp.llama_sampler_accept(smpl, token)
                add(chain, smpl)
        if greedy:
            add(chain, llama_cpp.llama_sampler_init_greedy())
        elif params.mirostat == 1:
            add(
                chain,
                llama_cpp.llama_sampler_init_mirostat(
                    n_vocab, seed, params.mirostat_tau, params.mirostat_eta, 100
                ),
            )
        elif params.mirostat == 2:
            add(
                chain,
                llama_cpp.llama_sampler_init_mirostat_v2(
                    seed, params.mirostat_tau, params.mirostat_eta
                ),
            )
        else:
            add(chain, llama_cpp.llama_sampler_init_dist(seed))
    except BaseException:
        llama_cpp.llama_sampler_free(chain)
        raise
    return chain


def _order(params: SamplingParams) -> list[str]:
    """sampler_order's names, then those it left out in llama.cpp's order."""
    order = [n for n in dict.fromkeys(params.sampler_order) if n in SAMPLER_NAMES]
    return order + [n for n in SAMPLER_NAMES if n not in order]


def _tail(tokens: Sequence[int], n: int) -> Sequence[int]:
    """The last n tokens (all for n < 0), which a sampler with a history counts as said."""
    if n < 0:
        return tokens
    return tokens[max(len(tokens) - n, 0) :] if n > 0 else ()


def _samplers(
    name: str, vocab: Any, p: SamplingParams, seed: int, no_truncation: bool, n_history: int
) -> list[tuple[Any, int]]:
    """The samplers for one name, each with how many past tokens it should see."""
    if name == "penalties":
        return _penalties(vocab, p, n_history)
    if name == "dry":  # -1 (the whole context) is not understood by llama.cpp's DRY itself
        window = p.dry_penalty_last_n if p.dry_penalty_last_n >= 0 else n_history + p.max_tokens
        p = replace(p, dry_penalty_last_n=window)
    smpl = _one(name, vocab, p, seed, no_truncation)
    if smpl is None:
        return []
    return [(smpl, p.dry_penalty_last_n if name == "dry" else 0)]


def _penalties(vocab: Any, p: SamplingParams, n_history: int) -> list[tuple[Any, int]]:
    """llama.cpp's penalties; KoboldCPP's rep_pen_slope s gives the older half of the window
    the penalty 1 + (r - 1) * s: exactly that penalty over the whole window, times r over
    it divided by that over the newer half (penalties multiply)."""
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    pens = (p.repeat_penalty != 1.0, p.frequency_penalty != 0, p.presence_penalty != 0)
    if not any(pens) or p.repeat_last_n == 0:
        return []
    window = p.repeat_last_n if p.repeat_last_n > 0 else n_history + p.max_tokens  # -1: all
    init = llama_cpp.llama_sampler_init_penalties
    reduced = p.repeat_penalty
    if p.repeat_penalty > 1 and p.repeat_penalty_slope != 1:
        reduced = 1 + (p.repeat_penalty - 1) * p.repeat_penalty_slope
    out = [(init(n_vocab, window, reduced, p.frequency_penalty, p.presence_penalty), window)]
    if reduced != p.repeat_penalty and window != 1:
        near = window // 2
        out.append((init(n_vocab, near, p.repeat_penalty / reduced, 0.0, 0.0), near))
    return out


def _one(name: str, vocab: Any, p: SamplingParams, seed: int, no_truncation: bool) -> Any:
    """One sampler of the chain, None when its settings leave it out. Greedy and mirostat
    replace the truncating samplers and the temperature (mirostat keeps the temperature)."""
    if name == "dry":
        if p.dry_multiplier <= 0:
            return None
        breakers = [b.encode("utf-8") for b in p.dry_sequence_breakers]
        arr = (ctypes.c_char_p * max(len(breakers), 1))(*breakers)
        return llama_cpp.llama_sampler_init_dry(
            vocab,
            p.dry_multiplier,
            p.dry_base,
            p.dry_allowed_length,
            p.dry_penalty_last_n,
            arr,
            len(breakers),
        )
    if name == "temperature":
        if p.temperature <= 0:
            return None
        if p.dynatemp_range > 0:
            return llama_cpp.llama_sampler_init_temp_ext(
                p.temperature, p.dynatemp_range, p.dynatemp_exponent
            )
        return llama_cpp.llama_sampler_init_temp(p.temperature)
    if no_truncation:
        return None
    if name == "top_n_sigma" and p.top_n_sigma > 0:
        return llama_cpp.llama_sampler_init_top_n_sigma(p.top_n_sigma)
    if name == "top_k" and p.top_k > 0:
        return llama_cpp.llama_sampler_init_top_k(p.top_k)
    if name == "typical" and 0 < p.typical_p < 1:
        return llama_cpp.llama_sampler_init_typical(p.typical_p, 1)
    if name == "top_p" and p.top_p < 1:
        return llama_cpp.llama_sampler_init_top_p(p.top_p, 1)
    if name == "min_p" and p.min_p > 0:
        return llama_cpp.llama_sampler_init_min_p(p.min_p, 1)
    if name == "xtc" and p.xtc_probability > 0:
        return llama_cpp.llama_sampler_init_xtc(p.xtc_probability, p.xtc_threshold, 1, seed)
    return None


def logit_bias(vocab: Any, params: SamplingParams) -> list[tuple[int, float]]:
    """The biases for tokens this vocabulary has; banning EOS bans EOS and EOT."""
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    bias = [(t, b) for t, b in params.logit_bias if 0 <= t < n_vocab]
    if params.ban_eos:
        eos = (llama_cpp.llama_vocab_eos(vocab), llama_cpp.llama_vocab_eot(vocab))
        bias += [(t, float("-inf")) for t in eos if 0 <= t < n_vocab]
    if params.banned_strings:
        bias += [(t, float("-inf")) for t in tokens_containing(vocab, params.banned_strings)]
    return bias


def tokens_containing(vocab: Any, strings: Sequence[str]) -> list[int]:
    """The tokens whose text contains one of `strings` (KoboldCPP's banned tokens, as it
    banned them before its phrase banning): a string no single token holds is not banned
    by this (llama.cpp has no sampler that takes back tokens already drawn)."""
    wanted = [s.encode("utf-8") for s in strings if s]
    buf = ctypes.create_string_buffer(256)
    found = []
    for token in range(llama_cpp.llama_vocab_n_tokens(vocab)):
        n = llama_cpp.llama_token_to_piece(vocab, token, buf, 256, 0, False)
        piece = buf.raw[: max(n, 0)]
        if any(w in piece for w in wanted):
            found.append(token)
    return found

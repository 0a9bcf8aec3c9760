"""llama.cpp's sampler chain for a reply: repeat penalty, logit bias (the APIs' logit_bias
and ban_eos_token), then greedy, or top-k / top-p / min-p / temperature and a seeded draw."""

from __future__ import annotations

from typing import Any

import llama_cpp

from kobold_gui.core.engine.types import SamplingParams


def make_sampler(vocab: Any, params: SamplingParams) -> Any:
    """A new chain; the caller frees it (llama_sampler_free)."""
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    add = llama_cpp.llama_sampler_chain_add
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    if params.repeat_penalty != 1.0:
        add(
            chain,
            llama_cpp.llama_sampler_init_penalties(
                n_vocab, params.repeat_last_n, params.repeat_penalty, 0.0, 0.0
            ),
        )
    bias = logit_bias(vocab, params)
    if bias:
        arr = (llama_cpp.llama_logit_bias * len(bias))(
            *(llama_cpp.llama_logit_bias(t, b) for t, b in bias)
        )
        add(chain, llama_cpp.llama_sampler_init_logit_bias(n_vocab, len(bias), arr))
    if params.temperature <= 0:
        add(chain, llama_cpp.llama_sampler_init_greedy())
        return chain
    seed = params.seed if params.seed >= 0 else llama_cpp.LLAMA_DEFAULT_SEED
    if params.top_k > 0:
        add(chain, llama_cpp.llama_sampler_init_top_k(params.top_k))
    add(chain, llama_cpp.llama_sampler_init_top_p(params.top_p, 1))
    add(chain, llama_cpp.llama_sampler_init_min_p(params.min_p, 1))
    add(chain, llama_cpp.llama_sampler_init_temp(params.temperature))
    add(chain, llama_cpp.llama_sampler_init_dist(seed))
    return chain


def logit_bias(vocab: Any, params: SamplingParams) -> list[tuple[int, float]]:
    """The biases for tokens this vocabulary has; banning EOS bans EOS and EOT."""
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    bias = [(t, b) for t, b in params.logit_bias if 0 <= t < n_vocab]
    if params.ban_eos:
        eos = (llama_cpp.llama_vocab_eos(vocab), llama_cpp.llama_vocab_eot(vocab))
        bias += [(t, float("-inf")) for t in eos if 0 <= t < n_vocab]
    return bias

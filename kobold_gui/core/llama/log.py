"""llama.cpp's log, kept in a ring buffer instead of printed: load errors quote it, and
the memory plan's checks read llama.cpp's buffer sizes from it."""

from __future__ import annotations

import ctypes
import logging
import threading
from collections import deque

import llama_cpp

log = logging.getLogger(__name__)

GGML_LOG_LEVEL_ERROR = 4
GGML_LOG_LEVEL_CONT = 5  # continues the line before, at its level

_LOG_LINES: deque[str] = deque(maxlen=2000)
_ERRORS: deque[tuple[int, str]] = deque(maxlen=200)  # (line number, line) at level ERROR
_log_lock = threading.Lock()
_log_partial: list[str] = []
_partial_level = 0
_log_count = 0  # lines ever logged: marks where a load's lines begin


def _on_llama_log(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
    global _log_count, _partial_level
    try:
        chunk = text.decode("utf-8", errors="replace")
        with _log_lock:
            if level != GGML_LOG_LEVEL_CONT and not _log_partial:
                _partial_level = level
            _log_partial.append(chunk)
            if chunk.endswith("\n"):
                line = "".join(_log_partial).rstrip("\n")
                _log_partial.clear()
                _LOG_LINES.append(line)
                if _partial_level == GGML_LOG_LEVEL_ERROR:
                    _ERRORS.append((_log_count, line))
                _log_count += 1
                log.debug("llama.cpp: %s", line)
    except Exception:  # never let an exception cross into C
        pass


_on_llama_log_c = llama_cpp.llama_log_callback(_on_llama_log)  # kept alive for llama.cpp


def install_log_capture() -> None:
    llama_cpp.llama_log_set(_on_llama_log_c, ctypes.c_void_p(0))


def llama_log_tail(n: int = 400) -> list[str]:
    with _log_lock:
        return list(_LOG_LINES)[-n:]


def llama_log_count() -> int:
    with _log_lock:
        return _log_count


def llama_log_since(mark: int) -> list[str]:
    """The lines logged after llama_log_count() returned `mark` (as far as still kept)."""
    with _log_lock:
        n = min(_log_count - mark, len(_LOG_LINES))
        return list(_LOG_LINES)[len(_LOG_LINES) - n :] if n > 0 else []


def first_error_since(mark: int) -> str | None:
    """llama.cpp's reason for a failure: the first error it logged after `mark`, without the
    function names it is prefixed with. The first, because the last is only the caller's
    "failed to load model"."""
    with _log_lock:
        errors = [line for n, line in _ERRORS if n >= mark]
    if not errors:
        return None
    return _strip_prefixes(errors[0])


def _strip_prefixes(line: str) -> str:
    """'llama_model_load: error loading model: check_tensor_dims: tensor ...' -> the reason
    after the function names ('tensor ...'), keeping the last 'name: ' that is not a
    C identifier."""
    text = line.strip()
    while True:
        head, sep, rest = text.partition(": ")
        if not sep or not rest or not head.replace("_", "").isalnum() or " " in head:
            break
        text = rest.strip()
    if text.lower().startswith("error loading model: "):
        text = _strip_prefixes(text[len("error loading model: ") :])
    return text

"""Is the Hugging Face hub reachable? Answered once per process, quickly.

Without this check an offline ``from_pretrained("t5-small")`` spends ~30 s in
retries before failing with a paragraph of text; we answer in milliseconds with
one line that says what to do instead.
"""

from __future__ import annotations

import functools
import os
import socket
from urllib.parse import urlparse

_TRUE = {"1", "true", "yes", "on"}


@functools.cache
def hub_reachable(timeout: float = 3.0) -> bool:
    """True when the hub endpoint accepts a TCP connection and offline mode is off."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in _TRUE or os.environ.get("TRANSFORMERS_OFFLINE", "").lower() in _TRUE:
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False

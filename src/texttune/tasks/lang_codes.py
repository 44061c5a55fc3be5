"""Language codes of many-to-many translation models (mBART-50, NLLB, M2M100), from the user's codes.

Why: these models translate between any two of their languages, and which ones is
not in their weights but in special tokens: the tokenizer puts the source
language's code before the input and the target's before the labels
(``tokenizer.src_lang``/``tgt_lang``), and generation must be forced to start with
the target's code (``forced_bos_token_id``). Without them a model silently
translates into whatever language its tokenizer defaults to.

Users write ``fr`` (ISO 639-1) or the model's own code (``fr_XX`` for mBART-50,
``fra_Latn`` for NLLB, ``fr`` for M2M100); both are accepted, and a code of one
family is understood by another (``fra_Latn`` on mBART-50 is ``fr_XX``). A code
the model has no language for, or a missing one, is a one-line ConfigError.
The family is recognised from the tokenizer's class, which is what carries the
convention; the model classes are shared (NLLB is an M2M100 model).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from texttune.errors import ConfigError

#: Tokenizer class name -> family name (as the docs and messages say it).
FAMILIES: dict[str, str] = {
    "MBart50Tokenizer": "mBART-50", "MBart50TokenizerFast": "mBART-50",
    "NllbTokenizer": "NLLB", "NllbTokenizerFast": "NLLB",
    "M2M100Tokenizer": "M2M100",
}

# ISO 639-1 -> the ISO 639-3 language NLLB uses for it (its individual language for a macrolanguage:
# ar -> arb Modern Standard Arabic, fa -> pes Western Persian, ms -> zsm Standard Malay, ...).
_ISO3 = dict(pair.split(":") for pair in """
af:afr ak:aka am:amh ar:arb as:asm ay:ayr az:azj ba:bak be:bel bg:bul bm:bam bn:ben bo:bod bs:bos ca:cat cs:ces
cy:cym da:dan de:deu dz:dzo ee:ewe el:ell en:eng eo:epo es:spa et:est eu:eus fa:pes ff:fuv fi:fin fj:fij fo:fao
fr:fra ga:gle gd:gla gl:glg gn:grn gu:guj ha:hau he:heb hi:hin hr:hrv ht:hat hu:hun hy:hye id:ind ig:ibo is:isl
it:ita ja:jpn jv:jav ka:kat kg:kon ki:kik kk:kaz km:khm kn:kan ko:kor kr:knc ks:kas ku:kmr ky:kir lb:ltz lg:lug
li:lim ln:lin lo:lao lt:lit lv:lvs mg:plt mi:mri mk:mkd ml:mal mn:khk mr:mar ms:zsm mt:mlt my:mya nb:nob ne:npi
nl:nld nn:nno no:nob ny:nya oc:oci om:gaz or:ory pa:pan pl:pol ps:pbt pt:por qu:quy rn:run ro:ron ru:rus rw:kin
sa:san sc:srd sd:snd sg:sag si:sin sk:slk sl:slv sm:smo sn:sna so:som sq:als sr:srp ss:ssw st:sot su:sun sv:swe
sw:swh ta:tam te:tel tg:tgk th:tha ti:tir tk:tuk tl:tgl tn:tsn tr:tur ts:tso tt:tat tw:twi ug:uig uk:ukr ur:urd
uz:uzn vi:vie wo:wol xh:xho yi:ydd yo:yor zh:zho zu:zul
""".split())
# ISO 639-3 (and the macrolanguage codes people also write) -> ISO 639-1.
_ISO1 = {iso3: iso1 for iso1, iso3 in _ISO3.items() if iso1 != "nb"} | {
    "ara": "ar", "fas": "fa", "msa": "ms", "lav": "lv", "nor": "no", "swa": "sw", "sqi": "sq", "aze": "az",
    "mon": "mn", "pus": "ps", "uzb": "uz", "zsm": "ms", "yid": "yi", "nep": "ne", "ori": "or", "kur": "ku",
}
_NLLB_CODE = re.compile(r"^[a-z]{3}_[A-Z][a-z]{3}$")
_SHOWN = 6  # valid codes listed in a refusal
_EXAMPLES = ("en", "fr", "de", "es", "zh", "ar")  # languages whose codes a refusal shows first


@dataclass(frozen=True)
class LanguagePair:
    """The model's own codes for one translation direction, and the token generation must start with."""

    family: str
    source: str
    target: str
    target_token_id: int


def many_to_many_family(tokenizer: Any) -> str | None:
    """``mBART-50``, ``NLLB`` or ``M2M100`` when ``tokenizer`` is one of theirs, else None (one language pair or none)."""
    return FAMILIES.get(type(tokenizer).__name__)


def model_codes(tokenizer: Any, family: str) -> list[str]:
    """The language codes ``tokenizer`` knows, as the model writes them (``fr_XX``, ``fra_Latn``, ``fr``)."""
    if family == "NLLB":
        specials = [str(t) for t in (getattr(tokenizer, "extra_special_tokens", None) or [])]
        specials += [str(t) for t in (getattr(tokenizer, "additional_special_tokens", None) or [])]
        return list(dict.fromkeys(t for t in specials if _NLLB_CODE.match(t)))
    return list(getattr(tokenizer, "lang_code_to_id", {}) or {})


def plain_code(code: str) -> str:
    """ISO 639-1 of a code in any family's form: ``fr``, ``fr_XX``, ``fr-FR``, ``fra``, ``fra_Latn``, ``__fr__`` -> ``fr``.

    Also what a translation file's column is usually called, whatever code the model takes.
    """
    head = re.split(r"[_\-]", code.strip().strip("_").lower(), maxsplit=1)[0]
    return _ISO1.get(head, head)


def _candidates(code: str, codes: list[str], family: str) -> list[str]:
    """The model codes ``code`` may mean: an exact match (any case), else those of its base language."""
    exact = [c for c in codes if c.lower() == code.lower() or f"__{c}__" == code]
    if exact:
        return exact
    base = plain_code(code)
    if family == "NLLB":
        prefixes = {_ISO3.get(base, base), code.lower() if len(code) == 3 and code.isalpha() else base}
        return [c for c in codes if c.split("_")[0] in prefixes]
    if family == "mBART-50":
        return [c for c in codes if c.split("_")[0] == base]
    return [c for c in codes if c == base]


def resolve_code(code: str | None, *, tokenizer: Any, family: str, option: str) -> str:
    """The model's code for the user's ``code``; ConfigError (one line, a few valid codes) when missing or unknown."""
    codes = model_codes(tokenizer, family)
    shown = [c for language in _EXAMPLES for c in _candidates(language, codes, family)] or codes
    example = ", ".join(shown[:_SHOWN])
    if not code or not code.strip():
        raise ConfigError(f"{family} is a many-to-many translation model: give {option} (a language code, e.g. "
                          f"{example}) so it is told which language to read or write")
    found = _candidates(code.strip(), codes, family)
    if len(found) == 1:
        return found[0]
    if found:
        raise ConfigError(f"{option} {code!r} is ambiguous for {family}: use one of {', '.join(found[:_SHOWN])}")
    raise ConfigError(f"{option} {code!r}: {family} has no such language; valid codes include {example} "
                      f"({len(codes)} in all, or their ISO 639-1 codes such as en, fr)")


def language_pair(tokenizer: Any, *, source: str | None, target: str | None,
                  options: tuple[str, str] = ("--source-lang", "--target-lang")) -> LanguagePair | None:
    """The direction a many-to-many ``tokenizer`` must be set to, or None for any other tokenizer.

    ``options`` name where the codes came from, for the refusals.
    """
    family = many_to_many_family(tokenizer)
    if family is None:
        return None
    src = resolve_code(source, tokenizer=tokenizer, family=family, option=options[0])
    tgt = resolve_code(target, tokenizer=tokenizer, family=family, option=options[1])
    token = tokenizer.get_lang_id(tgt) if family == "M2M100" else tokenizer.convert_tokens_to_ids(tgt)
    return LanguagePair(family=family, source=src, target=tgt, target_token_id=int(token))


def apply_languages(tokenizer: Any, pair: LanguagePair) -> None:
    """Set the tokenizer's languages: inputs then start with the source code, ``text_target`` labels with the target's.

    The saved tokenizer keeps them (tokenizer_config.json), so plain transformers encodes the same way.
    """
    tokenizer.src_lang = pair.source  # a property: resets the special tokens around inputs
    tokenizer.tgt_lang = pair.target
    init = getattr(tokenizer, "init_kwargs", None)
    if isinstance(init, dict):  # what save_pretrained writes (M2M100's would keep its construction-time languages)
        init.update(src_lang=pair.source, tgt_lang=pair.target)


def set_languages(tokenizer: Any, *, source: str | None, target: str | None,
                  options: tuple[str, str] = ("--source-lang", "--target-lang")) -> LanguagePair | None:
    """:func:`language_pair`, applied to ``tokenizer`` (:func:`apply_languages`) when it is a many-to-many one."""
    pair = language_pair(tokenizer, source=source, target=target, options=options)
    if pair is not None:
        apply_languages(tokenizer, pair)
    return pair


def remember_languages(model: Any, pair: LanguagePair) -> None:
    """Make a saved model generate ``pair``'s target language under plain transformers and CTranslate2 too.

    ``forced_bos_token_id`` goes in its generation config; an mBART-50 config also names its tokenizer
    class, as the hub's does, because CTranslate2's converter starts decoding with ``</s>`` only then.
    """
    model.generation_config.forced_bos_token_id = pair.target_token_id
    if pair.family == "mBART-50" and getattr(model.config, "tokenizer_class", None) is None:
        model.config.tokenizer_class = "MBart50Tokenizer"

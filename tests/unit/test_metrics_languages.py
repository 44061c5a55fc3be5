"""ROUGE, BLEU and sentence splitting beyond English (metrics/tokenize.py); expected values worked out by hand.

Why: rouge-score's tokenizer keeps only [a-z0-9], so accents split words and Chinese, Russian or Hindi text
scores about 0 whatever the model writes; sacreBLEU's default 13a tokenizer sees a Chinese sentence as one word.
English must score exactly as before (rouge-score's own tokenizer and stemmer, sacreBLEU 13a).
"""

from __future__ import annotations

import pytest
from rouge_score import rouge_scorer

from texttune.errors import ConfigError
from texttune.metrics import bleu_chrf, rouge, scoring_settings, split_sentences, summary_lines
from texttune.metrics.tokenize import (
    CjkTokenizer,
    UnicodeTokenizer,
    base_language,
    bleu_tokenizer_for,
    check_language,
    resolve_rouge_tokenizer,
)

ENGLISH = [
    ("The dogs were running in the park. They barked.", "A dog runs in the parks. It barked loudly."),
    ("Prices rose 3.5% in 2024, e.g. for houses.", "Houses: prices rose by 3.5 percent in 2024."),
    ("Mr. Smith's café opened.\nIt is busy.", "The café of Mr. Smith opened; it's busy."),
]


def test_english_is_rouge_score_bit_for_bit() -> None:
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    for language, tokenizer in [(None, "auto"), ("en", "auto"), ("en-GB", "auto"), ("fr", "default")]:
        for prediction, reference in ENGLISH:
            ours = rouge([prediction], [reference], tokenizer=tokenizer, language=language)
            theirs = scorer.score(reference, prediction)
            for key in ("rouge1", "rouge2", "rougeL"):
                assert ours[key] == round(100 * theirs[key].fmeasure, 4)


def test_english_rouge_lsum_is_rouge_score_on_newline_joined_sentences() -> None:
    scorer = rouge_scorer.RougeScorer(["rougeLsum"], use_stemmer=True)
    prediction, reference = "Dogs bark loudly. Cats sleep all day.", "Cats sleep all day. Dogs bark loudly."
    expected = scorer.score("Cats sleep all day.\nDogs bark loudly.", "Dogs bark loudly.\nCats sleep all day.")
    assert rouge([prediction], [reference])["rougeLsum"] == round(100 * expected["rougeLsum"].fmeasure, 4) == 100.0


def test_french_accents_tell_words_apart() -> None:
    # pêcheur (fisherman) and pécheur (sinner): rouge-score's tokenizer cuts both into "p", "cheur", so it sees the
    # same 4 tokens. Unicode words: le/pêcheur/dort vs le/pécheur/dort share 2 of 3 unigrams (66.67), no bigram,
    # LCS 2 of 3 (66.67).
    prediction, reference = ["le pécheur dort"], ["le pêcheur dort"]
    assert rouge(prediction, reference, tokenizer="default")["rouge1"] == 100.0
    scores = rouge(prediction, reference, language="fr")
    assert scores == {"rouge1": pytest.approx(66.6667), "rouge2": 0.0, "rougeL": pytest.approx(66.6667),
                      "rougeLsum": pytest.approx(66.6667)}
    assert UnicodeTokenizer().tokenize("L'Élève a 12 ans") == ["l", "élève", "a", "12", "ans"]
    # a decomposed accent (e + U+0301) is the same word as the composed one
    assert UnicodeTokenizer().tokenize("e\u0301le\u0300ve") == ["élève"]


def test_scripts_without_ascii_letters_score_at_all() -> None:
    # Identical Russian texts: rouge-score's tokenizer finds no token (F = 0); Unicode words find them all.
    text = ["Кошка спит на диване"]
    assert rouge(text, text, tokenizer="default")["rouge1"] == 0.0
    assert rouge(text, text, language="ru")["rouge1"] == 100.0
    # Hindi vowel signs and virama are combining marks: they stay inside their words.
    assert UnicodeTokenizer().tokenize("हिन्दी भाषा") == ["हिन्दी", "भाषा"]


def test_chinese_rouge_is_character_level() -> None:
    # 我 喜 欢 狗 vs 我 喜 欢 猫: 3 of 4 characters (75), bigrams 我喜 喜欢 of 3 (66.67), LCS 3 of 4 (75).
    scores = rouge(["我喜欢狗"], ["我喜欢猫"], language="zh")
    assert scores == {"rouge1": 75.0, "rouge2": pytest.approx(66.6667), "rougeL": 75.0, "rougeLsum": 75.0}
    assert rouge(["我喜欢狗"], ["我喜欢猫"])["rouge1"] == 0.0  # English default: no tokens at all
    assert CjkTokenizer().tokenize("我用Python写代码。") == ["我", "用", "python", "写", "代", "码"]
    assert CjkTokenizer().tokenize("ひらがなとカタカナ、한국어") == [*"ひらがなとカタカナ", *"한국어"]


def test_chinese_rouge_lsum_splits_at_chinese_full_stops() -> None:
    # Swapped sentences: rougeL's LCS over 我喜欢猫他喜欢狗 vs 他喜欢狗我喜欢猫 is 4 of 8 (50); rougeLsum matches each
    # reference sentence with the prediction's sentences: 8 of 8 (100).
    scores = rouge(["他喜欢狗。我喜欢猫。"], ["我喜欢猫。他喜欢狗。"], language="zh")
    assert scores["rougeL"] == 50.0
    assert scores["rougeLsum"] == 100.0
    assert summary_lines("我喜欢猫。他喜欢狗。", language="zh") == "我喜欢猫。\n他喜欢狗。"


def test_chinese_bleu_splits_characters() -> None:
    # 我 喜 欢 吃 香 蕉 vs 我 喜 欢 吃 苹 果: n-gram precisions 4/6, 3/5, 2/4, 1/3, same length:
    # BLEU = (4/6 * 3/5 * 2/4 * 1/3) ** 0.25 = (1/15) ** 0.25 = 0.508133.
    scores = bleu_chrf(["我喜欢吃香蕉"], ["我喜欢吃苹果"], language="zh")
    assert scores["bleu"] == pytest.approx(50.8133, abs=1e-3)
    assert bleu_chrf(["我喜欢吃香蕉"], ["我喜欢吃苹果"])["bleu"] == 0.0  # 13a: one "word" each, and they differ
    # the same by hand for the "char" fallback of Japanese without MeCab (kana are split too)
    if bleu_tokenizer_for("ja") == "char":
        assert bleu_chrf(["わたしはいぬ"], ["わたしはねこ"], language="ja")["bleu"] == pytest.approx(
            100 * (4 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25, abs=1e-3)


def test_english_bleu_is_unchanged() -> None:
    # n-gram precisions 5/6, 3/5, 2/4, 1/3: (1/12) ** 0.25 (13a, as before)
    assert bleu_chrf(["the cat sat on a mat"], ["the cat sat on the mat"], language="en")["bleu"] == pytest.approx(
        53.7285, abs=1e-3)


def test_bleu_tokenizer_follows_the_target_language() -> None:
    assert bleu_tokenizer_for(None) == bleu_tokenizer_for("en") == bleu_tokenizer_for("de") == "13a"
    assert bleu_tokenizer_for("zh") == bleu_tokenizer_for("zh-CN") == bleu_tokenizer_for("zho_Hans") == "zh"
    assert bleu_tokenizer_for("ja") in {"ja-mecab", "char"}
    assert bleu_tokenizer_for("ko") in {"ko-mecab", "char"}


def test_sentences_in_other_scripts() -> None:
    assert split_sentences("我喜欢猫。你呢？「好的！」他说。", language="zh") == ["我喜欢猫。", "你呢？", "「好的！」", "他说。"]
    assert split_sentences("यह एक वाक्य है। दूसरा वाक्य॥ तीसरा", language="hi") == ["यह एक वाक्य है।", "दूसरा वाक्य॥", "तीसरा"]
    assert split_sentences("هل أنت بخير؟ نعم. شكرا", language="ar") == ["هل أنت بخير؟", "نعم.", "شكرا"]
    assert split_sentences("Привет. Как дела? хорошо.", language="ru") == ["Привет.", "Как дела? хорошо."]
    assert split_sentences("Il est là. Élève arrivé ! « Bon ? » dit-il. M. Dupont vient.", language="fr") == [
        "Il est là.", "Élève arrivé !", "« Bon ? » dit-il.", "M. Dupont vient."]
    # English keeps its ASCII rule: a Cyrillic capital does not start a sentence there
    assert split_sentences("Привет. Как дела?") == ["Привет. Как дела?"]


def test_line_breaks_end_summary_sentences() -> None:
    # CNN/DailyMail highlights: one per line, no final period. rouge-score splits rougeLsum's input on newlines.
    assert summary_lines("Harry turns 18 Monday\nHe has no plans to spend it") == (
        "Harry turns 18 Monday\nHe has no plans to spend it")
    assert split_sentences("A wrapped\nline. Next one.") == ["A wrapped line.", "Next one."]  # lead-k: unchanged


def test_auto_choice_and_refusals() -> None:
    assert resolve_rouge_tokenizer("auto", language=None) == "default"
    assert resolve_rouge_tokenizer("auto", language="EN-us") == "default"
    assert resolve_rouge_tokenizer("auto", language="fr") == "unicode"
    assert resolve_rouge_tokenizer("auto", language="ja") == "cjk"
    assert resolve_rouge_tokenizer("unicode", language="zh") == "unicode"
    assert base_language("pt-BR") == "pt" and base_language("") is None
    with pytest.raises(ConfigError, match=r"rouge_tokenizer 'spaces' is not one of 'auto', 'cjk', 'default', 'unicode'"):
        rouge(["a"], ["a"], tokenizer="spaces")
    assert check_language("pt-BR") == "pt-BR" and check_language("") is None
    with pytest.raises(ConfigError, match="'fr!!' is not a language code"):
        check_language("fr!!")


def test_scoring_settings_record_tokenizers_and_signatures() -> None:
    zh = scoring_settings(language="zh", rouge_tokenizer="auto", bleu=True)
    assert zh["rouge_tokenizer"] == "cjk"
    assert zh["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:zh|smooth:exp|version:")
    assert zh["chrf_signature"].startswith("nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:")
    english = scoring_settings(language=None, rouge_tokenizer="auto")
    assert english["rouge_tokenizer"] == "default (rouge-score's, Porter stemmer)"
    assert "bleu_signature" not in english
    assert "tok:13a" in scoring_settings(language="fr", bleu=True)["bleu_signature"]
    assert all(isinstance(value, str) for value in zh.values())


def test_the_terminal_table_says_how_it_scored() -> None:
    from texttune.runs.summary import comparison_table

    table = comparison_table({"fine_tuned": {"bleu": 12.5}, "scoring": {"language": "zh", "bleu_signature": "tok:zh"}})
    assert table.splitlines()[-1] == "scored with language zh; bleu_signature tok:zh"
    assert "scored" not in comparison_table({"fine_tuned": {"bleu": 12.5}})

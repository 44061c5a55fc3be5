"""The classic text-classification baseline: TF-IDF features and a linear model, fitted on the training rows.

A fine-tuned transformer that does not beat this is something the user must see at once, so it
runs before training beside the majority class. scikit-learn does the work (the well-kept library
for it): word 1-2 grams with sublinear term frequencies and a linear SVM, one per label for
multi-label data (one-vs-rest). Seconds on the 54k Debian descriptions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def tfidf_linear(train_texts: Sequence[str], train_labels: Sequence[Any], texts: Sequence[str], *,
                 labels: Sequence[str], multi_label: bool) -> list[Any]:
    """Predictions for ``texts``: a label each, or (multi-label) a list of labels each."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.preprocessing import MultiLabelBinarizer
    from sklearn.svm import LinearSVC

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2 if len(train_texts) > 1000 else 1,
                                 max_features=200_000)
    x_train, x = vectorizer.fit_transform(train_texts), vectorizer.transform(texts)
    if not multi_label:
        return list(LinearSVC(C=1.0).fit(x_train, list(train_labels)).predict(x))
    y = MultiLabelBinarizer(classes=list(labels)).fit_transform(train_labels)  # (rows, labels) 0/1
    used = y.any(0) & ~y.all(0)  # a label every (or no) training row has cannot train a classifier
    names = [label for label, keep in zip(labels, used) if keep]
    chosen = OneVsRestClassifier(LinearSVC(C=1.0)).fit(x_train, y[:, used]).predict(x)  # (rows, used labels)
    return [[label for label, hit in zip(names, row) if hit] for row in chosen]

"""Evaluation batches in length order: little padding, longest first, every row once."""

from texttune.engine.loader import length_sorted


def test_length_sorted_is_a_permutation_longest_first_with_stable_ties() -> None:
    lengths = [3, 9, 1, 9, 5]
    order = length_sorted(lengths)
    assert sorted(order) == list(range(len(lengths)))
    assert [lengths[i] for i in order] == [9, 9, 5, 3, 1]
    assert order[:2] == [1, 3]  # equal lengths keep their input order
    assert length_sorted([]) == []

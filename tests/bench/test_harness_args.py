"""The bench harness's size list (``--size 100000,300000``): parsed in order, refused when it is not a list of
positive, distinct counts; B4 compares its largest and smallest sizes (one size: with a tenth of it)."""

from __future__ import annotations

import argparse

import pytest

from bench.__main__ import b4_sizes
from bench.scenario import round_order, sizes_arg


def test_sizes_keep_their_order():
    assert sizes_arg("100000,300000") == [100_000, 300_000]
    assert sizes_arg("300000, 100000") == [300_000, 100_000]
    assert sizes_arg("10000") == [10_000]


@pytest.mark.parametrize("text", ["", ",", "abc", "100,x", "0", "-5", "100,100"])
def test_sizes_refuse_what_is_not_a_list_of_positive_distinct_counts(text):
    with pytest.raises(argparse.ArgumentTypeError):
        sizes_arg(text)


def test_b4_compares_the_largest_with_the_smallest_or_a_tenth():
    assert b4_sizes([100_000, 300_000]) == (300_000, 100_000)
    assert b4_sizes([300_000, 10_000, 100_000]) == (300_000, 10_000)
    assert b4_sizes([100_000]) == (100_000, 10_000)
    assert b4_sizes([500]) == (500, 100)


@pytest.mark.parametrize("size", [1, 50, 100])
def test_b4_refuses_one_size_with_nothing_smaller_to_compare_with(size):
    with pytest.raises(ValueError):
        b4_sizes([size])


def test_the_sizes_take_turns_at_going_first():
    assert round_order([100_000, 300_000], 0) == [100_000, 300_000]
    assert round_order([100_000, 300_000], 1) == [300_000, 100_000]
    assert round_order([100_000, 300_000], 2) == [100_000, 300_000]
    assert round_order([10_000], 1) == [10_000]

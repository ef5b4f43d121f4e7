"""RQ codebook: round-trip error, sorted centroids, the zero code, degenerate inputs."""

import numpy as np

from models import codebook


def _zero_inflated(n=5000, seed=0):
    rng = np.random.default_rng(seed)
    y = np.where(rng.random(n) < 0.55, 0.0, rng.lognormal(3.0, 1.2, n))
    return np.log1p(y)


def test_round_trip_error_shrinks_level_by_level():
    t = _zero_inflated()
    errors = []
    for levels in (1, 2, 3):
        book = codebook.fit(t, (32, 16, 16)[:levels])
        errors.append(np.abs(codebook.decode(codebook.encode(t, book), book) - t).mean())
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.01  # log1p units: about 1% of the label


def test_round_trip_error_is_at_most_half_the_finest_gap_inside_its_range():
    t = _zero_inflated()
    book = codebook.fit(t, (16, 8))
    positive = t > 0
    residual = t - book[0][codebook.first_level_codes(t, book[0])]
    error = np.abs(codebook.decode(codebook.encode(t, book), book) - t)
    finest = book[1]
    inside = positive & (residual >= finest[0]) & (residual <= finest[-1])
    assert inside.sum() >= 0.99 * positive.sum()
    assert np.all(error[inside] <= np.diff(finest).max() / 2 + 1e-9)


def test_centroids_are_sorted_and_level_one_starts_with_exact_zero():
    book = codebook.fit(_zero_inflated(), (32, 16, 16))
    assert book[0][0] == 0.0
    for centroids in book:
        assert np.all(np.diff(centroids) >= 0)
    assert np.all(book[0][1:] > 0)


def test_zero_targets_take_the_zero_code_and_decode_to_exactly_zero():
    t = _zero_inflated()
    book = codebook.fit(t, (8, 4, 4))
    codes = codebook.encode(t, book)
    decoded = codebook.decode(codes, book)
    assert np.all(codes[t == 0, 0] == codebook.ZERO_CODE)
    assert np.all(codes[t > 0, 0] != codebook.ZERO_CODE)
    assert np.all(decoded[t == 0] == 0.0)


def test_code_order_is_value_order_at_level_one():
    t = np.sort(_zero_inflated())
    codes = codebook.encode(t, codebook.fit(t, (16, 8)))
    assert np.all(np.diff(codes[:, 0]) >= 0)


def test_fewer_distinct_values_than_codes_reconstructs_exactly():
    t = np.log1p(np.array([0.0, 0.0, 5.0, 5.0, 10.0]))
    book = codebook.fit(t, (8, 4))
    assert len(book[0]) == 8 and np.all(np.diff(book[0]) >= 0)
    np.testing.assert_allclose(codebook.decode(codebook.encode(t, book), book), t, atol=1e-12)


def test_all_zero_target_is_handled():
    t = np.zeros(100)
    book = codebook.fit(t, (4, 4))
    np.testing.assert_array_equal(codebook.decode(codebook.encode(t, book), book), t)


def test_fit_is_deterministic_and_median_differs_from_mean():
    t = _zero_inflated()
    positive = t[t > 0]
    a = codebook.fit_level(positive, np.ones_like(positive), 8, median=True)
    b = codebook.fit_level(positive, np.ones_like(positive), 8, median=True)
    c = codebook.fit_level(positive, np.ones_like(positive), 8, median=False)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_weighted_fit_equals_fit_on_repeated_values():
    values = np.array([1.0, 2.0, 3.0, 10.0, 11.0])
    weights = np.array([3, 1, 2, 5, 1])
    repeated = np.repeat(values, weights)
    np.testing.assert_allclose(codebook.fit_level(values, weights, 2),
                               codebook.fit_level(repeated, np.ones_like(repeated), 2))


def test_leaf_values_enumerate_every_path():
    book = codebook.fit(_zero_inflated(), (4, 3, 2))
    codes, values = codebook.leaf_values(book)
    assert codes.shape == (24, 3)
    np.testing.assert_array_equal(values, codebook.decode(codes, book))
    assert np.all(values[codes[:, 0] == 0] == 0.0)

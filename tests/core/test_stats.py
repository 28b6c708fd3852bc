"""Means with 95% confidence intervals against the t interval computed by hand."""

import numpy as np
import pytest

from metarl.core.stats import mean_ci95, t_critical


def test_mean_ci95_matches_t_interval():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    mean, ci = mean_ci95(x)
    assert mean == 2.5
    assert ci == pytest.approx(3.182 * np.std(x, ddof=1) / 2)
    assert t_critical(1000) == 1.96
    assert np.isinf(mean_ci95(np.array([1.0]))[1])


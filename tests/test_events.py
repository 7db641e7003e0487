"""Timed events from score curves, and the CCTV-Pipe temporal metric, on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from hybrid.errors import ConfigError
from hybrid.video.cctv_pipe import interpolated_average_precision, temporal_map
from hybrid.video.events import EventSettings, detect_events, smooth

RAW = EventSettings(threshold=0.5, smoothing_s=0.0, merge_gap_s=0.0, min_duration_s=0.0)


def events(scores, times=None, **settings):
    times = np.arange(len(scores)) * 0.5 if times is None else np.asarray(times, float)
    chosen = EventSettings(**{**RAW.__dict__, **settings})
    return [(e.start_s, e.end_s, e.peak_s, e.peak_score) for e in detect_events("v", "RB", times, scores, chosen)]


def test_a_segment_runs_from_the_first_sample_at_the_threshold_to_the_first_below():
    # samples every 0.5 s; 0.5 counts (at the threshold), 0.49 does not
    assert events([0.1, 0.5, 0.9, 0.7, 0.49, 0.2]) == [(0.5, 2.0, 1.0, 0.9)]
    assert events([0.6, 0.6]) == [(0.0, 1.0, 0.0, 0.6)]  # to the end: one step past the last sample
    assert events([0.1, 0.2]) == []


def test_the_threshold_is_configurable():
    assert events([0.1, 0.35, 0.2], threshold=0.3) == [(0.5, 1.0, 0.5, 0.35)]
    with pytest.raises(ConfigError, match=r"video.threshold=0: must be in \(0, 1\]"):
        EventSettings(threshold=0)
    with pytest.raises(ConfigError, match=r"video.merge_gap_s=-1: must be >= 0 seconds"):
        EventSettings(merge_gap_s=-1)


def test_segments_merge_across_short_gaps_only():
    scores = [0.9, 0.1, 0.9, 0.1, 0.1, 0.1, 0.9]  # gaps of 0.5 s and 1.5 s
    assert [e[:2] for e in events(scores)] == [(0.0, 0.5), (1.0, 1.5), (3.0, 3.5)]
    assert [e[:2] for e in events(scores, merge_gap_s=0.5)] == [(0.0, 1.5), (3.0, 3.5)]
    assert [e[:2] for e in events(scores, merge_gap_s=1.5)] == [(0.0, 3.5)]


def test_short_segments_are_dropped():
    scores = [0.9, 0.1, 0.9, 0.9, 0.9, 0.1]
    assert [e[:2] for e in events(scores, min_duration_s=1.0)] == [(1.0, 2.5)]  # 0.5 s one dropped
    assert [e[:2] for e in events(scores, min_duration_s=1.6)] == []


def test_smoothing_removes_a_one_frame_spike_and_keeps_a_plateau():
    times = np.arange(9) * 0.5
    spike = np.array([0.1, 0.1, 0.1, 0.1, 1.0, 0.1, 0.1, 0.1, 0.1])
    # a 1 s window averages a sample with its neighbours 0.5 s away: (0.1 + 1.0 + 0.1) / 3 = 0.4
    assert smooth(times, spike, 1.0)[4] == pytest.approx(0.4)
    assert events(spike, smoothing_s=1.0) == []
    plateau = [0.1, 0.1, 0.9, 0.9, 0.9, 0.9, 0.1, 0.1, 0.1]
    found = events(plateau, smoothing_s=1.0)
    assert [e[:2] for e in found] == [(1.0, 3.0)]  # (0.1 + 0.9 + 0.9) / 3 reaches 0.5 at 1.0 s
    assert found[0][3] == 0.9  # the peak is a raw score, not the smoothed one


def test_timing_follows_timestamps_under_a_variable_frame_rate():
    times = [0.0, 0.1, 0.2, 1.7, 1.8, 3.9, 4.0]  # bursts and gaps
    scores = [0.1, 0.1, 0.8, 0.8, 0.2, 0.9, 0.9]
    found = [e[:2] for e in events(scores, times=times)]
    assert found[0] == (0.2, 1.8)  # ends where the first sample below it is, 1.5 s later
    assert found[1] == pytest.approx((3.9, 4.1))  # the last sample's slot: the typical 0.1 s step
    # the smoothing window is in seconds, not samples: +-0.15 s takes 3 samples in the burst, 2 at 1.7 s
    smoothed = smooth(np.array(times), np.array(scores), 0.3)
    assert smoothed[1] == pytest.approx((0.1 + 0.1 + 0.8) / 3) and smoothed[3] == pytest.approx((0.8 + 0.2) / 2)


def test_interpolated_average_precision_by_hand():
    # hits at ranks 1 and 3 of 3 predictions, 2 truths: precision 1, 1/2, 2/3; recall 1/2, 1/2, 1
    precision, recall = np.array([1.0, 0.5, 2 / 3]), np.array([0.5, 0.5, 1.0])
    assert interpolated_average_precision(precision, recall) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)


def test_cctv_pipe_metric_by_hand():
    truth = [("a", "RB", 10.0), ("a", "RB", 40.0), ("b", "RB", 20.0), ("a", "FS", 30.0)]
    predictions = [
        ("a", "RB", 12.0, 0.9),  # 2 s from a@10: a hit at every distance
        ("a", "RB", 11.0, 0.8),  # a@10 already taken, a@40 is 29 s away: a false alarm
        ("b", "RB", 27.0, 0.7),  # 7 s from b@20: a hit at 10 and 15 s, not at 5 s
        ("c", "RB", 5.0, 0.6),  # a video without RB: false alarm
        ("a", "XX", 30.0, 0.99),  # a label the truth lacks: not scored
    ]
    m = temporal_map(truth, predictions)
    # RB at 5 s: hits at rank 1 only; precision 1, recall 1/3 -> AP 1/3
    # RB at 10 and 15 s: hits at ranks 1 and 3 -> precision 1, 1/2, 2/3; recall 1/3, 1/3, 2/3 -> AP 1/3 + 1/3 * 2/3
    assert m["ap@5/RB"] == pytest.approx(1 / 3)
    assert m["ap@10/RB"] == m["ap@15/RB"] == pytest.approx(1 / 3 + 2 / 9)
    assert m["ap@5/FS"] == 0.0  # no FS predictions
    assert m["map@5"] == pytest.approx(1 / 6) and m["map@10"] == pytest.approx((1 / 3 + 2 / 9) / 2)
    assert m["map"] == pytest.approx((m["map@5"] + m["map@10"] + m["map@15"]) / 3)
    assert not any("XX" in key for key in m)


def test_the_nearest_unmatched_truth_is_taken():
    truth = [("a", "RB", 10.0), ("a", "RB", 14.0)]
    # the best-scored prediction sits nearer 14 s; the next one still finds 10 s within 5 s
    m = temporal_map(truth, [("a", "RB", 13.0, 0.9), ("a", "RB", 13.5, 0.8)], distances=(5,))
    assert m["ap@5/RB"] == 1.0
    m = temporal_map(truth, [("a", "RB", 13.0, 0.9), ("a", "RB", 13.5, 0.8)], distances=(2,))
    assert m["ap@2/RB"] == pytest.approx(0.5)  # 13.5 is 3.5 s from the free truth at 10 s

"""Braille reading: every accepted pickle layout, plain or zipped, yields exactly its events."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from delayprop.data import load_dataset
from delayprop.data.braille import LETTERS, read_braille_pickle
from delayprop.data.fixtures import random_braille, write_braille_pickle, write_zip

N_PER_CLASS = 10


@pytest.fixture(scope="module")
def recordings():
    return random_braille(N_PER_CLASS, seed=3)


def _expected(events_of_sample) -> tuple[np.ndarray, np.ndarray]:
    """Reference conversion written independently: one (time ms, channel) per listed time,
    channel = taxel + 12 * polarity, sorted by time (stable over taxel, polarity order)."""
    pairs = [
        (t * 1000.0, taxel + 12 * pol)
        for taxel, lists in enumerate(events_of_sample)
        for pol, times in enumerate(lists)
        for t in times
    ]
    pairs.sort(key=lambda p: p[0])
    return (np.array([p[0] for p in pairs], np.float32),
            np.array([p[1] for p in pairs], np.int32))  # fmt: skip


def _assert_all_events(ds, letters, events):
    assert len(ds) == len(letters)
    assert (ds.n_channels, ds.n_classes) == (24, 27)
    assert [LETTERS[k] for k in ds.labels] == letters
    for n, ev in enumerate(events):
        t, u = _expected(ev)
        np.testing.assert_array_equal(ds.times[ds.offsets[n] : ds.offsets[n + 1]], t)
        np.testing.assert_array_equal(ds.units[ds.offsets[n] : ds.offsets[n + 1]], u)


@pytest.mark.parametrize("layout", ["records", "columns", "dataframe"])
def test_each_layout_yields_exactly_the_source_events(tmp_path, recordings, layout):
    if layout == "dataframe":
        pytest.importorskip("pandas")
    letters, events = recordings
    path = write_braille_pickle(tmp_path / "data_braille_letters_th_1.pkl", letters, events, layout)
    ds = read_braille_pickle(path)
    _assert_all_events(ds, letters, events)
    assert ds.counts()[1] == 0 and ds.units.max() == 23
    assert ds.class_names == LETTERS and ds.class_names[0] == "Space"
    assert ds.duration > ds.times.max() and ds.duration == np.floor(ds.times.max()) + 1


def test_records_and_columns_need_no_pandas(tmp_path, recordings, monkeypatch):
    import sys

    letters, events = recordings
    monkeypatch.setitem(sys.modules, "pandas", None)
    for layout in ("records", "columns"):
        path = write_braille_pickle(tmp_path / f"{layout}.pkl", letters, events, layout)
        _assert_all_events(read_braille_pickle(path), letters, events)


def test_splits_are_stratified_70_10_20_disjoint_and_complete(tmp_path, recordings):
    letters, events = recordings
    write_braille_pickle(tmp_path / "data_braille_letters_th_1.pkl", letters, events, "records")
    parts = {
        s: load_dataset("braille", s, data_dir=tmp_path) for s in ("train", "validation", "test")
    }
    for split, n in {"train": 7, "validation": 1, "test": 2}.items():
        assert np.bincount(parts[split].labels, minlength=27).tolist() == [n] * 27
        assert parts[split].name == f"braille-{split}"
    assert sum(p.n_events for p in parts.values()) == sum(
        len(ts) for ev in events for taxel in ev for ts in taxel
    )
    # every recording lands in exactly one split: match them by their event content
    seen = sorted(
        (int(p.labels[n]), tuple(p.times[p.offsets[n] : p.offsets[n + 1]].tolist()))
        for p in parts.values() for n in range(len(p))
    )  # fmt: skip
    expected = sorted(
        (LETTERS.index(letter), tuple(_expected(ev)[0].tolist()))
        for letter, ev in zip(letters, events)
    )
    assert seen == expected
    again = load_dataset("braille", "test", data_dir=tmp_path)
    np.testing.assert_array_equal(again.times, parts["test"].times)
    other = load_dataset("braille", "test", data_dir=tmp_path, seed=1)
    assert other.n_events != parts["test"].n_events or not np.array_equal(
        other.times, parts["test"].times
    )


def test_published_zip_and_threshold_choice(tmp_path, recordings):
    letters, events = recordings
    th1 = write_braille_pickle(tmp_path / "a.pkl", letters, events, "columns")
    th2 = write_braille_pickle(
        tmp_path / "b.pkl", letters[::N_PER_CLASS], events[::N_PER_CLASS], "records"
    )
    members = {"data_braille_letters_th_1.pkl": th1, "data/data_braille_letters_th_2.pkl": th2}
    write_zip(tmp_path / "reading_braille_data.zip", members)
    th1.unlink()
    th2.unlink()
    full = load_dataset("braille", "train", data_dir=tmp_path, threshold=1)
    assert len(full) == 7 * 27
    # one recording per letter: round(0.7 * 1) = 1 puts all of them into train
    small = load_dataset("braille", "train", data_dir=tmp_path, threshold=2)
    _assert_all_events(small, letters[::N_PER_CLASS], events[::N_PER_CLASS])
    assert len(load_dataset("braille", "test", data_dir=tmp_path, threshold=2)) == 0
    with pytest.raises(ValueError, match="the archive has no member 'data_braille_letters_th_5"):
        load_dataset("braille", "train", data_dir=tmp_path, threshold=5)
    with pytest.raises(ValueError, match="threshold must be one of"):
        load_dataset("braille", "train", data_dir=tmp_path, threshold=3)


def test_missing_file_names_the_download_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="delayprop data download braille --data-dir"):
        load_dataset("braille", "train", data_dir=tmp_path)


def _bad_events():
    good = [[[0.1], [0.2]] for _ in range(12)]
    return good


@pytest.mark.parametrize(
    "content, message",
    [
        ({"letter": ["A"]}, r"missing column\(s\) \['events'\]"),
        ([{"letter": "A", "events": _bad_events()}, {"letter": "A"}], "list layout must hold"),
        ({"letter": ["Ä"], "events": [_bad_events()]}, "sample 0: unknown letter 'Ä'"),
        ({"letter": ["A", "B"], "events": [_bad_events(), _bad_events()[:11]]},
         r"sample 1 \('B'\): events must be 12 taxels"),
        ({"letter": ["A"], "events": [[[[0.1], ["x"]]] * 12]}, "event times must be numbers"),
        ({"letter": ["A"], "events": [[[[-0.1], []]] * 12]}, "sample 0: spike time -100.0 ms"),
        ({"letter": ["A", "B"], "events": [_bad_events()]}, "2 letters but 1 event records"),
        (np.zeros(3), "unsupported pickle content ndarray"),
    ],
)  # fmt: skip
def test_wrong_content_is_named(tmp_path, content, message):
    path = tmp_path / "data_braille_letters_th_1.pkl"
    path.write_bytes(pickle.dumps(content))
    with pytest.raises(ValueError, match=message) as err:
        load_dataset("braille", "train", data_dir=tmp_path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("damage", ["truncate", "text"])
def test_corrupt_pickle_is_named(tmp_path, recordings, damage):
    letters, events = recordings
    path = write_braille_pickle(tmp_path / "data_braille_letters_th_1.pkl", letters, events,
                                "records")  # fmt: skip
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:1000])
    else:
        path.write_text("letter,events\nA,[]\n")
    with pytest.raises(ValueError, match="not a readable pickle") as err:
        load_dataset("braille", "train", data_dir=tmp_path)
    assert str(path) in str(err.value)

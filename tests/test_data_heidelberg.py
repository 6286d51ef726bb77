"""SHD / SSC: fixtures in the real HDF5 layout are read back exactly, bad files are named."""

from __future__ import annotations

import gzip
import os
import shutil
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from delayprop.data import load_dataset
from delayprop.data.cache import cache_path, load_entry, resolve_cache_dir
from delayprop.data.download import md5sum
from delayprop.data.fixtures import random_heidelberg, wrap, write_heidelberg_h5
from delayprop.data.shd import SHD, load_heidelberg_file


def _write(folder: Path, stem: str, wrapper: str, seed: int = 0, n: int = 14, n_classes: int = 20):
    trains = random_heidelberg(n, n_classes, seed=seed, n_speakers=3)
    path = write_heidelberg_h5(folder / f"{stem}.h5", trains, meta_info=stem.startswith("shd"))
    return (path if wrapper == "h5" else wrap(path, wrapper)), trains


def _assert_same_events(ds, trains):
    """Every sample holds exactly the file's events (float16 s -> float64 -> ms -> float32),
    in canonical order: by time, equal times by channel."""
    assert len(ds) == len(trains.labels)
    np.testing.assert_array_equal(ds.labels, trains.labels)
    for n, (t, u) in enumerate(zip(trains.times, trains.units)):
        lo, hi = ds.offsets[n], ds.offsets[n + 1]
        ms = (t.astype(np.float64) * 1000).astype(np.float32)
        order = np.lexsort((u, ms))
        np.testing.assert_array_equal(ds.times[lo:hi], ms[order])
        np.testing.assert_array_equal(ds.units[lo:hi], u[order])


@pytest.mark.parametrize("wrapper", ["h5", "zip", "gz"])
def test_each_wrapper_yields_exactly_the_source_events(tmp_path, wrapper):
    path, trains = _write(tmp_path, "shd_train", wrapper)
    ds = load_heidelberg_file(path, SHD, verify=False)
    _assert_same_events(ds, trains)
    assert (ds.n_channels, ds.n_classes, ds.duration) == (700, 20, 1400.0)
    assert ds.counts()[1] == 0 and ds.units.max() == 699
    np.testing.assert_array_equal(ds.meta["speaker"], trains.speakers)
    np.testing.assert_array_equal(ds.meta["age"], 20 + trains.speakers)
    assert ds.meta["gender"].tolist() == ["m" if s % 2 == 0 else "f" for s in trains.speakers]
    assert ds.class_names == tuple(f"word-{k}" for k in range(20))


def test_times_are_cast_before_scaling():
    """1.369 s in float16 is 1.369140625 s; scaled in float16 it would round to 1369.0 ms."""
    from delayprop.data.base import EventDataset

    t = np.array([1.369, 0.001], np.float16)
    ds = EventDataset.from_ragged([t], [np.array([3, 4], np.uint16)], [0], 700, 20, 1400.0,
                                  time_scale=1000.0)  # fmt: skip
    assert float(np.float16(1.369) * np.float16(1000)) == 1369.0
    expected = [float(np.float16(0.001)) * 1000.0, 1369.140625]
    np.testing.assert_array_equal(ds.times, np.array(expected, np.float32))
    np.testing.assert_array_equal(ds.units, [4, 3])


def test_shd_validation_is_a_held_out_speaker_and_train_excludes_it(tmp_path):
    _, trains = _write(tmp_path, "shd_train", "h5")
    for fold, speaker in enumerate([0, 1, 2]):
        train = load_dataset("shd", "train", data_dir=tmp_path, fold=fold, verify=False)
        val = load_dataset("shd", "validation", data_dir=tmp_path, fold=fold, verify=False)
        assert set(val.meta["speaker"]) == {speaker}
        assert speaker not in set(train.meta["speaker"])
        assert len(train) + len(val) == len(trains.labels)
        assert train.n_events + val.n_events == sum(map(len, trains.times))
        assert (train.name, val.name) == ("shd-train", "shd-validation")
    full = load_dataset("shd", "train", data_dir=tmp_path, fold=None, verify=False)
    _assert_same_events(full, trains)
    with pytest.raises(ValueError, match="no published validation split"):
        load_dataset("shd", "validation", data_dir=tmp_path, fold=None, verify=False)
    with pytest.raises(ValueError, match=r"fold must lie in \[0, 3\)"):
        load_dataset("shd", "train", data_dir=tmp_path, fold=3, verify=False)


def test_ssc_reads_its_three_published_files(tmp_path):
    written = {s: _write(tmp_path, f"ssc_{f}", "zip", seed=k, n_classes=35)[1]
               for k, (s, f) in enumerate([("train", "train"), ("validation", "valid"),
                                           ("test", "test")])}  # fmt: skip
    for split, trains in written.items():
        ds = load_dataset("ssc", split, data_dir=tmp_path, verify=False)
        _assert_same_events(ds, trains)
        assert (ds.n_classes, ds.duration, ds.name) == (35, 1000.0, f"ssc-{split}")
        assert "gender" not in ds.meta and "speaker" in ds.meta


def test_binning_700_to_140_and_cropping(tmp_path):
    _, trains = _write(tmp_path, "shd_test", "h5")
    raw = load_dataset("shd", "test", data_dir=tmp_path)
    binned = load_dataset("shd", "test", data_dir=tmp_path, binning=5)
    assert binned.n_channels == 140 and binned.units.max() == 139
    np.testing.assert_array_equal(binned.units, raw.units // 5)
    np.testing.assert_array_equal(binned.times, raw.times)
    cropped = load_dataset("shd", "test", data_dir=tmp_path, crop=500.0)
    assert cropped.duration == 500.0 and cropped.times.max() < 500.0
    assert cropped.n_events == int((raw.times < 500.0).sum())
    for n in range(len(raw)):
        t = raw.times[raw.offsets[n] : raw.offsets[n + 1]]
        np.testing.assert_array_equal(cropped.times[cropped.offsets[n] : cropped.offsets[n + 1]],
                                      t[t < 500.0])  # fmt: skip


def test_missing_files_explain_how_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("shd", "train", data_dir=tmp_path)
    message = str(err.value)
    assert f"delayprop data download shd --data-dir {tmp_path}" in message
    assert "DELAYPROP_DATA" in message
    assert "https://zenkelab.org/datasets/shd_train.h5.zip" in message


def test_data_dir_from_environment(tmp_path, monkeypatch):
    _, trains = _write(tmp_path, "shd_test", "gz")
    monkeypatch.setenv("DELAYPROP_DATA", str(tmp_path))
    _assert_same_events(load_dataset("shd", "test"), trains)


def test_published_name_with_wrong_checksum_is_refused(tmp_path):
    path, _ = _write(tmp_path, "shd_train", "zip")
    with pytest.raises(ValueError, match=r"shd_train\.h5\.zip: checksum mismatch .*published "
                                         r"f3252aeb598ac776c1b526422d90eecb"):  # fmt: skip
        load_dataset("shd", "train", data_dir=tmp_path)


def _truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


@pytest.mark.parametrize(
    "wrapper, damage, message",
    [
        ("zip", "truncate", "not a valid zip archive"),
        ("gz", "truncate", "not a valid gzip file"),
        ("h5", "truncate", "HDF5 file"),
        ("h5", "text", "not a readable HDF5 file"),
        ("zip", "flip", "is corrupt"),
        ("gz", "text", "not a valid gzip file"),
    ],
)
def test_corrupt_and_truncated_files_are_named(tmp_path, wrapper, damage, message):
    path, _ = _write(tmp_path, "shd_train", wrapper, n=200)
    if damage == "truncate":
        _truncate(path)
    elif damage == "text":
        path.write_text("this is not the data you are looking for\n")
    else:  # flip bytes inside the deflated member: the CRC check must catch it
        data = bytearray(path.read_bytes())
        for i in range(len(data) // 3, len(data) // 3 + 64):
            data[i] ^= 0x5A
        path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=message) as err:
        load_heidelberg_file(path, SHD, verify=False, cache=False)
    assert str(path) in str(err.value)


def test_zip_without_the_expected_member_is_named(tmp_path):
    other = tmp_path / "notes.txt"
    other.write_text("x")
    with zipfile.ZipFile(tmp_path / "shd_test.h5.zip", "w") as archive:
        archive.write(other, "notes.txt")
    with pytest.raises(ValueError, match=r"shd_test\.h5\.zip: the archive has no member 'shd_test"):
        load_dataset("shd", "test", data_dir=tmp_path, verify=False)


def _edit_h5(tmp_path: Path, edit) -> Path:
    path, _ = _write(tmp_path, "shd_test", "h5")
    with h5py.File(path, "a") as f:
        edit(f)
    return path


def _set_sample(f, n, times, units):
    f["spikes/times"][n] = np.array(times, np.float16)
    f["spikes/units"][n] = np.array(units, np.uint16)


def _replace(f, key, data, dtype=None):
    del f[key]
    f.create_dataset(key, data=data, dtype=dtype)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda f: f.__delitem__("spikes/times"), "missing dataset 'spikes/times'"),
        (lambda f: f.__delitem__("labels"), "missing dataset 'labels'"),
        (lambda f: _replace(f, "spikes/times", np.zeros(14)), "variable-length float arrays"),
        (lambda f: _replace(f, "labels", np.arange(14) + 10), r"labels outside \[0, 20\)"),
        (lambda f: _replace(f, "labels", np.zeros(13, np.uint16)), "13 labels"),
        (lambda f: _replace(f, "extra/keys", np.array([b"a", b"b"])), "names 2 classes"),
        (lambda f: f["spikes/units"].__setitem__(2, np.full(len(f["spikes/times"][2]), 700,
                                                            np.uint16)), r"outside \[0, 700\)"),
        (lambda f: _set_sample(f, 3, [-0.5, np.nan], [1, 2]), "sample 3: spike time -500.0 ms"),
        (lambda f: _set_sample(f, 5, [0.1, np.inf], [1, 2]), "sample 5: spike time inf ms"),
        (lambda f: f["spikes/units"].__setitem__(4, np.array([1], np.uint16)),
         "sample 4: .* spike times but 1 unit ids"),
        (lambda f: _replace(f, "extra/meta_info/age", np.array([30])), "does not cover speaker"),
    ],
)  # fmt: skip
def test_wrong_content_is_named(tmp_path, edit, message):
    path = _edit_h5(tmp_path, edit)
    with pytest.raises(ValueError, match=message) as err:
        load_heidelberg_file(path, SHD, cache=False)
    assert str(path) in str(err.value)


def test_cache_is_written_reused_and_rebuilt_when_corrupt(tmp_path):
    path, trains = _write(tmp_path, "shd_train", "zip")
    first = load_heidelberg_file(path, SHD, verify=False)
    key = f"{md5sum(path)}:heidelberg:1"
    entry = cache_path(resolve_cache_dir(tmp_path), path, key)
    assert entry.is_file() and entry.parent == tmp_path / ".delayprop-cache"
    cached = load_entry(entry, key)
    _assert_same_events(cached, trains)
    assert load_entry(entry, "another-key") is None
    for damage in ("truncate", "flip"):
        data = bytearray(entry.read_bytes())
        if damage == "truncate":
            data = data[: len(data) // 2]
        else:
            data[len(data) // 2] ^= 0xFF
        entry.write_bytes(bytes(data))
        assert load_entry(entry, key) is None
        again = load_heidelberg_file(path, SHD, verify=False)
        _assert_same_events(again, trains)
        assert load_entry(entry, key) is not None
    np.testing.assert_array_equal(first.times, again.times)


def test_changed_source_is_not_served_from_the_cache(tmp_path):
    path, _ = _write(tmp_path, "shd_test", "h5", seed=1)
    load_dataset("shd", "test", data_dir=tmp_path)
    path.unlink()
    _, trains = _write(tmp_path, "shd_test", "h5", seed=2)
    _assert_same_events(load_dataset("shd", "test", data_dir=tmp_path), trains)


def test_cache_dir_option_and_read_only_data_dir(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    _write(data, "shd_test", "h5")
    load_dataset("shd", "test", data_dir=data, cache_dir=tmp_path / "elsewhere")
    assert len(list((tmp_path / "elsewhere").glob("shd_test.h5.*.npz"))) == 1
    assert not (data / ".delayprop-cache").exists()
    wrap(data / "shd_test.h5", "zip")
    load_dataset("shd", "test", data_dir=data, cache=False, verify=False)
    assert not (data / ".delayprop-cache").exists()


def test_gzip_and_zip_wrappers_hold_the_h5_bytes(tmp_path):
    """The fixture wrappers are real archives of the h5 file (read with the standard library)."""
    path, _ = _write(tmp_path, "shd_test", "h5")
    original = path.read_bytes()
    shutil.copy(path, tmp_path / "copy.h5")
    gz = wrap(tmp_path / "copy.h5", "gz")
    assert gzip.decompress(gz.read_bytes()) == original
    shutil.copy(path, tmp_path / "copy.h5")
    with zipfile.ZipFile(wrap(tmp_path / "copy.h5", "zip")) as archive:
        assert archive.read("copy.h5") == original
    assert not os.path.exists(tmp_path / "copy.h5")

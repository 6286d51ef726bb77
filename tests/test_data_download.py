"""Downloads (through local file:// URLs: nothing leaves the machine) and the ``data`` CLI."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from delayprop.cli import main
from delayprop.data import download
from delayprop.data.download import REMOTE_FILES, RemoteFile, fetch, md5sum
from delayprop.data.fixtures import random_heidelberg, write_heidelberg_h5


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "server" / "payload.bin"
    path.parent.mkdir()
    path.write_bytes(np.random.default_rng(0).bytes(3_000_000))
    return path


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_fetch_verifies_and_moves_into_place(tmp_path, source):
    remote = RemoteFile(
        "payload.bin", source.as_uri(), hashlib.md5(source.read_bytes()).hexdigest()
    )
    target = fetch(remote, tmp_path / "data")
    assert target == tmp_path / "data" / "payload.bin"
    assert target.read_bytes() == source.read_bytes()
    assert _leftovers(target.parent) == []
    # a verified copy is not fetched again (the URL is gone now)
    gone = RemoteFile("payload.bin", (tmp_path / "missing").as_uri(), remote.md5)
    assert fetch(gone, tmp_path / "data") == target


def test_fetch_replaces_a_corrupt_copy(tmp_path, source):
    (tmp_path / "payload.bin").write_bytes(b"truncated")
    remote = RemoteFile("payload.bin", source.as_uri(), md5sum(source))
    messages = []
    fetch(remote, tmp_path, report=messages.append)
    assert md5sum(tmp_path / "payload.bin") == remote.md5
    assert any("checksum mismatch" in m for m in messages)


def test_checksum_mismatch_leaves_nothing_behind(tmp_path, source):
    remote = RemoteFile("payload.bin", source.as_uri(), "0" * 32)
    with pytest.raises(ValueError, match=r"\.part: checksum mismatch .*published 0{32}"):
        fetch(remote, tmp_path / "data")
    assert list((tmp_path / "data").iterdir()) == []


def test_checksum_from_a_zenodo_style_record(tmp_path, source):
    record = tmp_path / "record.json"
    record.write_text(
        json.dumps({"files": [{"key": "payload.bin", "checksum": f"md5:{md5sum(source)}"}]})
    )
    remote = RemoteFile("payload.bin", source.as_uri(), checksum_url=record.as_uri())
    assert fetch(remote, tmp_path / "data").read_bytes() == source.read_bytes()
    record.write_text(json.dumps({"files": [{"key": "other.zip", "checksum": "md5:00"}]}))
    with pytest.raises(ValueError, match="no md5 listed for payload.bin"):
        fetch(remote, tmp_path / "again")
    record.write_text("<html>rate limited</html>")
    with pytest.raises(ValueError, match="unreadable record"):
        fetch(remote, tmp_path / "again")


def test_published_table_covers_every_downloadable_file():
    names = {r.filename: r for files in REMOTE_FILES.values() for r in files}
    heidelberg = ["shd_train", "shd_test", "ssc_train", "ssc_valid", "ssc_test"]
    assert set(names) == {f"{stem}.h5.zip" for stem in heidelberg} | {"reading_braille_data.zip"}
    for remote in names.values():
        assert remote.url.startswith("https://")
        assert remote.md5 is not None or remote.checksum_url.startswith("https://zenodo.org/api/")
    with pytest.raises(ValueError, match="nothing to download for 'mnist'"):
        download("mnist", "/nonexistent")


# ---------------------------------------------------------------------- CLI
def test_cli_download_through_the_table(tmp_path, source, monkeypatch, capsys):
    monkeypatch.setitem(REMOTE_FILES, "shd", (RemoteFile("shd_train.h5.zip", source.as_uri(),
                                                         md5sum(source)),))  # fmt: skip
    assert main(["data", "download", "shd", "--data-dir", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert f"ok {tmp_path / 'd' / 'shd_train.h5.zip'}" in out
    assert md5sum(tmp_path / "d" / "shd_train.h5.zip") == md5sum(source)


def test_cli_info_on_fixture_files(tmp_path, capsys):
    for stem, seed in (("shd_train", 0), ("shd_test", 1)):
        write_heidelberg_h5(tmp_path / f"{stem}.h5", random_heidelberg(9, 20, seed=seed))
    code = main(["data", "info", "shd", "--data-dir", str(tmp_path), "--option", "binning=5",
                 "--option", "fold=1"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "shd-train: 6 samples, 140 channels, 20 classes, duration 1400 ms" in out
    assert "shd-validation: 3 samples" in out and "speakers: [1]" in out
    assert "shd-test: 9 samples" in out and "empty samples: 1" in out


def test_cli_info_digits(capsys):
    pytest.importorskip("sklearn")
    assert main(["data", "info", "digits", "--split", "test"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("digits-test: 359 samples, 64 channels, 10 classes, duration 25 ms")


def test_cli_missing_data_and_bad_options(tmp_path, capsys):
    assert main(["data", "info", "ssc", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"delayprop data download ssc --data-dir {tmp_path}" in err
    assert main(["data", "info", "digits", "--option", "seed"]) == 2
    assert "--option expects KEY=VALUE" in capsys.readouterr().err
    assert main(["data", "info", "yinyang", "--split", "test", "--option", "tau=1"]) == 2
    assert "unknown option(s) tau" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["data", "download", "digits"])

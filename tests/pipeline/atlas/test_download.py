"""`python -m pipeline.download` fetches the atlas: pinned URLs, checked, kept only if right.

The atlas is served by a local HTTP server (the real one is GitHub's, at the pinned commits)."""

import hashlib
import http.server
import re
import threading
from dataclasses import replace
from functools import partial

import pytest

from pipeline.atlas import download as atlas_download
from pipeline.atlas.download import PINNED, digests
from pipeline.download import main


@pytest.fixture
def server(tmp_path):
    """A local HTTP server of tmp_path/served; `requests` records each path asked for."""
    served = tmp_path / "served"
    served.mkdir()
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            requests.append(self.path)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                            partial(Handler, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}", requests
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def served_path(served, pin):
    """Where the local server keeps the pin's file: its path on GitHub's raw host."""
    return served / pin.repo / pin.commit / pin.path


def pin_served(monkeypatch, served, base, files):
    """The pins, hosted by the local server, with the served files' true checksums."""
    pins = {}
    for year, data in files.items():
        blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        pins[year] = replace(PINNED[year], git_blob=blob, host=base,
                             sha256=hashlib.sha256(data).hexdigest())
        served_path(served, pins[year]).parent.mkdir(parents=True)
        served_path(served, pins[year]).write_bytes(data)
    monkeypatch.setattr(atlas_download, "PINNED", pins)
    monkeypatch.setattr("pipeline.download.PINNED", pins)
    return pins


def run_download(monkeypatch, tmp_path, atlas_dir):
    monkeypatch.chdir(tmp_path)  # no .env of the project's
    monkeypatch.setenv("PLACE_ATLAS_DIR", str(atlas_dir))
    return main(["--model", "none"])


def test_every_year_is_fetched_checked_and_kept(server, monkeypatch, tmp_path, capsys):
    """Each year's file lands in PLACE_ATLAS_DIR as atlas-<year>.json, verified."""
    served, base, requests = server
    files = {year: f'[{{"year": "{year}"}}]'.encode() for year in PINNED}
    pin_served(monkeypatch, served, base, files)
    atlas_dir = tmp_path / "cache" / "atlas"
    assert run_download(monkeypatch, tmp_path, atlas_dir) == 0
    assert {p.name: p.read_bytes() for p in atlas_dir.iterdir()} == {
        f"atlas-{year}.json": data for year, data in files.items()}
    assert "verified" in capsys.readouterr().out
    assert sorted(requests) == sorted(
        f"/placeAtlas/atlas-{year}/{pin.commit}/web/atlas.json" for year, pin in PINNED.items())


def test_a_file_that_differs_from_the_pin_is_refused_and_not_kept(server, monkeypatch,
                                                                  tmp_path, capsys):
    """The served bytes are not the pinned ones: one error line naming both ids, exit 2."""
    served, base, _ = server
    pins = pin_served(monkeypatch, served, base, {year: b"[]" for year in PINNED})
    served_path(served, pins["2017"]).write_bytes(b'["tampered"]')
    atlas_dir = tmp_path / "atlas"
    assert run_download(monkeypatch, tmp_path, atlas_dir) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: the 2017 atlas from ")
    assert f"not {pins['2017'].git_blob}; nothing was kept" in line
    assert list(atlas_dir.iterdir()) == []


def test_a_file_already_there_and_right_is_not_fetched_again(server, monkeypatch, tmp_path,
                                                              capsys):
    served, base, requests = server
    pin_served(monkeypatch, served, base, {year: b"[]" for year in PINNED})
    atlas_dir = tmp_path / "atlas"
    assert run_download(monkeypatch, tmp_path, atlas_dir) == 0
    requests.clear()
    assert run_download(monkeypatch, tmp_path, atlas_dir) == 0
    assert requests == [] and "is already the pinned file" in capsys.readouterr().out


def test_an_unreachable_server_is_one_line_saying_what_to_do(server, monkeypatch, tmp_path,
                                                             capsys):
    served, base, _ = server
    pins = pin_served(monkeypatch, served, base, {year: b"[]" for year in PINNED})
    served_path(served, pins["2017"]).unlink()  # 404
    assert run_download(monkeypatch, tmp_path, tmp_path / "atlas") == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: could not download the 2017 atlas from ")
    assert "fetch that URL yourself and save it as" in line


def test_the_pins_name_a_commit_and_the_files_ids_in_it():
    """Each pin is a raw GitHub URL at a full commit, with the file's git object id (and a
    SHA-256 where one was computed); the git id check is what digests() computes."""
    for year, pin in PINNED.items():
        assert pin.year == year
        assert re.fullmatch(r"[0-9a-f]{40}", pin.commit) and re.fullmatch(r"[0-9a-f]{40}",
                                                                          pin.git_blob)
        assert pin.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", pin.sha256)
        assert pin.url == (f"https://raw.githubusercontent.com/placeAtlas/atlas-{year}/"
                           f"{pin.commit}/web/atlas.json")


def test_digests_are_gits_object_id_and_sha256(tmp_path):
    """`git hash-object` of b"hello\\n" is ce01362...; its SHA-256 is 5891b5b5...."""
    path = tmp_path / "f"
    path.write_bytes(b"hello\n")
    found = digests(path)
    assert found.git_blob == "ce013625030ba8dba906f756967f9e9ca394464a"
    assert found.sha256 == ("5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03")

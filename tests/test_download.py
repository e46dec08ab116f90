import hashlib
import io
import os
import socket
import subprocess
import sys
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from common.data import download, mtat, tinysol
from common.data.download import MIRROR_VARIABLE, ChecksumError, DownloadError, Remote

REPO = Path(__file__).resolve().parent.parent


class Server:
    """A tiny HTTP server on 127.0.0.1 that serves bytes, honours Range, and logs requests."""

    def __init__(self):
        self.files, self.requests, self.cut_at = {}, [], None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                if server.cut_at is not None:  # promise everything, send part of it, hang up
                    self.wfile.write(data[start:server.cut_at])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data[start:])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def serve(self, name, data):
        self.files[f"/{name}"] = data
        return Remote(name, f"{self.url}/{name}", "sha256", hashlib.sha256(data).hexdigest())


@pytest.fixture
def server():
    s = Server()
    yield s
    s.httpd.shutdown()


def test_download_verifies_and_names_the_file_only_when_complete(server, tmp_path):
    remote = server.serve("blob.bin", b"x" * 3_000_000)
    path = download.download(remote, tmp_path)
    assert path.read_bytes() == b"x" * 3_000_000
    assert not (tmp_path / "blob.bin.part").exists()
    download.download(remote, tmp_path)  # present: not fetched again
    assert len(server.requests) == 1


def test_interrupted_download_resumes_with_a_range_request(server, tmp_path):
    data = bytes(np.random.default_rng(0).integers(0, 256, 100_000, dtype=np.uint8))
    remote = server.serve("blob.bin", data)
    (tmp_path / "blob.bin.part").write_bytes(data[:40_000])
    path = download.download(remote, tmp_path)
    assert path.read_bytes() == data
    assert server.requests == [("/blob.bin", "bytes=40000-")]


def test_a_cut_connection_keeps_its_part_and_the_next_try_resumes_it(server, tmp_path):
    data = bytes(np.random.default_rng(1).integers(0, 256, 200_000, dtype=np.uint8))
    remote = server.serve("blob.bin", data)
    server.cut_at = 70_000
    with pytest.raises(DownloadError, match="resume"):
        download.download(remote, tmp_path)
    assert (tmp_path / "blob.bin.part").stat().st_size == 70_000 and not (tmp_path / "blob.bin").exists()
    server.cut_at = None
    assert download.download(remote, tmp_path).read_bytes() == data
    assert server.requests[-1] == ("/blob.bin", "bytes=70000-")


def test_a_file_placed_by_hand_is_checked_against_its_checksum_once(server, tmp_path):
    remote = server.serve("blob.bin", b"the real bytes")
    (tmp_path / "blob.bin").write_bytes(b"something else")
    with pytest.raises(ChecksumError, match="delete it and run again"):
        download.download(remote, tmp_path)
    (tmp_path / "blob.bin").write_bytes(b"the real bytes")
    assert download.download(remote, tmp_path).read_bytes() == b"the real bytes"
    assert (tmp_path / ".blob.bin.verified").exists() and server.requests == []


def test_checksum_mismatch_is_detected_and_not_kept(server, tmp_path):
    remote = server.serve("blob.bin", b"good data")
    server.files["/blob.bin"] = b"tampered!"
    with pytest.raises(ChecksumError, match="corrupt"):
        download.download(remote, tmp_path)
    assert not (tmp_path / "blob.bin").exists() and not (tmp_path / "blob.bin.part").exists()


def extract_from_mirror(mirror, data_root):
    """extract_features.py on the real TinySOL under `data_root`, its files fetched from `mirror`."""
    return subprocess.run([sys.executable, "extract_features.py", "--model", "handcrafted", "--task", "pitch",
                           "--data-root", str(data_root), "--features-dir", str(data_root / "features")],
                          cwd=REPO, capture_output=True, text=True, env={**os.environ, MIRROR_VARIABLE: mirror})


def one_line(out):
    """The command's one error line (after the progress bar of a transfer, where there was one)."""
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    lines = [line for line in out.stderr.split("\n") if line.strip()]
    assert lines[-1].startswith("error: ") and sum("error" in line for line in lines) == 1, out.stderr[-2000:]
    return lines[-1]


@pytest.mark.slow
def test_without_network_a_command_says_in_one_line_what_to_place_by_hand(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    line = one_line(extract_from_mirror(f"http://127.0.0.1:{port}", tmp_path / "données"))
    assert "TinySOL.tar.gz, TinySOL_metadata.csv" in line and "by hand" in line and "--demo" in line


@pytest.mark.slow
def test_a_command_refuses_a_corrupt_download_and_resumes_a_cut_one(server, tmp_path):
    """Through the command line, from a mirror on 127.0.0.1: a cut transfer keeps its .part and
    the next run asks for the rest; a complete file with another checksum is refused and removed
    (the served bytes are not TinySOL's, so every complete download here is corrupt)."""
    folder = tmp_path / "données" / "TinySOL"
    server.files["/TinySOL.tar.gz"] = b"x" * 200_000
    server.cut_at = 70_000
    line = one_line(extract_from_mirror(server.url, tmp_path / "données"))
    assert "closed after 70,000 of 200,000 bytes" in line and "--demo" in line
    assert (folder / "TinySOL.tar.gz.part").stat().st_size == 70_000
    server.cut_at = None
    line = one_line(extract_from_mirror(server.url, tmp_path / "données"))
    assert server.requests[-1] == ("/TinySOL.tar.gz", "bytes=70000-")
    assert "is corrupt: md5" in line and "36030a7fe389da86c3419e5ee48e3b7f" in line
    assert not (folder / "TinySOL.tar.gz.part").exists() and not (folder / "TinySOL.tar.gz").exists()
    line = one_line(extract_from_mirror("not a url", tmp_path / "données"))
    assert MIRROR_VARIABLE in line


def _zip(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buffer.getvalue()


def test_archive_members_escaping_their_folder_are_refused(tmp_path):
    (tmp_path / "evil.zip").write_bytes(_zip({"ok.txt": b"fine", "../escaped.txt": b"gotcha"}))
    with pytest.raises(DownloadError, match="outside"):
        download.extract(tmp_path / "evil.zip", tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "out" / "ok.txt").exists()

    absolute = tmp_path / "absolute.txt"
    (tmp_path / "abs.zip").write_bytes(_zip({str(absolute): b"gotcha"}))
    with tarfile.open(tmp_path / "abs.tar", "w") as t:
        member = tarfile.TarInfo(str(absolute))
        member.size = 6
        t.addfile(member, io.BytesIO(b"gotcha"))
    for archive in ("abs.zip", "abs.tar"):
        with pytest.raises(DownloadError, match="outside"):
            download.extract(tmp_path / archive, tmp_path / "out")
        assert not absolute.exists()

    with tarfile.open(tmp_path / "evil.tar.gz", "w:gz") as t:
        link = tarfile.TarInfo("link")
        link.type, link.linkname = tarfile.SYMTYPE, "../../etc/passwd"
        t.addfile(link)
    with pytest.raises(DownloadError, match="outside"):
        download.extract(tmp_path / "evil.tar.gz", tmp_path / "out")

    # two steps, each inside on its own: a/up -> .. (the folder itself), then a file through it
    with tarfile.open(tmp_path / "sly.tar", "w") as t:
        up = tarfile.TarInfo("a/up")
        up.type, up.linkname = tarfile.SYMTYPE, ".."
        t.addfile(up)
        data = tarfile.TarInfo("a/up/../escaped.txt")
        data.size = 6
        t.addfile(data, io.BytesIO(b"gotcha"))
    out = subprocess.run([sys.executable, "-c", "import sys; from common.data import download; "
                          "from common.cli import run; run(lambda: download.extract(sys.argv[1], sys.argv[2]))",
                          str(tmp_path / "sly.tar"), str(tmp_path / "sly" / "out")], cwd=REPO, capture_output=True,
                         text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("error: refusing to extract sly.tar")  # after tqdm's bar
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "sly" / ".out.extracting").exists()


def _wav_bytes(seconds=0.5, sr=16000, fmt="WAV"):
    buffer = io.BytesIO()
    y = 0.3 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * sr)) / sr)
    sf.write(buffer, y.astype(np.float32), sr, format=fmt)
    return buffer.getvalue()


def test_mtat_is_fetched_joined_extracted_and_read(server, tmp_path, monkeypatch):
    clips = mtat.read_index()[:3]
    archive = _zip({c.path: _wav_bytes() for c in clips})
    third = len(archive) // 3
    parts = [archive[:third], archive[third:2 * third], archive[2 * third:]]
    header = ["clip_id", *mtat.all_tags(), "mp3_path"]
    lines = ["\t".join(f'"{h}"' for h in header)]
    for c in clips:
        values = [c.id, *("1" if t in c.labels["tags"] else "0" for t in mtat.all_tags()), c.path]
        lines.append("\t".join(f'"{v}"' for v in values))
    remotes = [server.serve(f"mp3.zip.00{i + 1}", p) for i, p in enumerate(parts)]
    remotes.append(server.serve("annotations_final.csv", ("\n".join(lines) + "\n").encode()))
    monkeypatch.setattr(mtat, "REMOTES", tuple(remotes))
    root = tmp_path / "MTAT"
    mtat.ensure(root)
    assert all((root / c.path).exists() for c in clips)
    assert not (root / "mp3.zip").exists()
    read = {c.id: c for c in mtat.read(root)}
    for c in clips:
        assert read[c.id].labels["tags"] == c.labels["tags"] and read[c.id].split == c.split


def test_mtat_with_an_audio_folder_missing_is_not_downloaded_again_and_the_folder_is_named(tmp_path, monkeypatch,
                                                                                          capsys):
    root = tmp_path / "MTAT"
    for folder in mtat.AUDIO_FOLDERS[:-1]:
        (root / folder).mkdir(parents=True)
    (root / "annotations_final.csv").write_text("")
    monkeypatch.setattr(mtat, "fetch_all", lambda *args: pytest.fail("a download was started"))
    mtat.ensure(root)
    assert "the audio folder(s) f of the 16 are missing" in capsys.readouterr().err


def test_tinysol_archive_is_extracted_into_audio(server, tmp_path, monkeypatch):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as t:
        data = _wav_bytes(sr=44100)
        info = tarfile.TarInfo("Strings/Contrabass/ordinario/Cb-ord-A2-mf-2c-N.wav")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    csv_text = ",".join(tinysol.HEADER) + "\n" + \
        "Strings/Contrabass/ordinario/Cb-ord-A2-mf-2c-N.wav,1,Strings,Cb,Contrabass,ord,ordinario,A2,45,mf,2,1,2.0,FALSE\n"
    monkeypatch.setattr(tinysol, "REMOTES", (server.serve("TinySOL.tar.gz", buffer.getvalue()),
                                             server.serve("TinySOL_metadata.csv", csv_text.encode())))
    tinysol.ensure(tmp_path / "TinySOL")
    (clip,) = tinysol.read(tmp_path / "TinySOL")
    assert (tmp_path / "TinySOL" / clip.path).exists()
    assert clip.split == "test" and clip.labels == {"pitch": 45, "instrument": "Cb"}  # fold 1: the study's test

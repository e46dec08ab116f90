"""Fetching the real datasets: progress bar, resumable, checksum-verified, safe to extract.

A download goes to `<name>.part`; an interrupted one continues from there with an HTTP
Range request. The file gets its real name only after its checksum matched, so a file
under its real name is always complete. With LIMITED_DATA_MIRROR=<url> in the environment
every file is fetched from <url>/<file name> instead of the dataset's own host (a copy on a
cluster's file server, say): the checksums are the same, so a mirror cannot change the data.
Archives are extracted member by member after checking that no member would land outside
the target folder.
"""
import hashlib
import http.client
import json
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ..atomic import write_json
from ..cli import UserError

MIRROR_VARIABLE = "LIMITED_DATA_MIRROR"
CHUNK = 1 << 20
TIMEOUT_S = 30


@dataclass(frozen=True)
class Remote:
    filename: str
    url: str
    algorithm: str  # "md5" or "sha256", as the dataset publishes it
    digest: str


class DownloadError(UserError):
    pass


class ChecksumError(DownloadError):
    pass


def file_digest(path, algorithm):
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def verify(path, remote):
    actual = file_digest(path, remote.algorithm)
    if actual != remote.digest:
        raise ChecksumError(f"{path} is corrupt: {remote.algorithm} {actual} != expected {remote.digest}")


def _verification(target, remote):
    """(the marker beside a verified file, what it records): the file's size and modification
    time, and the checksum it matched."""
    stat = target.stat()
    return target.with_name(f".{target.name}.verified"), [stat.st_size, stat.st_mtime_ns, remote.digest]


def _verified_once(target, remote):
    """Check a file found under its final name (placed by hand, as the error message invites,
    or downloaded earlier) against its checksum, once: the marker says it was, at this size
    and modification time, so gigabytes are not hashed again at every run."""
    marker, seen = _verification(target, remote)
    if marker.exists() and json.loads(marker.read_text()) == seen:
        return target
    try:
        verify(target, remote)
    except ChecksumError as error:
        raise ChecksumError(f"{error}: delete it and run again to download it, or place a good copy there") from None
    write_json(marker, seen)
    return target


def source_url(remote):
    """Where `remote` is fetched from: its dataset's host, or the mirror the environment names."""
    mirror = os.environ.get(MIRROR_VARIABLE)
    return f"{mirror.rstrip('/')}/{remote.filename}" if mirror else remote.url


def download(remote, folder):
    """Make `folder/remote.filename` exist and match its checksum; return its path. A transfer
    cut short keeps its .part, which the next try resumes with a Range request; only a complete
    file with a wrong checksum is deleted."""
    target = Path(folder) / remote.filename
    if target.exists():
        return _verified_once(target, remote)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    url = source_url(remote)
    total = None
    try:
        request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            if have and response.status != 206:  # the server ignored the Range: start over
                have = 0
            total = response.headers.get("Content-Length")
            total = int(total) + have if total is not None else None
            with open(part, "ab" if have else "wb") as out, \
                    tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=remote.filename) as bar:
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    bar.update(len(block))
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # the part file is already complete
            pass
        else:
            raise DownloadError(f"downloading {url} failed: HTTP {error.code}") from None
    except ValueError as error:  # a mirror address that is no URL
        raise DownloadError(f"cannot download from {url!r} ({error}): check ${MIRROR_VARIABLE}") from None
    except (TimeoutError, urllib.error.URLError, ConnectionError, OSError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", None) or type(error).__name__
        kept = f"; {part.stat().st_size:,} bytes kept in {part}, resumed by the next try" if part.exists() else ""
        raise DownloadError(f"cannot download {url} ({reason}){kept}") from None
    if total is not None and part.stat().st_size < total:
        raise DownloadError(f"the connection to {url} closed after {part.stat().st_size:,} of {total:,} "
                            f"bytes: run again to resume from {part}")
    try:
        verify(part, remote)
    except ChecksumError:
        part.unlink()  # complete and wrong: the next try starts clean
        raise
    part.replace(target)
    write_json(*_verification(target, remote))
    return target


def _inside(folder, member_name):
    destination = (folder / member_name).resolve()
    return destination == folder or folder in destination.parents


def extract(archive, folder):
    """Extract a .zip or .tar(.gz) into `folder`, refusing any member that would escape it.

    Members land in a scratch folder first and move into `folder` at the end, so an
    interrupted extraction never looks like a finished one.
    """
    folder = Path(folder).resolve()
    archive = Path(archive)
    scratch = folder.parent / f".{folder.name}.extracting"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        _extract_into(archive, scratch)
    except tarfile.FilterError as error:  # e.g. a link to a link that leads outside: found only on extraction
        shutil.rmtree(scratch, ignore_errors=True)
        raise DownloadError(f"refusing to extract {archive.name}: {error}") from None
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    folder.mkdir(parents=True, exist_ok=True)
    for entry in scratch.iterdir():
        destination = folder / entry.name
        if destination.is_dir() and entry.is_dir():
            shutil.copytree(entry, destination, dirs_exist_ok=True)
        else:
            entry.replace(destination)
    shutil.rmtree(scratch)


def _extract_into(archive, scratch):
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            members = z.infolist()
            _refuse_escapes(archive, scratch, [(m.filename, None) for m in members])
            for m in tqdm(members, desc=f"extracting {archive.name}", unit="file", leave=False):
                z.extract(m, scratch)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as t:
            members = t.getmembers()
            _refuse_escapes(archive, scratch, [(m.name, m.linkname if (m.issym() or m.islnk()) else None)
                                               for m in members if not m.isdev()])
            if any(m.isdev() for m in members):
                raise DownloadError(f"refusing to extract {archive.name}: it holds device files")
            for m in tqdm(members, desc=f"extracting {archive.name}", unit="file", leave=False):
                t.extract(m, scratch, filter="data")
    else:
        raise DownloadError(f"{archive} is neither a zip nor a tar archive")


def _refuse_escapes(archive, folder, members):
    for name, link in members:
        if not _inside(folder, name) or (link is not None and not _inside(folder, Path(name).parent / link)):
            raise DownloadError(f"refusing to extract {archive.name}: member {name!r} "
                                f"would be written outside its folder")


def concatenate(parts, target):
    """Join split archive volumes (MTAT's mp3.zip.001..003) into one file."""
    tmp = Path(target).with_name(Path(target).name + ".tmp")
    with open(tmp, "wb") as out:
        for p in parts:
            with open(p, "rb") as f:
                shutil.copyfileobj(f, out, CHUNK)
    tmp.replace(target)
    return Path(target)


def fetch_all(remotes, folder, dataset, demo_hint=True):
    """Download every remote into `folder`; when that is impossible, one line says what to do."""
    try:
        return [download(r, folder) for r in remotes]
    except ChecksumError:
        raise
    except DownloadError as error:
        names = ", ".join(r.filename for r in remotes)
        hint = "; or run with --demo to use the embedded demo data" if demo_hint else ""
        raise DownloadError(f"{dataset} is not in {folder} and could not be downloaded ({error}): "
                            f"place {names} there by hand (see data/README.md){hint}") from None

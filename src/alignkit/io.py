"""Atomic file writing and JSON helpers: a result file is either complete or absent, never half-written."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_text(path: str | Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _umask_mode())  # mkstemp creates 0600; results are ordinary files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_files(folder: str | Path, files: dict[str, str | bytes], what: str = "the files") -> dict[str, Path]:
    """Write several files below ``folder`` (``{relative path: text or bytes}``) all or nothing: every target is
    checked first (a folder in the way of a file, a file in the way of a folder), then each is written to a
    temporary file beside its target, and only when all of them are written are they renamed into place. Any
    problem is one :class:`AlignkitError` ``cannot write {what} in FOLDER: ...`` and leaves the folder as it was
    (no temporary files, no new sub-folders)."""
    from alignkit.errors import AlignkitError

    folder = Path(folder)

    def fail(why: str) -> AlignkitError:
        return AlignkitError(f"cannot write {what} in {str(folder)!r}: {why}")

    targets = {rel: folder / rel for rel in files}
    for p in [folder, *folder.parents]:  # a file where a folder must be
        if p.exists() and not p.is_dir():
            raise fail(f"{str(p)!r} is a file, not a folder")
        if p.exists():
            break
    for rel, path in targets.items():
        if path.is_dir():
            raise fail(f"{str(path)!r} is a folder; move it away or remove it")
        for parent in path.relative_to(folder).parents:
            q = folder / parent
            if q.exists() and not q.is_dir():
                raise fail(f"{str(q)!r} is a file, not a folder; move it away or remove it")
    made: list[Path] = []  # folders created here (removed again on failure)
    temps: dict[Path, str] = {}
    try:
        for rel, path in targets.items():
            missing = [d for d in [path.parent, *path.parent.parents] if not d.exists()]
            for d in reversed(missing):
                d.mkdir()
                made.append(d)
            data = files[rel]
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            temps[path] = tmp
            with os.fdopen(fd, "wb") as f:
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, _umask_mode())
        for path, tmp in temps.items():
            os.replace(tmp, path)
    except OSError as exc:
        for tmp in temps.values():
            if os.path.exists(tmp):
                os.unlink(tmp)
        for d in reversed(made):
            try:
                d.rmdir()
            except OSError:
                pass
        raise fail(exc.strerror or str(exc)) from None
    except BaseException:
        for tmp in temps.values():
            if os.path.exists(tmp):
                os.unlink(tmp)
        raise
    return targets


def write_json(path: str | Path, obj: Any) -> Path:
    if isinstance(obj, BaseModel):
        text = obj.model_dump_json(indent=2)
    else:
        text = json.dumps(obj, indent=2, default=str)
    return atomic_write_text(path, text + "\n")


def append_jsonl(path: str | Path, row: dict) -> None:
    """Append one JSON line (used for metrics.jsonl; each line is flushed on its own)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row, default=str) + "\n")
        f.flush()


def read_jsonl(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut by a kill: ignore the tail
    return rows


def sha256_file(path: str | Path) -> str:
    """sha256 of a file, read in 1 MiB chunks."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------- names
def safe_name(text: str, fallback: str = "model", max_len: int = 60) -> str:
    """``text`` made safe as ONE path component: only letters, digits, ``.``, ``_`` and ``-`` survive (others
    become ``-``), no leading dot or dash, never ``.``/``..``/empty. ``"../../x"`` -> ``"x"``, ``"/etc/a"`` ->
    ``"etc-a"``."""
    import re

    s = re.sub(r"[^A-Za-z0-9._-]+", "-", str(text))
    s = re.sub(r"\.{2,}", ".", s).strip(".-_")[:max_len].strip(".-_")
    return s or fallback


# ----------------------------------------------------------------------------------------------- temp files
class unique_temp:
    """``with unique_temp(path) as tmp:`` a unique temporary name beside ``path`` (same folder, so the final
    ``os.replace`` is atomic); the caller writes ``tmp``; on success it replaces ``path``, on any failure it is
    removed."""

    def __init__(self, path: str | Path, suffix: str | None = None):
        self.path = Path(path)
        self.suffix = suffix if suffix is not None else self.path.suffix

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.stem}.", suffix=f".tmp{self.suffix}")
        os.close(fd)
        self.tmp = Path(tmp)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and self.tmp.exists() and self.tmp.stat().st_size > 0:
            os.chmod(self.tmp, _umask_mode())
            os.replace(self.tmp, self.path)
        elif self.tmp.exists():
            self.tmp.unlink()


# ----------------------------------------------------------------------------------------------- integrity
def json_file_ok(path: str | Path) -> bool:
    """True when ``path`` holds one complete JSON document."""
    try:
        json.loads(Path(path).read_text(encoding="utf-8"))
        return True
    except (OSError, ValueError):
        return False


def safetensors_ok(path: str | Path) -> bool:
    """True when ``path`` is a complete safetensors file: its header parses and the file is as long as the
    header says (a file cut by a kill or a full disk fails)."""
    import struct

    p = Path(path)
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                return False
            (n,) = struct.unpack("<Q", raw)
            if n > size - 8 or n > 100 * (1 << 20):
                return False
            header = json.loads(f.read(n).decode("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    if not isinstance(header, dict):
        return False
    end = max((int(v["data_offsets"][1]) for k, v in header.items()
               if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v), default=0)
    return 8 + n + end <= size


def torch_file_ok(path: str | Path) -> bool:
    """True when a ``torch.save`` file (a zip archive) is complete (its central directory, written last, reads)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            z.infolist()
        return True
    except (OSError, zipfile.BadZipFile, ValueError):
        return False


# ----------------------------------------------------------------------------------------------- locks
# ----------------------------------------------------------------------------------------------- secrets
# the password runs to the last "@" before the host (a raw "@" in a password is common, if invalid)
_URL_PASSWORD = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:/@\s'\"]*):"
                           r"(?P<pw>[^\s'\"/]*)@(?=[^@\s'\"/]*(?:[/?\s'\"]|$))")
_QUERY_SECRET = re.compile(r"(?i)(?P<key>[?&;](?:password|passwd|pwd|pass|secret|token|api_?key|access_?key|"
                           r"sslpassword|auth)=)(?P<val>[^&;\s'\"]*)")
_KV_SECRET = re.compile(r"(?i)(?P<key>\b(?:password|passwd|pwd|secret|token|api_?key)\s*=\s*)(?P<q>['\"]?)"
                        r"(?P<val>[^\s'\"&;,)]+)(?P=q)")


def redact(text: Optional[str], secrets: tuple[str, ...] = ()) -> Optional[str]:
    """``text`` (a storage URL, or any message that may quote one) with every credential masked: the password of
    ``scheme://user:password@host`` (``postgresql://user:***@host/db``), ``password=`` / ``token=`` style query and
    key-value parts (a DSN echoed by a driver), and each string in ``secrets`` wherever it appears."""
    if text is None:
        return None
    out = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", str(text))
    out = _QUERY_SECRET.sub(lambda m: f"{m['key']}***", out)
    out = _KV_SECRET.sub(lambda m: f"{m['key']}{m['q']}***{m['q']}", out)
    for s in secrets:
        if s and len(s) >= 3:
            out = out.replace(s, "***")
    return out


def url_secrets(url: Optional[str]) -> tuple[str, ...]:
    """The credentials in a storage URL (its password, and password-like query values), raw and URL-decoded, to
    mask them wherever a driver echoes them (:func:`redact`)."""
    from urllib.parse import unquote

    if not url:
        return ()
    found = [m["pw"] for m in _URL_PASSWORD.finditer(url)] + [m["val"] for m in _QUERY_SECRET.finditer(url)]
    found = [f for f in found if f]
    return tuple(dict.fromkeys(found + [unquote(f) for f in found]))


def redact_command(command: str) -> str:
    """A command line (one string) with the credentials of every URL in it masked."""
    return " ".join(redact_argv(command.split(" ")))


def redact_argv(argv: list[str]) -> list[str]:
    """A command line with the credentials of every URL in it masked (for lock-owner files and messages)."""
    secrets = tuple(s for a in argv if "://" in a for s in url_secrets(a))
    return [redact(a, secrets) or "" for a in argv]


LOCK_NAME = ".alignkit.lock"


class RunLock:
    """An exclusive lock on a run folder (``filelock``; ``<folder>/.alignkit.lock``), held for the whole run so
    that two processes never write one folder. A second run fails at once with :class:`AlignkitError` naming the
    holder (pid, host, command, start time from ``.alignkit.lock.owner``). Re-entrant within one process."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.file = self.folder / LOCK_NAME
        self.owner_file = self.folder / (LOCK_NAME + ".owner")
        self._lock = None
        self._created: list[Path] = []  # folders acquire() created (removed again on release when left empty)

    def acquire(self) -> "RunLock":
        import socket
        import sys
        import time

        from filelock import FileLock, Timeout

        from alignkit.errors import AlignkitError

        if self._lock is not None and self._lock.is_locked:  # re-entrant
            self._lock.acquire()
            return self
        created = [p for p in [self.folder, *self.folder.parents] if not p.exists()]
        check_writable_dir(self.folder)
        self._created = created
        self._lock = FileLock(str(self.file), timeout=0)
        try:
            self._lock.acquire()
        except Timeout:
            try:
                holder = json.loads(self.owner_file.read_text(encoding="utf-8"))
                who = (f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}: "
                       f"{holder.get('command', '')[:120]}")
            except (OSError, ValueError):
                who = "another process"
            raise AlignkitError(f"output dir {str(self.folder)!r} is in use by another alignkit run ({who}); "
                                "wait for it to finish or pick another --output-dir") from None
        atomic_write_text(self.owner_file, json.dumps({
            "pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(redact_argv(sys.argv)),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n")
        return self

    def release(self) -> None:
        """Release the lock; the last release removes the lock and owner files (unlinked while still held:
        filelock's Unix lock re-checks that the file it locked is still linked, so a run that opened the old file
        cannot hold a lock beside a new one) and the folders :meth:`acquire` created when nothing else was written
        in them (a refused run leaves nothing behind)."""
        if self._lock is not None and self._lock.is_locked:
            last = self._lock.lock_counter <= 1
            if last:
                for f in (self.owner_file, self.file):
                    try:
                        f.unlink()
                    except OSError:
                        pass
            self._lock.release()
            if last:
                for d in self._created:  # deepest first
                    try:
                        d.rmdir()  # only when empty
                    except OSError:
                        break
                self._created = []

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def check_writable_dir(folder: str | Path) -> Path:
    """Create ``folder`` (and parents) or raise a one-line :class:`AlignkitError` (a file in the way, no
    permission, read-only disk)."""
    from alignkit.errors import AlignkitError

    folder = Path(folder)
    for p in [folder, *folder.parents]:
        if p.exists() and not p.is_dir():
            raise AlignkitError(f"output dir {str(folder)!r}: {str(p)!r} is a file, not a folder; pick another "
                                "--output-dir")
        if p.exists():
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AlignkitError(f"cannot create output dir {str(folder)!r} ({exc.strerror or exc}); pick a writable "
                            "--output-dir") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise AlignkitError(f"output dir {str(folder)!r} is not writable; pick a writable --output-dir")
    return folder


def check_creatable_dir(folder: str | Path, flag: str = "--output-dir") -> Path:
    """Before any work, without creating anything: ``folder`` exists as a writable folder, or could be created
    (its nearest existing parent is a writable folder), else a one-line :class:`AlignkitError` naming ``flag``
    (a file in the way, no permission, a read-only disk)."""
    from alignkit.errors import AlignkitError

    folder = Path(folder)
    for p in [folder, *folder.parents]:
        if not p.exists():
            continue
        if not p.is_dir():
            raise AlignkitError(f"output dir {str(folder)!r}: {str(p)!r} is a file, not a folder; pick another "
                                f"{flag}")
        if not os.access(p, os.W_OK | os.X_OK):
            why = "is on a read-only file system" if _read_only(p) else "is not writable"
            what = "output dir" if p == folder else "its parent"
            raise AlignkitError(f"cannot create output dir {str(folder)!r}: {what} {str(p)!r} {why}; pick a "
                                f"writable {flag}")
        break
    return folder


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def check_writable_file(path: str | Path | None, flag: str = "--output") -> Path | None:
    """Before any work: ``path`` can be written as a file (its folder is created), else a one-line
    :class:`AlignkitError` naming ``flag``. ``None`` passes through."""
    from alignkit.errors import AlignkitError

    if path is None:
        return None
    path = Path(path)
    if path.is_dir():
        raise AlignkitError(f"{flag} {str(path)!r} is a folder; give a file path")
    try:
        check_writable_dir(path.parent)
    except AlignkitError:
        raise AlignkitError(f"{flag} {str(path)!r}: its folder cannot be created or written; pick another "
                            "path") from None
    return path


def read_records(path: str | Path) -> list[dict]:
    """The objects of a user's ``.jsonl`` (one JSON object per line) or ``.json`` (a list of objects, or
    ``{"data": [...]}`` / ``{"rows": [...]}``) file. Every problem is one :class:`AlignkitError` naming the file
    and, for JSON lines, the line: a folder or missing file, bytes that are not UTF-8, a line that does not
    parse or is not an object."""
    from alignkit.errors import AlignkitError

    p = Path(path)
    if p.is_dir():
        raise AlignkitError(f"{str(p)!r} is a folder; give a .jsonl or .json file")
    if not p.is_file():
        raise AlignkitError(f"data file {str(p)!r} does not exist")
    data = p.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise AlignkitError(f"{str(p)!r} line {line}: not valid UTF-8 (byte {e.start}); re-save the file as "
                            "UTF-8") from None
    if p.suffix.lower() == ".json":
        try:
            items = json.loads(text)
        except ValueError as e:
            raise AlignkitError(f"{str(p)!r}: not valid JSON ({str(e).splitlines()[0][:120]})") from None
        if isinstance(items, dict):
            items = items.get("data") or items.get("rows") or []
        if not isinstance(items, list):
            raise AlignkitError(f"{str(p)!r}: must hold a list of objects")
        for i, it in enumerate(items):
            if not isinstance(it, dict):
                raise AlignkitError(f"{str(p)!r} item {i + 1}: not a JSON object (got {type(it).__name__})")
        return items
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise AlignkitError(f"{str(p)!r} line {n}: not valid JSON ({str(e).splitlines()[0][:100]})") from None
        if not isinstance(obj, dict):
            raise AlignkitError(f"{str(p)!r} line {n}: not a JSON object (got {type(obj).__name__}); each line "
                                "must be one {...} record")
        rows.append(obj)
    return rows

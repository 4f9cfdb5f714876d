"""The writers: Output (one file), OutputFolder (a folder of files renamed together) and
DirectoryOutput (a folder built beside its target and swapped in whole)."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import OutputError
from .paths import (LOCK_SUFFIX, _UMASK, OutputLock, _reason, _short, inspect_target, make_parents, new_temp,
                    remove_empty, remove_quietly, remove_stale_temps, temp_name)


def _claim(path: Path, what: str, wait: bool) -> tuple[list[Path], OutputLock]:
    """Create path's missing parent folders, lock path, remove its dead writers' temporary files:
    (folders made, the lock). On failure the folders made are removed again."""
    made = make_parents(path.parent, what)
    try:
        lock = OutputLock(path.with_name(f".{_short(path.name)}{LOCK_SUFFIX}"), path, what, wait)
        remove_stale_temps(path)
    except BaseException:
        remove_empty(made)
        raise
    return made, lock


class Output:
    """One output file, claimed when made: checked, its folder created, locked, stale
    temporary files removed. Write with open() or temp_path(), then close(keep):
    keep=True renames the temporary file onto the target, keep=False removes it."""

    def __init__(self, path: str | Path, what: str = "output", *, seekable: bool = False, wait: bool = False):
        self.requested, self.what = Path(path), what
        self.path, self.direct = inspect_target(path, what, seekable=seekable)
        self.tmp: Path | None = None
        self.file = None
        self.lock = None
        self.committed = False
        self._made: list[Path] = []
        if self.direct:
            return
        self._made, self.lock = _claim(self.path, what, wait)

    def temp_path(self) -> Path:
        """Create the temporary file (empty) and return its path, for writers that open paths."""
        if self.direct:
            raise OutputError(f"{self.what} {self.requested} is a device or pipe; it needs a regular file")
        if self.tmp is None:
            mode = self.path.stat().st_mode & 0o7777 if self.path.is_file() else None
            try:
                self.tmp = new_temp(self.path, mode=mode)
            except OSError as exc:
                raise OutputError(f"cannot write {self.what} {self.path}: {_reason(exc)}") from None
        return self.tmp

    def open(self, mode: str = "w"):
        """The file to write (the temporary file, or the device itself); closed by close()."""
        if self.file is None:
            kwargs = {} if "b" in mode else {"encoding": "utf-8"}
            target = self.requested if self.direct else self.temp_path()
            self.file = _open(target, mode, **kwargs)
        return self.file

    def close(self, keep: bool = True) -> None:
        """Finish: keep=True moves the written file into place (OutputError if it cannot be
        flushed: the temporary file is then removed too); keep=False removes it. Releases the lock."""
        try:
            if keep:
                self._commit()
        finally:
            self._discard()
            if self.lock is not None:
                self.lock.release()
            if not self.committed:
                remove_empty(self._made)

    def _commit(self) -> None:
        file, self.file = self.file, None
        if file is not None:
            try:
                file.close()
            except OSError as exc:
                raise OutputError(f"cannot write {self.what} {self.path}: {_reason(exc)}") from None
        if self.tmp is not None:
            os.replace(self.tmp, self.path)
            self.tmp = None
            self.committed = True
        elif self.direct:
            self.committed = True

    def _discard(self) -> None:
        file, self.file = self.file, None
        if file is not None:
            try:
                file.close()
            except OSError:
                pass  # a full disk fails the flush again; the file goes anyway
        remove_quietly(self.tmp)
        self.tmp = None

    def __enter__(self) -> "Output":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(keep=exc_type is None)


def _open(path: Path, mode: str, **kwargs):
    """open(); a seam for fault-injection tests (full disk)."""
    return open(path, mode, **kwargs)


class OutputFolder:
    """A folder output (created if missing, locked by `.maskrt-lock` inside it). Its files are
    checked up front (check_member), each written to a temporary file beside its name
    (stage_member), and all renamed into place by close(keep=True) or removed by close(False)."""

    def __init__(self, path: str | Path, what: str = "output folder"):
        self.requested, self.what = Path(path), what
        self.path, _ = inspect_target(path, what, folder=True)
        self._made = make_parents(self.path, what)
        try:
            self.lock = OutputLock(self.path / LOCK_SUFFIX, self.path, what)
        except BaseException:
            remove_empty(self._made)
            raise
        self.staged: list[tuple[Path, Path]] = []  # (temporary file, member)
        self.committed = 0
        self._scanned: set[Path] = set()

    def check_member(self, relative: str | Path) -> Path:
        """The resolved path of member `relative` (inside the folder), refused if it exists and is
        not a regular file; its stale temporary files are removed."""
        rel = Path(relative)
        if rel.is_absolute() or ".." in rel.parts:
            raise OutputError(f"{self.what}: {relative} would be outside {self.requested}")
        target, _ = inspect_target(self.path / rel, self.what, seekable=True)
        if target.parent not in self._scanned:  # once per folder: the lock is held, so any dead writer's
            self._scanned.add(target.parent)  # temporary file in it is stale
            remove_stale_temps(target, any_name=True)
        return target

    def stage_member(self, relative: str | Path, write) -> Path:
        """Call write(binary file) on a new temporary file beside member `relative`; on any error
        it is removed (OutputError for OS errors). Returns the member's path."""
        target = self.check_member(relative)
        self._made += make_parents(target.parent, self.what)
        tmp = None
        try:
            tmp = new_temp(target, mode=target.stat().st_mode & 0o7777 if target.is_file() else None)
            with _open(tmp, "wb") as f:
                write(f)
        except OSError as exc:
            remove_quietly(tmp)
            raise OutputError(f"cannot write {target}: {_reason(exc)}") from None
        except BaseException:
            remove_quietly(tmp)
            raise
        self.staged.append((tmp, target))
        return target

    def close(self, keep: bool = True) -> None:
        """keep=True: rename every staged file into place; False: remove them. Releases the lock."""
        try:
            while keep and self.staged:
                tmp, target = self.staged[0]
                os.replace(tmp, target)
                self.staged.pop(0)
                self.committed += 1
        finally:
            for tmp, _ in self.staged:
                remove_quietly(tmp)
            self.staged = []
            self.lock.release()
            if not self.committed:
                remove_empty(self._made)


class DirectoryOutput:
    """A folder built whole elsewhere (new_dir(), beside it) and swapped in by commit(). An
    existing folder is replaced only when replaceable(path) returns None (else the reason, a
    phrase, why not; OutputError); an empty one always."""

    def __init__(self, path: str | Path, what: str, replaceable, wait: bool = False):
        self.requested, self.what, self._replaceable = Path(path), what, replaceable
        self.path, _ = inspect_target(path, what, folder=True)
        self._check_replaceable()
        self.tmp: Path | None = None
        self.committed = False
        self._made, self.lock = _claim(self.path, what, wait)

    def _check_replaceable(self) -> None:
        if self.path.is_dir() and any(self.path.iterdir()):
            reason = self._replaceable(self.path)
            if reason:
                raise OutputError(f"{self.what} {self.requested} exists and {reason}; refusing to replace it "
                                  "(remove it yourself or choose another name)")

    def new_dir(self) -> Path:
        """The (private, empty) temporary folder to build in."""
        try:
            self.tmp = new_temp(self.path, directory=True, mode=0o700)
        except OSError as exc:
            raise OutputError(f"cannot write {self.what} {self.path}: {_reason(exc)}") from None
        return self.tmp

    def commit(self) -> None:
        """Move the built folder onto the target, the previous one removed only once replaced."""
        self.tmp.chmod(0o777 & ~_UMASK)
        old = None
        if self.path.exists():
            self._check_replaceable()  # again: the folder may have changed during the build
            old = self.path.with_name(temp_name(self.path))
            os.rename(self.path, old)
        try:
            os.rename(self.tmp, self.path)
        except BaseException:
            if old is not None:
                os.rename(old, self.path)
            raise
        self.tmp, self.committed = None, True
        remove_quietly(old)

    def close(self) -> None:
        """Remove the temporary folder if not committed; release the lock."""
        remove_quietly(self.tmp)
        self.tmp = None
        self.lock.release()
        if not self.committed:
            remove_empty(self._made)

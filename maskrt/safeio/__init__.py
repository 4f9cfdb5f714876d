"""Writing outputs without losing data (README, "Reliability"). Every file or folder maskrt
writes goes through this package: a user's outputs through `Output` (one file), `OutputFolder` (a
folder of files) or `DirectoryOutput` (a folder built whole, an engine); state that must survive a
crash of the machine (maskrt batch's completion records and attempt counters, the final rename of
its outputs, the streams' JSON-lines logs) through durable.py (`write_atomic`, `commit_temp`,
`AppendLog`: fsync'd). paths.py has the checks, temporary names, stale-file removal and the lock,
outputs.py the writers. Lock files used only for coordination (maskrt batch's driver and
per-unit locks, distributed/state.py) are not outputs and hold no data.

* Checked before any work: a folder where a file is wanted (or the reverse), a block device or
  socket, a parent path that is a file, a folder that cannot be written: one OutputError line.
* Written under a unique temporary name in the target's own folder,
  `.NAME.<host>-<pid>.<random>.partial` (mkstemp), renamed onto NAME only when complete, removed
  on every failure (a full disk included: a file that cannot be flushed is still removed).
* A symlink is followed: the file it names is replaced, the link stays. Character devices and
  FIFOs (/dev/null, a pipe, a terminal) are written in place, never renamed over.
* While a target is written, the lock `.NAME.maskrt-lock` beside it (inside it, for a folder)
  is held with flock: a second process writing the same target is refused at once (or waits,
  wait=True) instead of mixing its data in. The lock file is removed on release.
* Temporary files a killed process (SIGKILL, power loss) left for a target are removed the next
  time the target is claimed: their names carry the host and pid of the writer, which is dead.
"""

from .durable import AppendLog, commit_temp, fsync_file, write_atomic
from .outputs import DirectoryOutput, Output, OutputFolder
from .paths import (LOCK_SUFFIX, TEMP_SUFFIX, OutputLock, inspect_target, make_parents, new_temp, refuse_overwriting,
                    remove_empty, remove_quietly, remove_stale_temps, temp_name)

__all__ = ["LOCK_SUFFIX", "TEMP_SUFFIX", "AppendLog", "DirectoryOutput", "Output", "OutputFolder", "OutputLock",
           "commit_temp", "fsync_file", "inspect_target", "make_parents", "new_temp", "refuse_overwriting",
           "remove_empty", "remove_quietly", "remove_stale_temps", "temp_name", "write_atomic"]

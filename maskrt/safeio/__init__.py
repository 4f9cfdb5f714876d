"""Writing outputs without losing data (README, "Reliability"). Every file or folder maskrt
writes goes through `Output` (one file), `OutputFolder` (a folder of files) or
`DirectoryOutput` (a folder built whole, an engine); paths.py has the checks, temporary names,
stale-file removal and the lock, outputs.py the writers:

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

from .outputs import DirectoryOutput, Output, OutputFolder
from .paths import (LOCK_SUFFIX, TEMP_SUFFIX, OutputLock, inspect_target, make_parents, new_temp, refuse_overwriting,
                    remove_empty, remove_quietly, remove_stale_temps, temp_name)

__all__ = ["LOCK_SUFFIX", "TEMP_SUFFIX", "DirectoryOutput", "Output", "OutputFolder", "OutputLock", "inspect_target",
           "make_parents", "new_temp", "refuse_overwriting", "remove_empty", "remove_quietly", "remove_stale_temps",
           "temp_name"]

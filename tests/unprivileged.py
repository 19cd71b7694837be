"""Running a PowerView process that file permissions apply to, even when the tests run as root.

Permission failures (an unreadable file, a ``parsed/`` that cannot be written) cannot be
shown to a process with root's capabilities: ``CAP_DAC_OVERRIDE`` and
``CAP_DAC_READ_SEARCH`` bypass file permissions. As root, the process under test is started
through ``setpriv`` with those two capabilities dropped from its bounding set: it is still
root (it owns the files the test creates) but the permission bits now bind it, as they bind
the ``sftpgo`` user in production. Any other user is bound by them already.
"""

from __future__ import annotations

import os
import shutil

AS_ROOT = os.geteuid() == 0


def bound_by_permissions(command: list[str]) -> list[str]:
    """``command``, run so that file permissions apply to it."""
    if not AS_ROOT:
        return command
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise RuntimeError("running as root without setpriv: permissions cannot be tested")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search", *command]

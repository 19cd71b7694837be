#!/bin/bash
# PowerView's SFTPGo hook: a shim that starts core/enqueue.py, which queues the event for
# the drainer (a Python start of a few milliseconds, standard library only, no site-packages);
# the drainer runs core/hook.py's logic on it (the events handled, the checks, the jobs, the
# log format: see its docstring). When the event cannot be queued, or there is no event,
# core/enqueue.py hands over to core/hook.py itself, which logs why (or prints the usage).
#
# SFTPGo runs this program for the actions upload, rename and mkdir and after each SFTP
# disconnection (deploy/sftpgo.env), with the event in SFTPGO_* variables. This shim only
# sets up what the Python side needs: the project root, a UTF-8 locale, a PATH, and a Python
# to start with: the project's virtualenv (POWERVIEW_VENV, else the documented path), or the
# system python3 when that virtualenv is missing, so that core/hook.py (standard library
# only) can still log that the installation is broken. Jobs started by the hook (the parser
# under coreutils' timeout, playbooks and sweeps in their own session) are started there.
#
# Run by hand without an SFTPGo event, it prints a usage message and exits 2, writing nothing
# to the production log.
set -euo pipefail

export LC_ALL=C.UTF-8 LANG=C.UTF-8
export PATH=${PATH:-/usr/local/bin:/usr/bin:/bin}
export POWERVIEW_ROOT=${POWERVIEW_ROOT:-/srv/powerview}
export POWERVIEW_ENV_FILE=${POWERVIEW_ENV_FILE:-$POWERVIEW_ROOT/.env}

python=${POWERVIEW_VENV:-$POWERVIEW_ROOT/envs/powerview}/bin/python
if [[ ! -x $python ]]; then
    python=$(command -v python3 || echo /usr/bin/python3)
fi
cd -- "$POWERVIEW_ROOT"
PYTHONPATH=$POWERVIEW_ROOT exec "$python" -S -m core.enqueue "$@"

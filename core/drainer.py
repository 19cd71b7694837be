"""The drainer: one process that ingests every queued upload with one InfluxDB client.

Started by the hook (``python -m core.hook --job drain``, in its own session, holding the
drainer lock: see ``core/queue.py``), it takes the queued markers in order, up to
``BATCH_FILES`` at a time, and runs them through one ``Runner`` (one run report and one
``tsv_parser_run`` record per batch, the bookkeeping records of the batch written together).
Queued sweeps (one per SFTP disconnection) come after the files: the requests of a company
are merged into one sweep of its folder. When the queue is empty the drainer waits
``POWERVIEW_DRAIN_LINGER_S`` (5 s) for more, then releases the lock, looks again, and takes
the lock back if a marker came meanwhile.

Per queued event it writes the line the hook used to write itself: the same ``event``,
``user`` and ``path``, the outcome (``ingested``, ``set-aside``, ``skipped``, ``deferred``,
``failed``: ``core.outcomes.HookOutcome``, read from the run report by
``core/hook_report.py``), ``pid`` the drainer's, ``duration_ms`` the time from the upload's
hook to that line (queueing included). A company's sweep ends with the line of each
disconnection that asked for it (``post-disconnect``, the same outcome and detail for all);
the drainer's own ``job:drain`` line comes last, written by the job (``core/hook_jobs.py``).

Three parts: ``Drainer`` is the loop (take markers, run the hook's logic on each through
``core.hook.Hook``, linger, let go of the lock); ``Worker`` does the work the events handed
over (a batch's files in one run, a sweep per company) and logs each event's line;
``Session`` holds the settings and the one InfluxDB client, made at the first work.

Bounds: one drainer at a time, whatever the number of uploads; with the sweep timer's run
(``powerview-sweep.service``) at most two processes ingest (plus a sender process each for a
file above ``INFLUXDB_INLINE_MAX_BYTES``, and a short ``tsv_parser.py --reject`` per failed upload,
which reads nothing). The drainer holds one batch's results (a few kB per file) and one
file's batch of points at a time.
"""

from __future__ import annotations

import io
import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from core.hook import Hook
from core.hook_config import Config
from core.hook_handlers import FILE, Work
from core.hook_log import log_warnings_to
from core.hook_report import file_outcome, join, sweep_outcome, sweep_text, totals_text
from core.outcomes import ErrorKind, HookOutcome
from core.queue import Marker, Spool, release

Queued = tuple[Marker, Hook, str]  # an event, its hook, and its file (or company) to act on
LINGER_POLL_S = 0.2  # how often a lingering drainer looks at the queue
BATCH_FILES = 100  # markers per run: one report, one run record, the records written together

log = logging.getLogger("powerview.drainer")


class Session:
    """Settings and the InfluxDB client, made once for the drainer's life."""

    def __init__(self, config: Config) -> None:
        from core.engine import ParseOptions  # noqa: PLC0415 - heavy: after the lock only
        from core.influx_writer import InfluxWriter  # noqa: PLC0415
        from core.settings import load_settings  # noqa: PLC0415

        self.config = config
        settings = load_settings(require=("influxdb",))
        self.parser, self.influx = settings.parser, settings.influx
        self.parse = ParseOptions.from_settings(self.parser)
        self.report_dir = self.parser.report_folder(config.data_dir)
        self.writer = InfluxWriter(self.influx)
        try:
            self.writer.check()
        except Exception:
            self.writer.close()
            raise

    def close(self) -> None:
        self.writer.close()

    def runner(self, company: str | None = None) -> Any:
        from core.runner import RunConfig, Runner  # noqa: PLC0415

        config = RunConfig(
            data_folder=self.config.data_dir,
            dry_run=False,
            parse=self.parse,
            min_file_age_s=self.parser.min_file_age_s,
            meta_bucket=self.influx.meta_bucket,
            company=company,
            state_dir=self.report_dir,
            inline_max_bytes=self.influx.inline_max_bytes,
        )
        return Runner(config, self.writer)

    def save(self, report: Any, keep_output: Callable[[str], None]) -> None:
        """The run report in the report folder, its summary in hook-output.log."""
        from core.report import print_human_summary, write_json_atomically  # noqa: PLC0415

        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        path = self.report_dir / f"tsv_parser_{stamp}_{report.run_id}.json"
        write_json_atomically(path, report.as_dict())
        text = io.StringIO()
        print_human_summary(report, text)
        keep_output(text.getvalue() + f"run report: {path}\n")


class Drainer:
    """The loop: takes the queued events in order, runs the hook's logic on each, hands
    their work to the ``Worker``, and lets go of the lock once the queue stays empty."""

    def __init__(
        self,
        config: Config,
        spool: Spool,
        keep_output: Callable[[str], None],
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.spool = spool
        # The drainer's own environment, without any event: each event brings its own.
        self.environ = {
            key: value
            for key, value in (os.environ if environ is None else environ).items()
            if not key.startswith("SFTPGO_")
        }
        self.worker = Worker(config, spool, keep_output)
        self.sweeps: list[Queued] = []  # run when the queue is empty

    @property
    def counts(self) -> dict[HookOutcome, int]:
        """How many events ended with each outcome."""
        return self.worker.counts

    def run(self, descriptor: int) -> None:
        """Drain until the queue is empty with the lock released (see core/queue.py)."""
        try:
            while True:
                self.spool.note("acquired")
                self.spool.recover()
                while self._one_round() or self._sweep_round() or self._linger():
                    pass
                self.spool.note("released")
                release(descriptor)
                if not self.spool.queued():
                    return
                again = self.spool.try_lock()
                if again is None:  # a drainer started by a hook has it
                    return
                descriptor = again
        finally:
            self.worker.close()

    def _one_round(self) -> bool:
        """Up to BATCH_FILES events through the hook's logic, their files ingested
        together; False when nothing was queued."""
        markers = self.spool.take(BATCH_FILES)
        if not markers:
            return False
        files: list[Queued] = []
        for marker in markers:
            hook, work = self._hook(marker)
            if work is None:
                self.spool.done(marker)
            elif work.kind == FILE:
                files.append((marker, hook, work.target))
            else:
                self.sweeps.append((marker, hook, work.target))
        if files:
            self.worker.files(files)
        return True

    def _hook(self, marker: Marker) -> tuple[Hook, Work | None]:
        """The hook's logic on a queued event: its ``Hook`` and the work it handed over, or
        None when the hook ended the event itself (its line is logged)."""
        handed: list[Work] = []
        hook = Hook(
            self.config,
            {**self.environ, **marker.event},
            [],
            collect=handed.append,
            queued_ns=marker.queued_ns,
        )
        try:
            hook.run()  # logs the line of an event that hands nothing over
        except Exception:  # a bug: the hook logged it as failed; the event is done
            log.exception("event %s", marker.path.name)
        return hook, (handed[0] if handed else None)

    def _linger(self) -> bool:
        """Wait up to POWERVIEW_DRAIN_LINGER_S for a new event (a few uploads seconds apart
        then share this drainer instead of starting one each); True when one came."""
        deadline = time.monotonic() + self.config.drain_linger_s
        while time.monotonic() < deadline:
            if self.spool.queued():
                return True
            time.sleep(LINGER_POLL_S)
        return False

    def _sweep_round(self) -> bool:
        if not self.sweeps:
            return False
        sweeps, self.sweeps = self.sweeps, []
        self.worker.sweeps(sweeps)
        return True


class Worker:
    """The work of queued events: a batch's files ingested in one run, a sweep per company;
    then each event's line logged and its marker forgotten. The session (settings and the
    InfluxDB client) is made at the first work and kept."""

    def __init__(self, config: Config, spool: Spool, keep_output: Callable[[str], None]) -> None:
        self.config = config
        self.spool = spool
        self.keep_output = keep_output
        self.session: Session | None = None
        self.counts: dict[HookOutcome, int] = defaultdict(int)

    def close(self) -> None:
        if self.session is not None:
            self.session.close()

    def _open(self, work: Sequence[Queued]) -> Session | None:
        """The session, or None with each event ended with why there is none."""
        if self.session is not None:
            return self.session
        from core.influx_writer import WriteError  # noqa: PLC0415
        from core.settings import SettingsError  # noqa: PLC0415

        outcome = HookOutcome.FAILED
        try:
            self.session = Session(self.config)
            return self.session
        except SettingsError as error:
            detail = f"settings: {error}; the file stays for the sweep"
        except WriteError as error:
            if error.kind == ErrorKind.TEMPORARY:
                outcome = HookOutcome.DEFERRED
                detail = f"InfluxDB unavailable, left for the sweep: {error}"
            else:
                detail = f"InfluxDB refused the token or the organization: {error}"
        except OSError as error:
            detail = f"cannot read the settings: {error}"
        for marker, hook, _ in work:
            self._line(marker, hook, outcome, detail)
        return None

    def files(self, work: list[Queued]) -> None:
        """The files of a batch ingested in one run; a line per event, with its file's
        outcome and totals."""
        session = self._open(work)
        if session is None:
            return
        paths = [self.config.data_dir / relative for _, _, relative in work]
        report = session.runner().run(files=paths)
        self._save(session, report)
        from core.report import RunReport  # noqa: PLC0415

        for (marker, hook, _), result in zip(work, report.files, strict=False):
            one = RunReport(mode=report.mode, data_folder=report.data_folder, files=[result])
            outcome, reason = file_outcome(result.as_dict())
            totals = totals_text({"totals": one.totals()})
            self._line(marker, hook, outcome, join(totals, reason))

    def sweeps(self, work: list[Queued]) -> None:
        """One sweep per company, whatever the number of disconnections that asked for it;
        the same line for each of them."""
        session = self._open(work)
        if session is None:
            return
        by_company: dict[str, list[Queued]] = defaultdict(list)
        for item in work:
            by_company[item[2]].append(item)
        for company, requests in by_company.items():
            folder = self.config.data_dir / company
            if folder.is_symlink() or not folder.is_dir():
                outcome, detail = HookOutcome.IGNORED, "no company folder"
            else:
                report = session.runner(company).run()
                self._save(session, report)
                data = report.as_dict()
                detail = "; ".join((sweep_text(company, data), totals_text(data)))
                if len(requests) > 1:
                    detail += f" (one sweep for {len(requests)} disconnections)"
                outcome, detail = sweep_outcome(report.exit_code, detail)
            for marker, hook, _ in requests:
                self._line(marker, hook, outcome, detail)

    # -- output --------------------------------------------------------------------------
    def _save(self, session: Session, report: Any) -> None:
        try:
            session.save(report, self.keep_output)
        except OSError as error:
            self.keep_output(f"run report not written: {error}\n")

    def _line(self, marker: Marker, hook: Hook, outcome: HookOutcome, detail: str) -> None:
        hook.log(outcome, detail)
        self.counts[outcome] += 1
        self.spool.done(marker)


def drain(
    config: Config,
    spool: Spool,
    descriptor: int,
    keep_output: Callable[[str], None],
    environ: Mapping[str, str] | None = None,
) -> str:
    """Drain the queue holding the lock ``descriptor``; what was done, for the job's line."""
    log_warnings_to(config)
    drainer = Drainer(config, spool, keep_output, environ)
    drainer.run(descriptor)
    counts = ", ".join(f"{count} {outcome}" for outcome, count in sorted(drainer.counts.items()))
    return f"queue drained: {counts or 'nothing queued'}"

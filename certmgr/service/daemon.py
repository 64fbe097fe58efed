"""`certmgr run`: the daemon.  A scheduler runs the jobs; the main thread minds signals and systemd.

* one job per kind (renew, probe, remind, ari), each at most once at a time,
  missed runs coalesced, the first run of each right at start;
* job state (last run, last success, next run, last error) kept in the store, so
  `status`/metrics see it after a restart; a job is claimed in the store, so
  daemons sharing one database do each run once (slot leases and the reminder
  table make the work inside idempotent anyway);
* SIGTERM/SIGINT: let the running jobs finish their current step, exit 0;
  SIGHUP: load and validate the config, switch to it, or keep the old one and say why;
* one daemon per state directory (an fcntl lock on ``<state_dir>/daemon.lock``);
* systemd: READY=1, STATUS=..., WATCHDOG=1 at half of WatchdogSec, STOPPING=1;
* Prometheus metrics on ``[daemon] metrics_listen`` (loopback only).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import IO, Any

from certmgr.config.load import load_config
from certmgr.config.model import Config, DaemonSettings
from certmgr.errors import CertmgrError
from certmgr.runtime import Runtime
from certmgr.service import jobs
from certmgr.service.sdnotify import SdNotify
from certmgr.store import queue, utcnow
from certmgr.store.files import ensure_state_root

log = logging.getLogger("certmgr.daemon")

JobFn = Callable[[Runtime, Callable[[], bool]], str]
#: job -> (function, interval setting)
JOBS: dict[str, tuple[JobFn, str]] = {
    "renew": (jobs.renew_job, "renew_interval"),
    "probe": (jobs.probe_job, "probe_interval"),
    "remind": (jobs.remind_job, "remind_interval"),
    "ari": (jobs.ari_job, "ari_interval"),
    "collect": (jobs.collect_job, "collect_interval"),
    "partners": (jobs.partner_job, "partner_interval"),
}
#: a crashed run's claim on a job expires after this (a live run keeps it however long it takes)
JOB_CLAIM_SECONDS = 3600.0
#: the main loop wakes at least this often (signals, watchdog)
TICK_SECONDS = 5.0
#: on SIGTERM, running jobs get this long to finish their step (systemd's TimeoutStopSec is 2 min)
STOP_GRACE_SECONDS = 90.0


class AlreadyRunning(CertmgrError):
    exit_code = 2


def lock_state_dir(state_dir: Path) -> IO[str]:
    """Hold ``<state_dir>/daemon.lock`` for the life of the process, or raise AlreadyRunning."""
    ensure_state_root(state_dir)
    path = state_dir / "daemon.lock"
    fh = open(path, "a+", encoding="ascii")  # held open (and locked) until the process exits
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "unknown"
        fh.close()
        raise AlreadyRunning(
            f"another certmgr daemon (pid {holder}) is running on the state directory {state_dir}; "
            "stop it first (systemctl stop certmgr), or give this one its own state_dir"
        ) from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"{os.getpid()}\n")
    fh.flush()
    return fh


def _split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


class Daemon:
    def __init__(self, config_path: Path, config: Config, *, notify: SdNotify | None = None) -> None:
        self.config_path = config_path
        self.notify = notify or SdNotify()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._reload = threading.Event()
        self._lock = threading.Lock()
        self._rt = Runtime(config)
        from certmgr.lifecycle.recover import refuse_if_lost

        refuse_if_lost(self._rt)
        self._users: dict[int, int] = {}
        self.node = f"{socket.gethostname()}:{config.settings.state_dir}"
        self._scheduler: Any = None
        self._stop_metrics: Callable[[], None] | None = None
        self._metrics_listen = ""
        self._tlsrpt: Any = None  # the RFC 8460 HTTPS endpoint, when [monitor] tlsrpt.listen is set
        self._running: set[str] = set()
        self._exit_code = 0
        self._db_file = database_file(config.settings.database)

    # ------------------------------------------------------------------ runtime swapping

    @contextlib.contextmanager
    def _runtime(self) -> Iterator[Runtime]:
        """The current runtime; one replaced by a reload is closed when its last user is done."""
        with self._lock:
            rt = self._rt
            self._users[id(rt)] = self._users.get(id(rt), 0) + 1
        try:
            yield rt
        finally:
            with self._lock:
                self._users[id(rt)] -= 1
                retired = rt is not self._rt and self._users[id(rt)] == 0
                if retired:
                    del self._users[id(rt)]
            if retired:
                rt.close()

    def _swap(self, new: Runtime) -> None:
        with self._lock:
            old, self._rt = self._rt, new
            idle = self._users.get(id(old), 0) == 0
            if idle:
                self._users.pop(id(old), None)
        if idle:
            old.close()

    # ------------------------------------------------------------------ jobs

    def _run_job(self, name: str) -> None:
        with self._lock:
            self._running.add(name)
        try:
            self._run_job_recorded(name)
        finally:
            with self._lock:
                self._running.discard(name)

    def _run_job_recorded(self, name: str) -> None:
        fn = JOBS[name][0]
        try:
            with self._runtime() as rt:
                if not queue.start_job(rt.store, name, self.node, utcnow(), JOB_CLAIM_SECONDS):
                    log.info("%s: another certmgr node runs this job right now; skipped", name)
                    return
                error: str | None = None
                try:
                    summary = fn(rt, self._stop.is_set)
                except CertmgrError as e:
                    error, summary = str(e), "failed"
                    log.error("%s: %s", name, e)
                except Exception as e:  # the job boundary: the daemon outlives one broken run
                    error, summary = f"internal error: {e!r}", "failed"
                    log.exception("%s: internal error", name)
                queue.finish_job(rt.store, name, self.node, utcnow(), error=error, next_run=self._next_run(name))
            self.notify.status(f"{name}: {summary} at {utcnow():%H:%M:%S} UTC")
        except CertmgrError as e:  # the store itself failed: log it and try at the next run
            log.error("%s: cannot record the job in the store: %s", name, e)

    def _next_run(self, name: str) -> datetime | None:
        job = self._scheduler.get_job(name) if self._scheduler else None
        when = getattr(job, "next_run_time", None)
        return when.astimezone(UTC) if isinstance(when, datetime) else None

    def _schedule(self, settings: DaemonSettings, *, first: bool) -> None:
        now = datetime.now(UTC)
        for name, (_fn, key) in JOBS.items():
            seconds = int(getattr(settings, key))
            grace = max(30, seconds)
            job = self._scheduler.get_job(name)
            if seconds == 0:  # this job is switched off
                if job is not None:
                    self._scheduler.remove_job(name)
                    log.info("%s: switched off", name)
                continue
            if first or job is None:
                self._scheduler.add_job(self._run_job, "interval", args=[name], id=name, name=name,
                                        seconds=seconds, next_run_time=now, max_instances=1, coalesce=True,
                                        misfire_grace_time=grace)
            elif job.trigger.interval.total_seconds() != seconds:
                    self._scheduler.reschedule_job(name, trigger="interval", seconds=seconds)
                    log.info("%s: now every %d s", name, seconds)

    # ------------------------------------------------------------------ metrics

    def _registry(self) -> Any:
        with self._runtime() as rt:
            return jobs.metrics_registry(rt)

    def _start_metrics(self, listen: str) -> None:
        from certmgr.service.metrics import serve

        if self._stop_metrics is not None:
            self._stop_metrics()
            self._stop_metrics = None
        self._metrics_listen = listen
        if not listen:
            return
        host, port = _split_listen(listen)
        try:
            self._stop_metrics = serve(host, port, self._registry)
            log.info("metrics: serving http://%s/metrics", listen)
        except (OSError, ValueError) as e:
            log.error("metrics: cannot listen on %s (%s); running without the metrics endpoint", listen, e)

    def _start_tlsrpt(self, config: Config) -> None:
        """Serve the TLS-RPT HTTPS endpoint (its own database engine: requests come from its threads)."""
        mon = config.monitor
        if mon is None or mon.tlsrpt_listen is None or mon.tlsrpt_cert is None or mon.tlsrpt_key is None:
            return
        from certmgr.monitor.tlsrpt_http import TlsRptServer
        from certmgr.store.monitor import MonitorStore

        storage = MonitorStore.open(config.settings.database)
        try:
            self._tlsrpt = TlsRptServer(mon.tlsrpt_listen, storage, cert_file=mon.tlsrpt_cert,
                                        key_file=mon.tlsrpt_key)
        except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
            storage.close()
            log.error("tlsrpt: cannot serve https://%s:%d/ (%s); running without the TLS report endpoint",
                      *mon.tlsrpt_listen, e)
            return
        self._tlsrpt.serve_in_thread()
        log.info("tlsrpt: receiving TLS reports on https://%s:%d/", *mon.tlsrpt_listen)

    def _stop_tlsrpt(self) -> None:
        if self._tlsrpt is not None:
            self._tlsrpt.shutdown()
            self._tlsrpt.server_close()
            self._tlsrpt.storage.close()
            self._tlsrpt = None

    # ------------------------------------------------------------------ signals and reload

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self._reload.set()
        else:
            self._stop.set()
        self._wake.set()

    def _do_reload(self) -> None:
        self._reload.clear()
        self.notify.send("RELOADING=1", f"MONOTONIC_USEC={int(_monotonic_usec())}")
        try:
            config = load_config(self.config_path)
            if config.settings.state_dir != self._rt.config.settings.state_dir:
                raise CertmgrError(f"state_dir changed to {config.settings.state_dir}; that needs a restart")
            new = Runtime(config)
            try:
                new.providers.build_all()
                new.sync_config()  # new MTAs get their slots before the jobs run concurrently
            except BaseException:
                new.close()
                raise
        except CertmgrError as e:
            log.error("reload: %s is not usable, keeping the running configuration: %s", self.config_path, e)
            self.notify.send("READY=1", f"STATUS=reload failed, old configuration kept: {e}"[:400])
            return
        self._swap(new)
        self._schedule(config.daemon, first=False)
        if config.daemon.metrics_listen != self._metrics_listen:
            self._start_metrics(config.daemon.metrics_listen)
        log.info("reload: configuration %s loaded (%d MTAs)", self.config_path, len(config.mtas))
        self.notify.send("READY=1", f"STATUS=configuration reloaded, {len(config.mtas)} MTAs")
        self._scheduler.modify_job("renew", next_run_time=datetime.now(UTC))  # new MTAs get certificates now

    # ------------------------------------------------------------------ main

    def run(self) -> int:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        config = self._rt.config
        # create the slots of new MTAs once, before four jobs would race to insert them
        self._rt.sync_config()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        self._scheduler = BackgroundScheduler(timezone=UTC, executors={"default": ThreadPoolExecutor(len(JOBS))})
        self._schedule(config.daemon, first=True)
        self._scheduler.start()
        self._start_metrics(config.daemon.metrics_listen)
        self._start_tlsrpt(config)
        log.info("started: %d MTAs, state %s, renew every %d s, remind every %d s", len(config.mtas),
                 config.settings.state_dir, config.daemon.renew_interval, config.daemon.remind_interval)
        self.notify.ready(f"running, {len(config.mtas)} MTAs")
        tick = min(TICK_SECONDS, self.notify.watchdog_interval or TICK_SECONDS)
        try:
            while not self._stop.is_set():
                self._wake.wait(tick)
                self._wake.clear()
                if self._reload.is_set() and not self._stop.is_set():
                    self._do_reload()
                lost = self._database_lost()
                if lost:
                    self._alert_database_lost(lost)
                    self._exit_code = 2
                    break
                if self._scheduler.running:  # a dead scheduler gets no pings: systemd restarts us
                    self.notify.watchdog()
        finally:
            log.info("stopping: waiting for running jobs to finish their current step")
            self.notify.stopping()
            self._scheduler.shutdown(wait=False)
            self._wait_for_jobs()
            if self._stop_metrics is not None:
                self._stop_metrics()
            self._stop_tlsrpt()
            with self._lock:
                self._rt.close()
            log.info("stopped")
        return self._exit_code

    # ------------------------------------------------------------------ the database file

    def _database_lost(self) -> str | None:
        """What happened to the SQLite file opened at start: removed or replaced (None: still it)."""
        if self._db_file is None:
            return None  # a database server: nothing on this machine to watch
        path, identity = self._db_file
        try:
            st = path.stat()
        except FileNotFoundError:
            return f"the database file {path} was removed"
        except OSError as e:
            return f"the database file {path} cannot be examined ({e.strerror})"
        if (st.st_dev, st.st_ino) != identity:
            return f"the database file {path} was replaced by another file"
        return None

    def _alert_database_lost(self, what: str) -> None:
        """Tell people directly: the reminder queue lives in the database that is gone."""
        from certmgr.notify.daemon_message import database_lost_message

        rt = self._rt
        log.error("%s while the daemon was running; stopping so that nothing is ordered again on an "
                  "empty inventory. Run `certmgr recover`, then start the daemon again", what)
        msg = database_lost_message(socket.gethostname(), what, str(rt.config.settings.state_dir),
                                    str(self.config_path), utcnow())
        for name in rt.config.notifies:
            try:
                rt.providers.notifier(name).send(msg)
                log.info("database: alert sent via [notify.%s]", name)
            except CertmgrError as e:
                log.error("database: alert via [notify.%s] not sent: %s", name, e)


    def _wait_for_jobs(self) -> None:
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while time.monotonic() < deadline:
            with self._lock:
                if not self._running:
                    return
            time.sleep(0.1)
        with self._lock:
            running = ", ".join(sorted(self._running))
        # every step is recorded in the store: the work resumes at the next start
        log.warning("stopping: %s still running after %d s; exiting anyway", running, STOP_GRACE_SECONDS)
        logging.shutdown()
        os._exit(0)


def database_file(url: str) -> tuple[Path, tuple[int, int]] | None:
    """The SQLite file of ``url`` and its (device, inode) now; None for a database server."""
    from certmgr.store.db import sqlite_path

    path = sqlite_path(url)
    if path is None:
        return None
    st = path.stat()
    return path, (st.st_dev, st.st_ino)


def _monotonic_usec() -> float:
    return time.clock_gettime(time.CLOCK_MONOTONIC) * 1_000_000


def run_daemon(config_path: Path) -> int:
    config = load_config(config_path)
    lock = lock_state_dir(config.settings.state_dir)
    try:
        return Daemon(config_path, config).run()
    finally:
        lock.close()

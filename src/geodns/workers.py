"""Several worker processes on one set of ports (`geodns serve --workers N`).

The parent validates the zones, forks N workers and serves the admin HTTP port
itself (role "supervisor": it holds the zones too, for the admin answers and for
plugins, but no DNS socket). Each worker binds every --listen address with
SO_REUSEPORT, so the kernel spreads queries over them. A reload in the parent
(SIGHUP, or POST /admin/reload) validates all files and, only when they are good,
sends SIGHUP to every worker, which loads and swaps the same files. A worker that
dies is started again. SIGTERM or SIGINT stops the workers, then the parent.

Metrics: the CLI points PROMETHEUS_MULTIPROC_DIR at a fresh directory before
prometheus-client is imported; workers write their counters there and the parent's
/metrics sums them.

Plugins run `setup` in every process; the health plugin probes in the parent only, and
the workers answer from the parent's verdicts (`healthcheck.follow`): one probe per
target per interval, and every worker answers as the parent decides.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
import os
import shutil
import signal
import socket
from collections.abc import Coroutine
from multiprocessing.synchronize import Event as EventType
from typing import Any

from geodns.server import GeoDNSServer, ServerConfig, ZoneLoadError, load_and_report

log = logging.getLogger("geodns")
START_TIMEOUT = 15.0


def run_loop(coro: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)


def _worker(config: ServerConfig, ready: EventType) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us with SIGTERM
    server = GeoDNSServer(config, role="worker")

    async def serving(_server: GeoDNSServer) -> None:
        ready.set()

    server.on_start.append(serving)
    run_loop(server.serve_forever(stop_signals=(signal.SIGTERM,)))


class Supervisor:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.ctx = mp.get_context("fork")
        self.procs: list = []
        self.server = GeoDNSServer(config, role="supervisor")
        self.server.on_reload.append(lambda _s: self.signal_workers(signal.SIGHUP))
        # Serving HTTP, the parent restarts workers that die (`watch`) until it stops.
        self.server.on_start.append(self._start_watching)
        self.server.on_stop.insert(0, self._stop_watching)  # before the plugins' hooks
        self.watcher: asyncio.Task | None = None
        self.stopping = False

    def spawn(self) -> tuple:
        ready = self.ctx.Event()
        proc = self.ctx.Process(target=_worker, args=(self.config, ready), daemon=True)
        proc.start()
        return proc, ready

    def signal_workers(self, sig: int) -> None:
        for proc in self.procs:
            if proc.pid and proc.is_alive():
                os.kill(proc.pid, sig)

    async def watch(self) -> None:
        while not self.stopping:
            await asyncio.sleep(1.0)
            for i, proc in enumerate(self.procs):
                if not proc.is_alive() and not self.stopping:
                    log.error("worker pid %d exited with code %s; starting another",
                              proc.pid, proc.exitcode)
                    self.procs[i], _ = self.spawn()

    def start_workers(self) -> bool:
        """Fork the workers (before any event loop runs here) and wait until each one
        serves; False when one could not start."""
        started = [self.spawn() for _ in range(self.config.workers)]
        self.procs = [p for p, _ in started]
        for proc, ready in started:
            if not ready.wait(START_TIMEOUT):
                log.error("worker pid %d did not start (exit code %s); stopping", proc.pid,
                          proc.exitcode)
                self.shutdown()
                return False
        return True

    async def _start_watching(self, _server: GeoDNSServer) -> None:
        self.watcher = asyncio.create_task(self.watch())

    async def _stop_watching(self, _server: GeoDNSServer) -> None:
        self.stopping = True
        if self.watcher is not None:
            self.watcher.cancel()

    def shutdown(self) -> None:
        self.stopping = True
        self.signal_workers(signal.SIGTERM)
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join()


def ports_free(listen: list[tuple[str, int]]) -> bool:
    """Workers bind with SO_REUSEPORT, which would let them join another server's
    port silently; so first check that each address is free, binding without it."""
    for host, port in listen:
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            with socket.socket(family, kind) as s:
                try:
                    s.bind((host, port))
                except OSError as e:
                    log.error("cannot listen on %s port %d: %s", host, port, e.strerror)
                    return False
    return True


def run(config: ServerConfig) -> int:
    """Serve with `config.workers` processes; the exit status for the CLI."""
    if config.workers <= 1:
        server = GeoDNSServer(config)
        try:
            run_loop(server.serve_forever())
        except ZoneLoadError:
            return 1
        except OSError as e:
            log.error("cannot listen: %s", e)
            return 1
        return 0
    if load_and_report(config.zones_dir)[1]:  # refuse before forking anything
        return 1
    if not ports_free(config.listen):
        return 1
    supervisor = Supervisor(config)
    if not supervisor.start_workers():
        return 1
    try:
        run_loop(supervisor.server.serve_forever())
    finally:
        supervisor.shutdown()
        metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0

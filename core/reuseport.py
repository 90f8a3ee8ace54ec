"""One listening socket per web process (``SO_REUSEPORT``), so that the kernel spreads connections.

uvicorn's ``--workers N`` binds one listening socket and hands it to every process: whichever
process wakes first accepts a whole burst of new connections, and with keep-alive those
connections then stay with it. Measured here (docs/performance.md, 2026-12-08): 40 connections
opened at once against an idle ``kehu serve --workers 2`` split 36/4 and 37/3 in two of six
bursts on the shared socket, and between 20/20 and 25/15 in all six with a socket each; in
alternating paced runs of the staff mix at 300 req/s without recycled connections, the p95 was
178 ms (median of 8) on the shared socket and 48 ms with a socket each, lower in 8 of 8 pairs.

With ``SO_REUSEPORT`` (Linux 3.9 and later) every process slot gets a listening socket of its
own on the same address, and the kernel assigns each new connection to one of them by a hash
of its addresses and ports: the split follows the connections' ports, not which process
happened to be awake. :class:`ReusePortMultiprocess` is uvicorn's supervisor with that one
change: slot *i*'s process, and every replacement of it (a crashed process, ``SIGHUP``), serves
socket *i*. The parent keeps all the sockets open, so the connections queued on a slot while
its process is replaced wait for the replacement instead of being reset.

Elsewhere than on Linux, ``kehu serve`` keeps uvicorn's shared socket.
"""

from __future__ import annotations

import logging
import socket
import sys

from uvicorn.config import STARTUP_FAILURE, Config
from uvicorn.supervisors.multiprocess import Multiprocess, Process

logger = logging.getLogger("uvicorn.error")


def available() -> bool:
    """Linux only: the BSDs and macOS have ``SO_REUSEPORT`` but give every connection to one socket."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


class PortTaken(OSError):
    """The address is already served by another program (or another ``kehu serve``)."""


def bind_per_process(host: str, port: int, count: int, backlog: int, probe: bool = True) -> list[socket.socket]:
    """``count`` listening sockets on ``host:port``, each with ``SO_REUSEPORT``.

    With ``probe``, a plain bind comes first, so that a port another server already listens on
    (even one that set ``SO_REUSEPORT`` itself, such as another ``kehu serve``) is refused as
    with a shared socket, instead of silently sharing its connections. Port 0 takes a free port
    for all.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if probe:
        with socket.socket(family, socket.SOCK_STREAM) as plain:
            plain.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                plain.bind((host, port))
                plain.listen(1)
            except OSError as exc:
                raise PortTaken(exc.errno, f"{host}:{port}: {exc.strerror}") from exc
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            port = sock.getsockname()[1]  # port 0: the others join the port the first one got
            sock.listen(backlog)
            sock.set_inheritable(True)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise PortTaken(exc.errno, f"{host}:{port}: {exc.strerror}") from exc
    return sockets


class ReusePortMultiprocess(Multiprocess):
    """uvicorn's supervisor, with process slot *i* (and its replacements) serving ``slot_sockets[i]``.

    Only the places where uvicorn creates or drops a process are changed; each follows uvicorn's
    own method of the same name (0.55, pinned in pyproject.toml for this reason), with the slot's
    socket instead of the shared list.
    """

    def __init__(self, config: Config, slot_sockets: list[socket.socket]) -> None:
        if len(slot_sockets) != config.workers:
            raise ValueError(f"{config.workers} workers need as many sockets, not {len(slot_sockets)}")
        super().__init__(config, sockets=slot_sockets)
        self.slot_sockets = slot_sockets

    def process_for(self, slot: int) -> Process:
        return Process(self.config, [self.slot_sockets[slot]])

    def init_processes(self) -> None:
        for slot in range(self.processes_num):
            process = self.process_for(slot)
            process.start()
            self.processes.append(process)

    def restart_all(self) -> None:
        for slot, old_process in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            new_process = self.process_for(slot)
            new_process.start()
            if not new_process.wait_until_ready(self.config.timeout_worker_healthcheck, self.should_exit):
                new_process.kill()
                new_process.join()
                if not self.should_exit.is_set():
                    logger.error(f"New child process [{new_process.pid}] was not ready in time; "
                                 f"keeping worker [{old_process.pid}] and aborting the restart.")
                return
            old_process.terminate()
            old_process.join()
            self.processes[slot] = new_process

    def keep_subprocess_alive(self) -> None:
        if self.should_exit.is_set():
            return
        for slot, process in enumerate(self.processes):
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()
            process.join()
            if process.exitcode == STARTUP_FAILURE:
                logger.error(f"Child process [{process.pid}] failed to start, stopping the parent process.")
                self.should_exit.set()
                return
            if self.should_exit.is_set():
                return
            logger.info(f"Child process [{process.pid}] died; starting its replacement on the same socket")
            process = self.process_for(slot)
            process.start()
            self.processes[slot] = process

    def handle_ttin(self) -> None:
        """``SIGTTIN``: one more process, on a new socket of its own on the same address."""
        host, port = self.slot_sockets[0].getsockname()[:2]
        try:
            (sock,) = bind_per_process(host, port, 1, self.config.backlog, probe=False)
        except PortTaken as exc:
            logger.error(f"Received SIGTTIN, but no further socket could listen on {exc.strerror}")
            return
        logger.info("Received SIGTTIN, increasing the number of processes (a new listening socket).")
        self.slot_sockets.append(sock)
        self.processes_num += 1
        process = self.process_for(len(self.slot_sockets) - 1)
        process.start()
        self.processes.append(process)

    def handle_ttou(self) -> None:
        """``SIGTTOU``: one process fewer; its socket closes with it (connections still waiting in
        that socket's queue are reset, as the kernel does for any closed listener)."""
        if self.processes_num <= 1:
            logger.info("Received SIGTTOU, but one process is the least.")
            return
        logger.info("Received SIGTTOU, decreasing the number of processes.")
        self.processes_num -= 1
        process = self.processes.pop()
        self.slot_sockets.pop().close()  # the child's copy closes as it shuts down
        process.terminate()
        process.join()

    def run(self) -> None:
        try:
            super().run()
        finally:
            for sock in self.slot_sockets:
                sock.close()

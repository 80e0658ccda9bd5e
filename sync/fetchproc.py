"""A generator run in a forked child process, its items handed back through a pipe (issue 20).

A first sync's fetch side (requests, parse, key, hash, map, row encoding: ~3.5 s of CPU for 100,000 WooCommerce
customers) and the main thread's writes shared one interpreter lock, and on two cores that lock was the run's
critical path (docs/performance.md, twentieth pass). In a child of its own the fetch side runs beside the
writes instead of in turn with them.

Why a plain ``os.fork`` and not ``multiprocessing.Process``: django-q2's workers are daemonic processes, which
``multiprocessing`` does not let have children; the child needs none of its machinery (a pipe, pickle, and
its exit status are all it uses). Why fork and not spawn: a spawned child would set Django up again (~1 s), and
would need the runner's whole state pickled; a forked one starts with it.

What a fork must not disturb (``unavailable`` says why not, and the caller then fetches in a thread):
- The parent's database connections. A child inherits their sockets, and one the child closed would end the
  parent's session (libpq's PQfinish sends Terminate; psycopg's finaliser does not, in a process other than
  the one that opened it). So the parent closes its own connections before forking: the child's own
  ``close_all`` at its end then closes only what the child opened (a token refresh, a rate-limit cache).
  SQLite: closing a file database's connection is as safe; an in-memory one is never closed (it would be
  lost), so the engine forks no child beside it (sync.engine.QueueRunner._fetch_process).
  Not inside a transaction (closing would lose it), nor with a connection pool (its connections and worker
  threads would be inherited).
- Other threads' locks. A child inherits every lock in the state it had at the fork, and a lock another thread
  held then (logging's, an HTTP pool's, the import lock's) is held for good in the child, which may hang on it.
  So no fork while another thread runs, except a multiprocessing queue's feeder (``_harmless``; django-q2's
  workers have one), which holds none of the locks the fetch uses. (Python 3.12 warns of any fork beside
  threads.)
- Nothing of the child's exit may reach what the parent still holds: the child leaves with ``os._exit``
  (no atexit handlers, no finalisers of inherited objects).
The child dies with its parent (Linux's parent-death signal), so a worker killed by its timeout leaves no
fetch behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import marshal
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from multiprocessing import queues as mp_queues
from multiprocessing.connection import Connection

from django.conf import settings
from django.db import connection, connections

from core.errors import UpstreamError
from core.redaction import redact

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


class FetchProcessError(UpstreamError):
    """The fetch process ended without finishing (killed, out of memory) or raised what cannot come back
    through a pipe: the run fails as for an upstream error, the cursor and token where the last stored group
    left them, and the next run resumes from there."""


def wanted() -> bool:
    """Whether a first sync's fetch side goes to a process (SYNC_FETCH_PROCESS): as set when True or False;
    "auto" (the default): on SQLite (where this process also does the writes) with two CPUs or more for it, on
    Linux (where it was measured, and where the child dies with its parent; macOS's system libraries are not
    safe to use in a child forked without exec); off on PostgreSQL (its server works beside this process) and
    on one CPU (two processes would take turns)."""
    setting = settings.SYNC_FETCH_PROCESS
    if setting is True or setting is False:
        return setting
    return sys.platform.startswith("linux") and connection.vendor == "sqlite" and _cpus() >= 2


def _cpus() -> int:
    """The CPUs this process may use: those it may run on (a taskset, a container's cpuset), fewer when its
    cgroup's CPU quota allows fewer (``docker --cpus=1``, a Kubernetes limit; 1.5 counts as 1)."""
    cpus = len(os.sched_getaffinity(0))
    for path, read in ((_CGROUP_V2, _v2_quota), (_CGROUP_V1, _v1_quota)):
        try:
            quota = read(path)
        except (OSError, ValueError):
            continue
        if quota is not None:
            return max(1, min(cpus, int(quota)))
    return cpus


_CGROUP_V2 = "/sys/fs/cgroup/cpu.max"  # "<quota> <period>" in us, or "max <period>"
_CGROUP_V1 = "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"  # -1 for none, beside cpu.cfs_period_us


def _v2_quota(path: str) -> float | None:
    with open(path) as f:
        quota, period = f.read().split()
    return None if quota == "max" else int(quota) / int(period)


def _v1_quota(path: str) -> float | None:
    with open(path) as f:
        quota = int(f.read())
    with open(path.replace("cfs_quota_us", "cfs_period_us")) as f:
        period = int(f.read())
    return None if quota < 0 else quota / period


def unavailable() -> str | None:
    """Why a fetch process cannot be forked here, or None when it can."""
    if not hasattr(os, "fork"):
        return "no fork on this platform"
    others = [t.name for t in threading.enumerate() if t is not threading.current_thread() and not _harmless(t)]
    if others:
        return (
            f"other threads are running ({', '.join(sorted(others)[:5])}; a lock they hold would be held in the child)"
        )
    for conn in connections.all(initialized_only=True):
        if conn.in_atomic_block:
            return "inside a transaction"
    for alias in connections:
        if connections.settings[alias].get("OPTIONS", {}).get("pool"):
            return "a database connection pool is configured"
    return None


def _harmless(thread: threading.Thread) -> bool:
    """A thread known to hold none of the locks the fetch takes: a multiprocessing queue's feeder (it pickles
    to a pipe under its queue's own lock). A django-q2 worker has one from its first result on (its result
    queue), and nothing else."""
    return thread.name == "QueueFeederThread" and getattr(thread, "_target", None) is mp_queues.Queue._feed


class ForkedProducer:
    """Runs ``produce()`` in a forked child; iterating yields its items in order (each marshalled or pickled
    there and read back here: _dumped). An exception ``produce`` raises is raised here with its class (or as
    FetchProcessError if it cannot be pickled), the child's traceback in a note; a child that dies raises
    FetchProcessError.
    ``stop()`` kills the child (idempotent); iterating to the end, or closing the iterator, stops it too."""

    def __init__(self, produce: Callable[[], Iterable], *, name: str) -> None:
        reason = unavailable()
        if reason is not None:
            raise RuntimeError(f"cannot fork a fetch process: {reason}")
        self.name = name
        connections.close_all()  # the child must inherit no open session (see the module's docstring)
        sys.stdout.flush()
        sys.stderr.flush()
        read_fd, write_fd = os.pipe()
        _widen(write_fd)
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child: never returns into the caller's code, whatever happens
            try:
                os.close(read_fd)
                _child(produce, Connection(write_fd, readable=False), parent)
            finally:
                os._exit(2)
        os.close(write_fd)
        self.pid = pid
        self._reader = Connection(read_fd, writable=False)
        self._lock = threading.Lock()
        self._status: int | None = None

    def __iter__(self) -> Iterator:
        try:
            while True:
                try:
                    message = self._reader.recv_bytes()
                except (EOFError, OSError):
                    self._reap(wait=True)
                    raise FetchProcessError(
                        f"the fetch process {self.name} ended without finishing ({self._ended()})"
                    ) from None
                kind, value = _loaded(message)
                if kind == "item":
                    yield value
                elif kind == "end":
                    self._reap(wait=True)  # it is leaving (closing its own connections): not killed for it
                    return
                else:
                    self._reap(wait=True)  # it is leaving too
                    raise _error(value)
        finally:
            self.stop()  # ended, failed, or the consumer stopped early: no child left running or unreaped
            self._reader.close()

    def stop(self) -> None:
        """Kill the child unless it has ended, and reap it. From any thread: a reader blocked on the pipe then
        reads end of file."""
        self._reap(wait=False)
        with self._lock:
            if self._status is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
        self._reap(wait=True)

    def _reap(self, *, wait: bool, grace: float = 5.0) -> None:
        """Collect the child's exit status. ``wait``: until it exits, which a child that said it is done (or
        failed) does at once; one that has not within ``grace`` seconds (stopped, stuck closing a connection)
        is killed. Never blocks while holding the lock, so stop() from another thread can always kill."""
        deadline = time.monotonic() + grace
        while True:
            with self._lock:
                if self._status is not None:
                    return
                try:
                    pid, status = os.waitpid(self.pid, os.WNOHANG)
                except ChildProcessError:  # reaped elsewhere (a SIGCHLD handler): its status is lost
                    self._status = -1
                    return
                if pid:
                    self._status = status
                    return
                if not wait:
                    return
                if time.monotonic() >= deadline:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(self.pid, signal.SIGKILL)
            time.sleep(0.01)

    def _ended(self) -> str:
        status = self._status
        if status is None or status == -1:
            return "exit status unknown"
        if os.WIFSIGNALED(status):
            return f"killed by signal {os.WTERMSIG(status)}"
        return f"exit status {os.WEXITSTATUS(status)}"


_PIPE_BYTES = 1 << 20  # Linux's default cap for an unprivileged process (/proc/sys/fs/pipe-max-size)


def _widen(fd: int) -> None:
    """Let the pipe hold ~1 MiB rather than Linux's default 64 KiB: a page of 100 WooCommerce customers is
    ~90 kB as sent, so with the default each send waited for the parent to read (a first sync on SQLite, 3
    interleaved rounds at 100,000: 5.32 -> 4.55 s, the child's CPU 4.2 -> 3.9 s). Best effort: elsewhere, or
    refused, the pipe keeps its size."""
    with contextlib.suppress(ImportError, AttributeError, OSError, ValueError):
        import fcntl  # POSIX only, as fork is

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)  # AttributeError off Linux


class _ParentGone(Exception):
    """The parent stopped reading (it closed the pipe or died): nothing to report to."""


def _send(out: Connection, message: bytes) -> None:
    try:
        out.send_bytes(message)
    except (BrokenPipeError, ConnectionResetError):
        raise _ParentGone() from None


def _child(produce: Callable[[], Iterable], out: Connection, parent: int) -> None:
    code = 0
    try:
        # Linux only; elsewhere the pipe's end stops the child. The signal follows the thread that forked, which
        # outlives the child (the engine stops it before the fetch returns).
        with contextlib.suppress(Exception):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)
        try:
            for item in produce():
                _send(out, _dumped(("item", item)))
            _send(out, pickle.dumps(("end", None)))
        except _ParentGone:
            code = 1
        except BaseException as exc:  # every failure goes back to the parent
            exc.add_note(redact("in the fetch process:\n" + "".join(traceback.format_exception(exc)))[-8000:])
            with contextlib.suppress(_ParentGone):
                _send(out, _pickled_error(exc))
            code = 1
        finally:
            connections.close_all()  # the child's own connections (the parent's were closed before the fork)
    except BaseException:  # a child must never return into the parent's code
        code = 2
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _dumped(message) -> bytes:
    """A message as bytes for _loaded: marshal where it takes it (a first sync's page of 100 WooCommerce
    customers with its SQLite parameters, ~160 kB: 96 against 138 us for pickle, in the child, the longer side
    of a first sync; with PostgreSQL's binary rows both take ~34 us), pickle where it refuses (a datetime, a
    Decimal, so an order's SQLite parameters go by pickle; a subclass of int, str, dict and the like). marshal
    brings back exactly what it took, but for a buffer (bytes subclass, bytearray, memoryview, array), which
    comes back as bytes: a row's BLOB parameter binds the same either way."""
    try:
        return b"M" + marshal.dumps(message)
    except ValueError:
        return pickle.dumps(message, pickle.HIGHEST_PROTOCOL)  # starts with its protocol's b"\x80"


def _loaded(message: bytes):
    if message[:1] == b"M":
        return marshal.loads(memoryview(message)[1:])  # noqa: S302 (our own child's bytes)
    return pickle.loads(message)  # noqa: S301 (our own child's bytes)


def _pickled_error(exc: BaseException) -> bytes:
    try:
        message = pickle.dumps(("error", exc), pickle.HIGHEST_PROTOCOL)
        pickle.loads(message)  # noqa: S301 (our own bytes): an exception whose class cannot be rebuilt
        return message
    except Exception:
        text = redact(f"{exc.__class__.__name__}: {exc}")
        notes = getattr(exc, "__notes__", [])
        return pickle.dumps(("error", ("unpicklable", text, notes)))


def _error(value) -> BaseException:
    if isinstance(value, BaseException):
        return value
    _, text, notes = value
    exc = FetchProcessError(text)
    for note in notes:
        exc.add_note(note)
    return exc

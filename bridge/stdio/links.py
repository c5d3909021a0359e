"""The byte links a stdio MCP server can sit behind: a child process's pipes, or a pair of named pipes (FIFOs) on a
volume shared with a server running in another container of the same pod.

A link only moves bytes and says how it ended; restarting and the MCP handshake belong to the supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import stat
from pathlib import Path
from typing import Final, Protocol

from bridge.exceptions import ConfigError

__all__ = ["FifoLink", "Link", "ProcessLink", "open_fifo", "spawn_process"]

logger = logging.getLogger("bridge.child")

STDIN_CLOSE_GRACE: Final = 2.0
"""Seconds a server gets to exit on its own after its stdin closes, the polite stop the MCP stdio spec asks for."""

SIGTERM_GRACE: Final = 2.0
"""Seconds between SIGTERM and SIGKILL when a server ignores a closed stdin."""

STDERR_LINE_LIMIT: Final = 8192
"""Longest stderr line copied to the log; longer lines are cut, so a chatty server cannot flood it."""

FIFO_POLL_INTERVAL: Final = 0.1
"""Seconds between checks for the server container opening its end of the input FIFO."""

FIFO_OPEN_TIMEOUT: Final = 5.0
"""Seconds to wait for the server to open the output FIFO once it has opened the input one."""

WRITE_BUFFER_LIMIT: Final = 16 * 1024 * 1024
"""Bytes queued for a server that does not read its input before writes fail instead of growing memory."""


class LinkBroken(Exception):
    """The server is not reading its input (its buffer is full or its pipe is closed)."""


class Link(Protocol):
    """A running stdio MCP server as the supervisor sees it."""

    reader: asyncio.StreamReader

    def write(self, data: bytes) -> None:
        """Queue one framed message for the server; raises `LinkBroken` when it cannot be delivered."""

    async def ended(self) -> str:
        """Wait until the server is gone; describe how it ended, for logs and client errors."""

    async def close(self) -> None:
        """Stop the server (politely first) and release the link."""


class _WriterLink:
    """Writing shared by both links: bounded, and coalesced per event-loop turn.

    The first message of a turn of the event loop goes to the pipe at once (a lone request waits for nothing);
    messages after it in the same turn (many clients' requests arriving together under load) follow in one system
    call at the end of the turn instead of one each.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self._writer = writer
        self._pending: list[bytes] = []
        self._batching = False

    def write(self, data: bytes) -> None:
        transport = self._writer.transport
        if transport.is_closing():
            raise LinkBroken("the MCP server closed its input")
        if transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
            raise LinkBroken(f"the MCP server is not reading its input ({WRITE_BUFFER_LIMIT} bytes are queued)")
        if self._batching:
            self._pending.append(data)
            return
        transport.write(data)
        self._batching = True
        asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._batching = False
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        transport = self._writer.transport
        if not transport.is_closing():
            transport.write(b"".join(pending))


class ProcessLink(_WriterLink):
    """A child process started by the bridge, in its own process group so its own children stop with it."""

    def __init__(self, process: asyncio.subprocess.Process, stderr_task: asyncio.Task[None]) -> None:
        assert process.stdin is not None and process.stdout is not None
        super().__init__(process.stdout, process.stdin)
        self.process = process
        self._stderr_task = stderr_task

    @property
    def pid(self) -> int:
        return self.process.pid

    async def ended(self) -> str:
        code = await self.process.wait()
        await self._stderr_task
        if code < 0:
            return f"was killed by {signal.Signals(-code).name}"
        return f"exited with code {code}"

    async def close(self) -> None:
        with contextlib.suppress(OSError):
            self._writer.close()
        if await self._exited_within(STDIN_CLOSE_GRACE):
            return
        self._signal_group(signal.SIGTERM)
        if await self._exited_within(SIGTERM_GRACE):
            return
        self._signal_group(signal.SIGKILL)
        await self.process.wait()

    async def _exited_within(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self.process.wait(), seconds)
        except TimeoutError:
            return False
        return True

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)


async def spawn_process(command: list[str], max_message_bytes: int) -> ProcessLink:
    """Start `command` with piped stdio; its stderr is copied to the log line by line."""
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        limit=max_message_bytes + 1,
        start_new_session=True,
    )
    assert process.stderr is not None
    stderr_task = asyncio.create_task(_log_stderr(process.stderr, process.pid), name=f"stderr-{process.pid}")
    logger.info("Started MCP server (pid %d): %s", process.pid, " ".join(command))
    return ProcessLink(process, stderr_task)


async def _log_stderr(stream: asyncio.StreamReader, pid: int) -> None:
    while True:
        try:
            line = await stream.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            line = exc.partial
            if not line:
                return
        except asyncio.LimitOverrunError as exc:
            line = await stream.readexactly(exc.consumed)
        text = line[:STDERR_LINE_LIMIT].decode(errors="replace").rstrip()
        if text:
            logger.info("[pid %d] %s", pid, text)


class FifoLink(_WriterLink):
    """A server in another container reading `DIR/in` and writing `DIR/out` through a shared volume."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        read_transport: asyncio.ReadTransport,
        writer: asyncio.StreamWriter,
        directory: Path,
    ) -> None:
        super().__init__(reader, writer)
        self._read_transport = read_transport
        self.directory = directory

    async def ended(self) -> str:
        # The supervisor calls this once the output FIFO reached end of stream: the server closed its end.
        return f"closed its end of the FIFOs in {self.directory}"

    async def close(self) -> None:
        # The server owns its lifecycle (its container); the bridge only lets go of the pipes, which discards
        # anything still queued so a restarted server never reads stale requests.
        with contextlib.suppress(OSError):
            self._writer.close()
        self._read_transport.close()


def _ensure_fifo(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        os.mkfifo(path, 0o600)
        return
    if not stat.S_ISFIFO(mode):
        raise ConfigError(
            f"{str(path)!r} exists but is not a named pipe; remove it or point --fifo at another directory."
        )


async def open_fifo(directory: Path, max_message_bytes: int) -> FifoLink:
    """Wait for the server container to open its ends, then connect.

    The server's command is `sh -c 'exec SERVER < DIR/in > DIR/out'`: its shell opens `in` for reading (waiting for
    a writer), then `out` for writing (waiting for a reader). The bridge mirrors that order.
    """
    if not directory.is_dir():  # noqa: ASYNC240  # one stat at connect time, not on a hot path
        raise ConfigError(f"--fifo {str(directory)!r} is not a directory; mount the shared emptyDir there.")
    in_path, out_path = directory / "in", directory / "out"
    _ensure_fifo(in_path)
    _ensure_fifo(out_path)
    loop = asyncio.get_running_loop()
    while True:
        write_fd = await _open_when_read(in_path)
        try:
            read_fd = await asyncio.wait_for(asyncio.to_thread(os.open, out_path, os.O_RDONLY), FIFO_OPEN_TIMEOUT)
        except TimeoutError:
            # The server went away between the two opens; release the thread still blocked in open() and retry.
            with contextlib.suppress(OSError):
                os.close(os.open(out_path, os.O_WRONLY | os.O_NONBLOCK))
            os.close(write_fd)
            continue
        break
    os.set_blocking(read_fd, False)
    reader = asyncio.StreamReader(limit=max_message_bytes + 1)
    read_transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", buffering=0)
    )
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(write_fd, "wb", buffering=0)
    )
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    logger.info("Connected to the MCP server through the FIFOs in %s", directory)
    return FifoLink(reader, read_transport, writer, directory)


async def _open_when_read(path: Path) -> int:
    """Open a FIFO for writing as soon as a reader has it open (a non-blocking open fails with ENXIO until then)."""
    while True:
        try:
            return os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
        await asyncio.sleep(FIFO_POLL_INTERVAL)

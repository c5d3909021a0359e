"""The static source over a real file: published at start, republished on valid edits, kept on broken ones."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import anyio
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream

from aggregator.discovery import Source, Target
from aggregator.discovery.static import POLL_INTERVAL, StaticSource
from aggregator.exceptions import ConfigError

pytestmark = pytest.mark.anyio

FAST_POLL = 0.02
"""Seconds between looks at the file in tests, so an edit shows within a few milliseconds."""

WAIT = 5.0
"""Seconds a test waits for a publication or a log line before failing."""

Targets = Mapping[str, Target]


def config(*names: str, prefix: str = "always") -> str:
    entries = "".join(f"  - {{name: {name}, url: 'http://{name}:8080/mcp'}}\n" for name in names)
    return f"prefix: {prefix}\ntargets:\n{entries}" if names else f"prefix: {prefix}\ntargets: []\n"


@contextlib.asynccontextmanager
async def running(source: Source) -> AsyncIterator[MemoryObjectReceiveStream[Targets]]:
    """Run `source`, handing every published target set to the caller's stream."""
    send, receive = anyio.create_memory_object_stream[Targets](100)
    with send, receive:
        async with anyio.create_task_group() as group:
            group.start_soon(source.run, send.send_nowait)
            yield receive
            group.cancel_scope.cancel()


async def next_set(published: MemoryObjectReceiveStream[Targets]) -> Targets:
    with anyio.fail_after(WAIT):
        return await published.receive()


async def wait_for_log(caplog: pytest.LogCaptureFixture, text: str) -> logging.LogRecord:
    with anyio.fail_after(WAIT):
        while True:
            for record in caplog.records:
                if text in record.getMessage():
                    return record
            await anyio.sleep(FAST_POLL)


def test_the_file_is_polled_every_second_by_default() -> None:
    """POLL_INTERVAL is the documented one second."""
    assert POLL_INTERVAL == 1.0


def test_an_invalid_file_at_start_raises_config_error(tmp_path: Path) -> None:
    """With nothing served yet there is nothing to keep: the error reaches the caller."""
    path = tmp_path / "agg.yaml"
    path.write_text("targets: [{name: Bad, url: 'http://a/mcp'}]\n")
    with pytest.raises(ConfigError, match="not a valid target name"):
        StaticSource(path)


def test_a_missing_file_at_start_raises_config_error(tmp_path: Path) -> None:
    """The path is named."""
    with pytest.raises(ConfigError, match=r"absent\.yaml"):
        StaticSource(tmp_path / "absent.yaml")


def test_the_config_is_readable_before_running(tmp_path: Path) -> None:
    """Server settings are known as soon as the source is made."""
    path = tmp_path / "agg.yaml"
    path.write_text("server: {name: hub}\n" + config("a"))
    assert StaticSource(path).config.server_name == "hub"


def test_dev_mode_targets_load_only_with_allow_launch(tmp_path: Path) -> None:
    """allow_launch is passed on to the config loader."""
    path = tmp_path / "agg.yaml"
    path.write_text("targets: [{name: files, stdio: [cat]}]\n")
    with pytest.raises(ConfigError, match="dev mode"):
        StaticSource(path)
    assert StaticSource(path, allow_launch=True).config.targets["files"].launch == {"stdio": ["cat"]}


async def test_the_targets_are_published_at_start(tmp_path: Path) -> None:
    """The first publication is the file's complete target set."""
    path = tmp_path / "agg.yaml"
    path.write_text(config("a", "b"))
    async with running(StaticSource(path, poll_interval=FAST_POLL)) as published:
        targets = await next_set(published)
    assert sorted(targets) == ["a", "b"]
    assert targets["a"].url == "http://a:8080/mcp"


async def test_adding_then_removing_a_target_republishes_each_time(tmp_path: Path) -> None:
    """Every valid edit publishes the whole new set."""
    path = tmp_path / "agg.yaml"
    path.write_text(config("a"))
    async with running(StaticSource(path, poll_interval=FAST_POLL)) as published:
        assert list(await next_set(published)) == ["a"]
        path.write_text(config("a", "b"))
        assert list(await next_set(published)) == ["a", "b"]
        path.write_text(config("b"))
        assert list(await next_set(published)) == ["b"]


async def test_a_broken_edit_keeps_the_previous_targets_until_fixed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The error is logged with the fix, nothing is published, and the fixed file is published again."""
    path = tmp_path / "agg.yaml"
    path.write_text(config("a", "b"))
    source = StaticSource(path, poll_interval=FAST_POLL)
    async with running(source) as published:
        assert list(await next_set(published)) == ["a", "b"]
        path.write_text(config("a", "b") + "  - {name: c, urll: 'http://c/mcp'}\n")
        record = await wait_for_log(caplog, "unknown key 'urll'")
        assert record.levelno == logging.ERROR
        assert "target #3 ('c')" in record.getMessage()
        assert "Still serving the previous 2 targets" in record.getMessage()
        await anyio.sleep(10 * FAST_POLL)
        with pytest.raises(anyio.WouldBlock):
            published.receive_nowait()
        assert list(source.config.targets) == ["a", "b"]
        path.write_text(config("a", "b", "c"))
        assert list(await next_set(published)) == ["a", "b", "c"]
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1


async def test_a_half_written_empty_file_is_not_an_empty_catalogue(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An editor truncating the file before writing it leaves the targets served."""
    path = tmp_path / "agg.yaml"
    path.write_text(config("a"))
    async with running(StaticSource(path, poll_interval=FAST_POLL)) as published:
        await next_set(published)
        path.write_text("")
        await wait_for_log(caplog, "the file is empty")
        path.write_text(config("a", "b"))
        assert list(await next_set(published)) == ["a", "b"]


async def test_a_deleted_file_keeps_the_targets_until_it_returns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Removing the file is logged, and writing it again is picked up."""
    path = tmp_path / "agg.yaml"
    path.write_text(config("a"))
    async with running(StaticSource(path, poll_interval=FAST_POLL)) as published:
        await next_set(published)
        path.unlink()
        await wait_for_log(caplog, "Cannot read the aggregator config")
        path.write_text(config("b"))
        assert list(await next_set(published)) == ["b"]


async def test_an_edit_that_changes_nothing_publishes_nothing(tmp_path: Path) -> None:
    """Comments and reformatting leave the catalogue alone; the next real change is the next publication."""
    path = tmp_path / "agg.yaml"
    path.write_text(config("a"))
    async with running(StaticSource(path, poll_interval=FAST_POLL)) as published:
        await next_set(published)
        path.write_text("# a comment\n" + config("a").replace("targets:\n", "targets:\n\n"))
        await anyio.sleep(10 * FAST_POLL)
        path.write_text(config("b"))
        assert list(await next_set(published)) == ["b"]


async def test_a_settings_change_updates_config_and_republishes(tmp_path: Path) -> None:
    """The consumer can read the new prefix from `config` when the same targets are published again."""
    path = tmp_path / "agg.yaml"
    path.write_text(config("a"))
    source = StaticSource(path, poll_interval=FAST_POLL)
    seen: list[str] = []

    def publish(targets: Targets) -> None:
        seen.append(source.config.prefix)
        send.send_nowait(targets)

    send, receive = anyio.create_memory_object_stream[Targets](10)
    with send, receive:
        async with anyio.create_task_group() as group:
            group.start_soon(source.run, publish)
            await next_set(receive)
            path.write_text(config("a", prefix="never"))
            assert list(await next_set(receive)) == ["a"]
            group.cancel_scope.cancel()
    assert seen == ["always", "never"]


async def test_a_changed_policy_is_republished(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Editing one target's policy publishes the set with the new policy and logs it as changed."""
    caplog.set_level(logging.INFO, logger="aggregator.discovery.static")
    path = tmp_path / "agg.yaml"
    path.write_text(config("a", "b"))
    async with running(StaticSource(path, poll_interval=FAST_POLL)) as published:
        await next_set(published)
        path.write_text(config("a", "b").replace("mcp'}", "mcp', exclude: ['*_debug']}", 1))
        targets = await next_set(published)
    assert targets["a"].policy.exclude == ("*_debug",)
    assert targets["b"].policy.exclude == ()
    record = await wait_for_log(caplog, "reloaded")
    assert "added none; removed none; changed a." in record.getMessage()


async def test_a_file_replaced_by_rename_is_noticed_even_with_the_same_size_and_time(tmp_path: Path) -> None:
    """Editors and ConfigMaps swap files atomically: a new inode counts as a change."""
    path = tmp_path / "agg.yaml"
    path.write_text(config("aa"))
    before = path.stat()
    async with running(StaticSource(path, poll_interval=FAST_POLL)) as published:
        await next_set(published)
        replacement = tmp_path / "agg.yaml.new"
        replacement.write_text(config("bb"))
        os.utime(replacement, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert replacement.stat().st_size == before.st_size
        os.replace(replacement, path)
        assert list(await next_set(published)) == ["bb"]

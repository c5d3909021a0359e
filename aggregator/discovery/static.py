"""Targets from a configuration file that may be edited while the aggregator runs.

The file is polled (modification time, size and inode, so an editor's atomic rename counts too) rather than watched
with inotify, which needs no extra dependency and also works on the symlinked files of a mounted Kubernetes
ConfigMap. A changed file that does not validate is logged and ignored: the previous targets stay served, because an
empty catalogue in the middle of an edit would break every connected client.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Final

import anyio.to_thread

from aggregator.config import AggregatorConfig, load_config
from aggregator.discovery import Publish
from aggregator.exceptions import ConfigError

__all__ = ["POLL_INTERVAL", "StaticSource"]

logger = logging.getLogger(__name__)

POLL_INTERVAL: Final = 1.0
"""Seconds between looks at the file: an edit shows within a second, and a stat per second costs nothing."""

_Stamp = tuple[int, int, int, int] | None


def _stamp(path: Path) -> _Stamp:
    try:
        stat = os.stat(path)  # follows symlinks, so a ConfigMap's swapped ..data link shows as a new inode
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size, stat.st_ino, stat.st_dev


class StaticSource:
    """The targets of one aggregator config file, republished whenever a valid edit changes the file.

    The file is read when the source is made, so a bad file fails at start with its `ConfigError`. `config` holds the
    whole configuration last loaded (server name, timeouts, prefix); it is updated before each publication, and an
    edit that changes only those settings is published too, with the same targets.
    """

    def __init__(self, path: Path, *, allow_launch: bool = False, poll_interval: float = POLL_INTERVAL) -> None:
        self.path = path
        self._allow_launch = allow_launch
        self._poll_interval = poll_interval
        self._stamp = _stamp(path)
        self.config: AggregatorConfig = load_config(path, allow_launch)

    async def run(self, publish: Publish) -> None:
        """Publish the targets now, then after every valid change of the file; run until cancelled."""
        publish(self.config.targets)
        while True:
            await anyio.sleep(self._poll_interval)
            config = await anyio.to_thread.run_sync(self._reload)
            if config is not None:
                _log_changes(self.path, self.config, config)
                self.config = config
                publish(config.targets)

    def _reload(self) -> AggregatorConfig | None:
        """The file's configuration if the file changed to a different valid one, else None."""
        stamp = _stamp(self.path)
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        try:
            config = load_config(self.path, self._allow_launch)
        except ConfigError as exc:
            logger.error(
                "%s Still serving the previous %d targets until the file is fixed.", exc, len(self.config.targets)
            )
            return None
        return None if config == self.config else config


def _log_changes(path: Path, old: AggregatorConfig, new: AggregatorConfig) -> None:
    added = sorted(new.targets.keys() - old.targets.keys())
    removed = sorted(old.targets.keys() - new.targets.keys())
    changed = sorted(name for name in new.targets.keys() & old.targets.keys() if new.targets[name] != old.targets[name])
    logger.info(
        "%s reloaded: %d targets; added %s; removed %s; changed %s.",
        path,
        len(new.targets),
        ", ".join(added) or "none",
        ", ".join(removed) or "none",
        ", ".join(changed) or "none",
    )

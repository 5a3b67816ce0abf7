"""What every mailpipe process does about its place in the OS at start.

Owns: raising the soft descriptor limit to the hard one (logged once); the
``[process] user``/``group`` switch: started as root, a process binds its ports
and then hands the data directory to that user and runs as it (a warning line
when root has no user to switch to); a child of ``serve`` arranging to die with
its parent (``core.procs.die_with_parent``, armed again after a change of user,
which clears it).

Must not: switch user before the listeners are bound, or leave supplementary
groups of root behind.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import resource
import sys

from mailpipe.core import procs
from mailpipe.core.config import Config
from mailpipe.ops.datadir import StartupError

log = logging.getLogger("mailpipe.process")

ROOT_WARNING = ("running as root: set [process] user (and group) in the configuration, e.g. "
                'user = "mailpipe", to run as that user once the ports are bound')


def raise_descriptor_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit; log both once; return the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            log.warning("descriptor limit: cannot raise %d to %d (%s)", soft, hard, exc)
            return soft
    log.info("descriptor limit: %d%s", hard, f" (raised from {soft})" if soft != hard else " (the hard limit)")
    return hard


def watch_parent() -> None:
    """In a child of ``serve``: die with the parent; exit now if it is gone already."""
    expected = os.environ.pop(procs.PARENT_ENV, "")
    if not expected.isdigit():
        return
    if not procs.die_with_parent(int(expected)):
        print(f"mailpipe: parent process {expected} is gone; exiting", file=sys.stderr)
        sys.exit(1)
    _expected_parent.append(int(expected))


_expected_parent: list[int] = []      # set once by watch_parent, read by switch_user


def is_child() -> bool:
    return bool(_expected_parent) or procs.PARENT_ENV in os.environ


def target_ids(config: Config) -> tuple[int, int] | None:
    """(uid, gid) to run as, or None when no switch is due (not root, or no user set)."""
    user = config.process.user
    if os.geteuid() != 0 or user is None:
        return None
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        raise StartupError(f"[process] user = {user!r}: no such user") from None
    return entry.pw_uid, _group_id(config.process.group, entry.pw_gid)


def warn_if_root(config: Config) -> None:
    """One warning line when root has no user to switch to (not repeated by serve's children)."""
    if os.geteuid() == 0 and config.process.user is None and not is_child():
        log.warning(ROOT_WARNING)


def check_serve(config: Config) -> None:
    """What ``serve`` cannot do with a user switch: SO_REUSEPORT joins only sockets of one
    user, so extra ingress children (run as the user) could not share root's ports."""
    if os.geteuid() == 0 and config.process.user is not None and config.ingress.processes > 1:
        raise StartupError("[process] user with [ingress] processes > 1: start serve as that user instead "
                           "(ports below 1024 need CAP_NET_BIND_SERVICE, as in the systemd units)")


def _group_id(group: str | None, default: int) -> int:
    if group is None:
        return default
    try:
        return grp.getgrgid(int(group)).gr_gid if group.isdigit() else grp.getgrnam(group).gr_gid
    except KeyError:
        raise StartupError(f"[process] group = {group!r}: no such group") from None


def hand_over(path: os.PathLike[str] | str, uid: int, gid: int) -> int:
    """Make `uid:gid` own the data directory and everything in it; return how many entries changed."""
    changed = 0
    for root, dirs, files in os.walk(path):
        for name in [".", *dirs, *files]:
            entry = os.path.join(root, name)
            st = os.lstat(entry)
            if (st.st_uid, st.st_gid) != (uid, gid):
                os.lchown(entry, uid, gid)
                changed += 1
    return changed


def switch_user(uid: int, gid: int) -> None:
    """Run as uid/gid from now on (no way back), still dying with the parent if a child."""
    os.setgroups([gid])
    os.setgid(gid)
    os.setuid(uid)
    if _expected_parent and not procs.die_with_parent(_expected_parent[0]):
        sys.exit(1)
    log.info("running as uid %d, gid %d", uid, gid)


def drop_privileges(config: Config, ids: tuple[int, int] | None) -> None:
    """After binding: hand the data directory over to ``ids`` and run as them (None: no switch)."""
    if ids is None:
        return
    hand_over(config.data_dir, *ids)
    switch_user(*ids)

"""Fresh namespaces for one submission spawned from a warm worker.

A warm worker (see :mod:`.worker`, ``--warm``) runs inside bubblewrap with just
two capabilities, CAP_SYS_ADMIN and CAP_SETPCAP, in its own user namespace, and
never runs student code itself. For each submission it forks a process that
calls :func:`enter_submission_namespaces`, which gives that process:

* its own mount namespace, with a fresh tmpfs home (the assignment's support
  files copied in) and a fresh tmpfs /tmp, so nothing one submission writes is
  visible to the next;
* its own PID namespace, in which the submission's program is PID 1, so it
  cannot see or signal the warm worker or an earlier submission, and killing
  it from the grader ends every process it started;
* no capabilities at all (empty bounding set, no_new_privs), as in the cold
  sandbox.

This runs Linux system calls through ctypes: only mount and unshare, each of
which bubblewrap itself has already made available inside the sandbox.
"""

from __future__ import annotations

import ctypes
import os
import shutil
from pathlib import Path

CLONE_NEWNS = 0x00020000
CLONE_NEWPID = 0x20000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_REMOUNT, MS_BIND, MS_MOVE = 0x20, 0x1000, 0x2000
MS_REC, MS_PRIVATE = 0x4000, 0x40000
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_LAST_CAP = 63

_libc = ctypes.CDLL(None, use_errno=True)


class IsolationError(OSError):
    """The warm worker cannot give a submission its own namespaces here."""


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise IsolationError(errno, f"{what}: {os.strerror(errno)}")


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(
        _libc.mount(
            source.encode(), target.encode(), fstype.encode() if fstype else None, ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {fstype or ''} on {target}",
    )


def unshare_for_submission() -> None:
    """New mount and PID namespaces; the next child forked is PID 1 in the new one."""
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWPID), "unshare")


def enter_submission_namespaces(home: Path, support: Path, tmpfs_bytes: int) -> None:
    """Called in the first process of the new PID namespace, before any student code."""
    _mount("none", "/", None, MS_REC | MS_PRIVATE)  # our mounts stay ours
    flags = MS_NOSUID | MS_NODEV
    _mount("tmpfs", str(home), "tmpfs", flags, f"size={tmpfs_bytes},mode=0755")
    _fresh_tmp(home, flags, tmpfs_bytes)
    _mount("proc", "/proc", "proc", flags | MS_NOEXEC)  # shows this PID namespace only
    copy_support_files(support, home)
    os.chdir(home)
    drop_all_capabilities()


def _fresh_tmp(home: Path, flags: int, tmpfs_bytes: int) -> None:
    """A new, empty /tmp that still shows the read-only Python installation where it lives under /tmp.

    (A course checked out under /tmp has its virtualenv there; a plain tmpfs over
    /tmp would hide it.) The new tmpfs is prepared beside the home, the Python
    directories are bound into it read-only, and then it is moved onto /tmp.
    """
    from autograder.grade.sandbox import python_roots

    import autograder

    staging = home / ".fresh-tmp"
    staging.mkdir()
    _mount("tmpfs", str(staging), "tmpfs", flags, f"size={tmpfs_bytes},mode=1777")
    for root in [*python_roots(), Path(autograder.__file__).resolve().parent]:
        if root.is_relative_to("/tmp"):
            target = staging / root.relative_to("/tmp")
            target.mkdir(parents=True, exist_ok=True)
            _mount(str(root), str(target), None, MS_BIND)
            _mount("none", str(target), None, MS_REMOUNT | MS_BIND | MS_RDONLY | flags)
    _mount(str(staging), "/tmp", None, MS_MOVE)
    staging.rmdir()


def copy_support_files(support: Path, home: Path) -> None:
    """Copy file contents only: the home may belong to another user (a container's tmpfs)."""
    for src in sorted(support.rglob("*")):
        dest = home / src.relative_to(support)
        if src.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
        elif src.is_file():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
    (home / "tmp").mkdir(exist_ok=True)


def drop_all_capabilities() -> None:
    for cap in range(_LAST_CAP + 1):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() != 22:  # EINVAL: no such cap
            _check(-1, f"drop capability {cap} from the bounding set")

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    header, data = Header(_LINUX_CAPABILITY_VERSION_3, 0), (Data * 2)()
    _check(_libc.capset(ctypes.byref(header), ctypes.byref(data)), "capset")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")

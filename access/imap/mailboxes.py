"""Mailbox-level IMAP commands: SELECT, EXAMINE, CREATE, DELETE, RENAME, (UN)SUBSCRIBE, LIST, LSUB, STATUS, APPEND.

Owns: validating mailbox names (modified UTF-7, no path traversal, RFC 3501
5.1), LIST/LSUB wildcard matching with the "." delimiter and SPECIAL-USE
attributes (RFC 6154), and the replies of these commands.

Must not: touch Maildir files except through ``mailstore.folders`` and
``mailstore.mailbox``.
"""

from __future__ import annotations

import re
import time
from typing import Callable
from email.utils import parsedate_tz

from mailpipe.access.imap import grammar, replies
from mailpipe.access.imap.grammar import Atom, Spooled, Syntax, quote
from mailpipe.access.imap.selected import View
from mailpipe.access.imap.session import Refused
from mailpipe.access.imap.states import State
from mailpipe.mailstore import folders, mailbox, uidlist
from mailpipe.mailstore.folders import DELIMITER, FolderError

MAX_NAME = 255
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f/\\*%]")   # controls, path separators, LIST wildcards


def mailbox_name(token) -> str:
    """A safe folder name from a mailbox argument (INBOX normalised); raises Refused."""
    name = grammar.astring(token)
    if name.upper() == "INBOX":
        return "INBOX"
    try:
        grammar.mutf7_decode(name)
    except Syntax:
        raise Refused(replies.NO_BAD_NAME) from None
    parts = name.split(DELIMITER)
    if (not name or len(name) > MAX_NAME or _FORBIDDEN.search(name) or name.startswith("~")
            or any(p in ("", "..") for p in parts)):
        raise Refused(replies.NO_BAD_NAME)
    return name


def _path(s, name: str):
    try:
        return folders.path_of(s.root, name)
    except FolderError:
        raise Refused(replies.NO_BAD_NAME) from None


def _existing(s, name: str):
    path = _path(s, name)
    if not (path / "cur").is_dir():
        raise Refused(replies.NO_MAILBOX)
    return path


# -- SELECT / EXAMINE ---------------------------------------------------------------------

def _open(s, cmd, readonly: bool) -> bytes:
    if len(cmd.args) < 1:
        raise Syntax("SELECT needs a mailbox")
    s.view = None
    path = _existing(s, mailbox_name(cmd.args[0]))
    view = View(path, readonly)
    view.open()
    s.view = view
    flags = " ".join(list(mailbox.SYSTEM_FLAGS) + ["$Forwarded"] + [k for k in view.keywords if k])
    lines = [f"FLAGS ({flags})",
             f"OK [PERMANENTFLAGS ({flags} \\*)] Flags permitted" if not readonly
             else "OK [PERMANENTFLAGS ()] Read-only mailbox",
             f"{len(view.uids)} EXISTS", f"{len(view.recent)} RECENT"]
    unseen = next((i + 1 for i, uid in enumerate(view.uids) if "S" not in view.letters[uid]), None)
    if unseen is not None:
        lines.append(f"OK [UNSEEN {unseen}] First unseen")
    lines += [f"OK [UIDVALIDITY {view.validity}] UIDs valid", f"OK [UIDNEXT {view.next_uid}] Predicted next UID"]
    code = "[READ-ONLY]" if readonly else "[READ-WRITE]"
    return b"".join(replies.untagged(x) for x in lines) + replies.tagged(cmd.tag, "OK", f"{code} {replies.OK_DONE}")


def cmd_select(s, cmd) -> bytes:
    return _open(s, cmd, readonly=False)


def cmd_examine(s, cmd) -> bytes:
    return _open(s, cmd, readonly=True)


# -- CREATE / DELETE / RENAME / SUBSCRIBE ------------------------------------------------

def _one_name(cmd, count: int = 1) -> list:
    if len(cmd.args) != count:
        raise Syntax(f"{cmd.name} needs {count} mailbox name(s)")
    return list(cmd.args)


def _do(s, cmd, action) -> bytes:
    try:
        action()
    except FolderError as exc:
        text = str(exc)
        reply = {"exists": replies.NO_EXISTS, "no such folder": replies.NO_MAILBOX,
                 "INBOX cannot be deleted": replies.NO_INBOX_DELETE}.get(text, replies.NO_BAD_NAME)
        raise Refused(reply) from None
    return s.updates() + replies.tagged(cmd.tag, "OK", replies.OK_DONE)


def cmd_create(s, cmd) -> bytes:
    raw = grammar.astring(_one_name(cmd)[0]).rstrip(DELIMITER)
    name = mailbox_name(Atom(raw) if raw else b"")
    return _do(s, cmd, lambda: folders.create(s.root, name))


def cmd_delete(s, cmd) -> bytes:
    name = mailbox_name(_one_name(cmd)[0])
    if s.view is not None and s.view.path == _path(s, name) and folders.exists(s.root, name):
        s.view = None                       # the selected mailbox goes: back to AUTHENTICATED
        s.state = State.AUTHENTICATED
    return _do(s, cmd, lambda: folders.delete(s.root, name))


def cmd_rename(s, cmd) -> bytes:
    old, new = (mailbox_name(t) for t in _one_name(cmd, 2))
    return _do(s, cmd, lambda: folders.rename(s.root, old, new))


def cmd_subscribe(s, cmd) -> bytes:
    name = mailbox_name(_one_name(cmd)[0])
    return _do(s, cmd, lambda: folders.set_subscribed(s.root, name, True))


def cmd_unsubscribe(s, cmd) -> bytes:
    name = mailbox_name(_one_name(cmd)[0])
    return _do(s, cmd, lambda: folders.set_subscribed(s.root, name, False))


# -- LIST / LSUB -----------------------------------------------------------------------------

def pattern_regex(pattern: str) -> re.Pattern:
    """list-mailbox wildcards: "*" matches anything, "%" anything but the delimiter."""
    out = []
    for ch in pattern:
        out.append(".*" if ch == "*" else "[^.]*" if ch == "%" else re.escape(ch))
    return re.compile("^" + "".join(out) + "$", re.S)


def _matches(rx: re.Pattern, name: str) -> bool:
    if name == "INBOX":
        return any(rx.match(v) for v in ("INBOX", "inbox", "Inbox"))
    return bool(rx.match(name))


def _list_args(cmd) -> tuple[str, str, bool]:
    args = list(cmd.args)
    special_only = False
    if args and isinstance(args[0], list):   # LIST-EXTENDED selection options
        special_only = any(isinstance(t, Atom) and t.upper == "SPECIAL-USE" for t in args.pop(0))
    if len(args) < 2:
        raise Syntax("LIST needs reference and pattern")
    ref, pattern = grammar.astring(args[0]), grammar.astring(args[1]) if not isinstance(args[1], list) else ""
    return ref, pattern, special_only


def _attributes(name: str, names: set[str], exists: bool) -> list[str]:
    attrs = [] if exists else ["\\Noselect"]
    has_kids = any(n.startswith(name + DELIMITER) for n in names)
    attrs.append("\\HasChildren" if has_kids else "\\HasNoChildren")
    use = folders.special_use(name)
    if use:
        attrs.append(use)
    return attrs


def _all_names(s) -> tuple[set[str], set[str]]:
    real = set(folders.list_folders(s.root))
    implied: set[str] = set()
    for name in real:
        parts = name.split(DELIMITER)
        implied.update(DELIMITER.join(parts[:i]) for i in range(1, len(parts)))
    return real, implied - real


def cmd_list(s, cmd, lsub: bool = False) -> bytes:
    ref, pattern, special_only = _list_args(cmd)
    verb = "LSUB" if lsub else "LIST"
    if pattern == "":
        line = f'{verb} (\\Noselect) "{DELIMITER}" ""'
        return replies.untagged(line) + replies.tagged(cmd.tag, "OK", replies.OK_DONE)
    rx = pattern_regex(ref + pattern)
    real, implied = _all_names(s)
    names = real | implied
    candidates = set(folders.subscriptions(s.root)) if lsub else names
    out = []
    for name in sorted(candidates, key=lambda n: (n != "INBOX", n)):
        if not _matches(rx, name):
            continue
        attrs = _attributes(name, names, name in real)
        if special_only and not folders.special_use(name):
            continue
        out.append(replies.untagged(f'{verb} ({" ".join(attrs)}) "{DELIMITER}" '.encode() + quote(name)))
    return b"".join(out) + replies.tagged(cmd.tag, "OK", replies.OK_DONE)


def cmd_lsub(s, cmd) -> bytes:
    return cmd_list(s, cmd, lsub=True)


# -- STATUS ---------------------------------------------------------------------------------

STATUS_ITEMS = ("MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN")


def cmd_status(s, cmd) -> bytes:
    if len(cmd.args) != 2 or not isinstance(cmd.args[1], list):
        raise Syntax("STATUS needs a mailbox and a list")
    name = mailbox_name(cmd.args[0])
    wanted = [grammar.atom(t).upper() for t in cmd.args[1]]
    if any(w not in STATUS_ITEMS for w in wanted):
        raise Syntax("unknown STATUS item")
    state = mailbox.scan(_existing(s, name))
    values = {"MESSAGES": len(state.messages), "RECENT": sum(m.sub == "new" for m in state.messages),
              "UIDNEXT": state.next_uid, "UIDVALIDITY": state.validity,
              "UNSEEN": sum("S" not in m.letters for m in state.messages)}
    body = " ".join(f"{w} {values[w]}" for w in wanted)
    line = b"STATUS " + quote(name) + f" ({body})".encode()
    return s.updates() + replies.untagged(line) + replies.tagged(cmd.tag, "OK", replies.OK_DONE)


# -- APPEND -----------------------------------------------------------------------------------

def parse_datetime(text: str) -> float:
    """date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE."""
    parsed = parsedate_tz(text.strip().replace("-", " ", 2))
    if parsed is None or parsed[9] is None:
        raise Syntax("invalid date-time")
    from email.utils import mktime_tz
    return float(mktime_tz(parsed))


def cmd_append(s, cmd) -> bytes:
    args = list(cmd.args)
    if len(args) < 2:
        raise Syntax("APPEND needs a mailbox and a message")
    name = mailbox_name(args.pop(0))
    flags = [grammar.atom(t) for t in args.pop(0)] if isinstance(args[0], list) else []
    when = parse_datetime(grammar.astring(args.pop(0))) if len(args) == 2 else None
    message = args[0] if len(args) == 1 else None
    if not isinstance(message, (bytes, Spooled)):
        raise Syntax("APPEND needs the message as a literal")
    path = _path(s, name)
    if not (path / "cur").is_dir():
        raise Refused(replies.NO_TRYCREATE)
    letters = mailbox.letters_of(path, [f for f in flags if f.lower() != "\\recent"])
    mtime = when if when is not None else time.time()
    if isinstance(message, Spooled):       # a large message the shell already wrote to tmp/
        if not message.path:
            raise Refused(replies.NO_STORE)    # it could not be written (logged by the shell)
        validity, uid = mailbox.add_file(path, message.path, letters, mtime)
    else:
        validity, uid = mailbox.add_message(path, message, letters, mtime)
    return s.updates() + replies.tagged(cmd.tag, "OK", f"[APPENDUID {validity} {uid}] {replies.OK_DONE}")


HANDLERS: dict[str, Callable[..., bytes]] = {
    "SELECT": cmd_select, "EXAMINE": cmd_examine, "CREATE": cmd_create, "DELETE": cmd_delete,
    "RENAME": cmd_rename, "SUBSCRIBE": cmd_subscribe, "UNSUBSCRIBE": cmd_unsubscribe,
    "LIST": cmd_list, "LSUB": cmd_lsub, "STATUS": cmd_status, "APPEND": cmd_append,
}

__all__ = ["HANDLERS", "mailbox_name", "uidlist"]

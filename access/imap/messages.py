"""Commands on the selected mailbox: FETCH, STORE, SEARCH, COPY, MOVE, EXPUNGE, UID ..., CHECK, CLOSE, UNSELECT.

Owns: resolving sequence sets through the session's ``View``, setting \\Seen
on non-PEEK body fetches, flag arithmetic for STORE, UIDPLUS response codes
(COPYUID, UID EXPUNGE) and MOVE (RFC 6851).

Must not: parse MIME (``access.imap.mime``) or render FETCH items (``access.imap.fetch``).
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from typing import Any, Callable, Iterator

from mailpipe.access.imap import fetch, grammar, mime, replies, search
from mailpipe.access.imap.grammar import Atom, Syntax
from mailpipe.access.imap.mailboxes import _path, mailbox_name
from mailpipe.access.imap.session import Outcome, Refused
from mailpipe.mailstore import mailbox

_parsed: OrderedDict = OrderedDict()
_parsed_lock = threading.Lock()
PARSED_CACHE = 256
STREAM_AFTER = 20    #: FETCH of more bodies than this is written message by message


def _load(view, uid: int) -> tuple[bytes, mime.Part] | None:
    msg = view.msgs.get(uid)
    if msg is None:
        return None
    key = (str(view.path), msg.base)
    with _parsed_lock:
        hit = _parsed.get(key)
        if hit is not None:
            _parsed.move_to_end(key)
            return hit
    data = mailbox.read_message(view.path, msg)
    if data is None:
        return None
    result = (data, mime.parse(data))
    with _parsed_lock:
        _parsed[key] = result
        if len(_parsed) > PARSED_CACHE:
            _parsed.popitem(last=False)
    return result


_envelopes: OrderedDict = OrderedDict()
ENVELOPE_CACHE = 200_000


def _load_header(view, uid: int) -> tuple[bytes, mime.Part] | None:
    """Only the top-level header, parsed (the body is left empty)."""
    msg = view.msgs.get(uid)
    if msg is None:
        return None
    with _parsed_lock:
        hit = _parsed.get((str(view.path), msg.base))
    if hit is not None:
        return hit
    header = mailbox.read_header(view.path, msg)
    return None if header is None else (header, mime.parse(header))


def _envelope(view, uid: int, loaded) -> bytes:
    msg = view.msgs.get(uid)
    key = (str(view.path), msg.base if msg else "")
    with _parsed_lock:
        hit = _envelopes.get(key)
    if hit is not None:
        return hit
    value = fetch.envelope(loaded[1])
    with _parsed_lock:
        _envelopes[key] = value
        if len(_envelopes) > ENVELOPE_CACHE:
            _envelopes.popitem(last=False)
    return value


def _uids(s, token, by_uid: bool) -> list[int]:
    ranges = grammar.sequence_set(token)
    try:
        return s.view.resolve(ranges, by_uid)
    except IndexError:
        raise Syntax("Invalid sequence number") from None


# -- FETCH ----------------------------------------------------------------------------------

def cmd_fetch(s, cmd, by_uid: bool = False) -> bytes | Outcome:
    if len(cmd.args) < 2:
        raise Syntax("FETCH needs a sequence set and items")
    uids = _uids(s, cmd.args[0], by_uid)
    items, need = fetch.parse_items(cmd.args[1:2])
    if by_uid and "UID" not in items:
        items.insert(0, "UID")
    view = s.view
    head = s.updates(allow_expunge=by_uid)
    lines = _fetch_lines(view, uids, items, need, cmd.tag)
    if need == fetch.NEED_FULL and len(uids) > STREAM_AFTER:   # bodies: sent message by message
        return Outcome(head, stream=lines, tag=cmd.tag)
    return head + b"".join(lines)


def _fetch_lines(view, uids: list[int], items: list, need: int, tag: str) -> Iterator[bytes]:
    missing = 0
    for uid in uids:
        if view.seq_of(uid) is None:
            continue
        line = _fetch_one(view, uid, items, need)
        missing += not line
        yield line
    if missing:   # expunged by another session meanwhile (RFC 5530 EXPUNGEISSUED)
        yield replies.tagged(tag, "NO", replies.NO_EXPUNGED)
    else:
        yield replies.tagged(tag, "OK", replies.OK_DONE)


_ENVELOPE_ONLY = ("FLAGS", "UID", "RFC822.SIZE", "INTERNALDATE", "ENVELOPE")


def _fetch_one(view, uid: int, items: list, need: int) -> bytes:
    if need == fetch.NEED_HEADER and all(i in _ENVELOPE_ONLY for i in items) and \
            (str(view.path), getattr(view.msgs.get(uid), "base", "")) in _envelopes:
        loaded: tuple[bytes, mime.Part | None] | None = (b"", None)     # every header item is the cached envelope
    else:
        loaded = _load(view, uid) if need == fetch.NEED_FULL else _load_header(view, uid) if need else None
    if need and loaded is None:
        return b""
    sets_seen = not view.readonly and "S" not in view.letters.get(uid, "") and any(
        (isinstance(i, fetch.Section) and not i.peek) or i in ("RFC822", "RFC822.TEXT") for i in items)
    if sets_seen:
        _set_letters(view, uid, view.letters.get(uid, "") + "S")
    parts = [_item(view, uid, item, loaded) for item in items]
    if sets_seen and "FLAGS" not in items:
        parts.append(_item(view, uid, "FLAGS", loaded))
    return f"* {view.seq_of(uid)} FETCH (".encode() + b" ".join(parts) + b")\r\n"


def _item(view, uid: int, item, loaded) -> bytes:
    msg = view.msgs.get(uid)
    if item == "ENVELOPE":
        return b"ENVELOPE " + _envelope(view, uid, loaded)
    if isinstance(item, fetch.Section):
        data = fetch.section_bytes(loaded[1], loaded[0], item)
        value = grammar.literal(fetch.partial(data, item)) if data is not None else b"NIL"
        return item.label().encode() + b" " + value
    if item == "UID":
        return f"UID {uid}".encode()
    if item == "FLAGS":
        return f"FLAGS ({' '.join(view.flags(uid))})".encode()
    if item == "RFC822.SIZE":
        return f"RFC822.SIZE {msg.size(view.path) if msg else 0}".encode()
    if item == "INTERNALDATE":
        return b"INTERNALDATE " + fetch.internaldate(mailbox.internal_date(view.path, msg) if msg else 0)
    data, root = loaded
    rendered = {
        "ENVELOPE": lambda: _envelope(view, uid, loaded),
        "BODYSTRUCTURE": lambda: fetch.bodystructure(root, True),
        "BODY": lambda: fetch.bodystructure(root, False),
        "RFC822": lambda: grammar.literal(data),
        "RFC822.HEADER": lambda: grammar.literal(root.header),
        "RFC822.TEXT": lambda: grammar.literal(root.body),
    }[item]()
    return item.encode() + b" " + rendered


def _set_letters(view, uid: int, letters: str) -> bool:
    msg = view.msgs.get(uid)
    letters = "".join(sorted(set(letters)))
    if msg is None or not mailbox.set_letters(view.path, msg, letters):
        return False
    view.letters[uid] = letters
    return True


# -- STORE ----------------------------------------------------------------------------------

def cmd_store(s, cmd, by_uid: bool = False) -> bytes:
    if len(cmd.args) < 3:
        raise Syntax("STORE needs a sequence set, an item and flags")
    view = s.view
    if view.readonly:
        raise Refused(replies.NO_READ_ONLY)
    uids = _uids(s, cmd.args[0], by_uid)
    op = grammar.atom(cmd.args[1]).upper()
    mode, silent = op.removesuffix(".SILENT"), op.endswith(".SILENT")
    if mode not in ("FLAGS", "+FLAGS", "-FLAGS"):
        raise Syntax("invalid STORE item")
    flag_tokens = cmd.args[2] if isinstance(cmd.args[2], list) else list(cmd.args[2:])
    names = [grammar.atom(t) for t in flag_tokens if grammar.atom(t).lower() != "\\recent"]
    given = mailbox.letters_of(view.path, names)
    if len(given) < len({n.lower() for n in names}):
        raise Refused(replies.NO_TOO_MANY_KEYWORDS)
    out = [s.updates(allow_expunge=by_uid)]
    view.keywords = mailbox.keywords(view.path)
    for uid in uids:
        old = view.letters.get(uid, "")
        new = given if mode == "FLAGS" else (old + given if mode == "+FLAGS" else
                                             "".join(c for c in old if c not in given))
        if "".join(sorted(set(new))) != old:
            _set_letters(view, uid, new)
        if not silent and view.seq_of(uid) is not None:
            out.append(replies.untagged(view.flag_line(uid, with_uid=by_uid)))
    return b"".join(out) + replies.tagged(cmd.tag, "OK", replies.OK_DONE)


# -- SEARCH ---------------------------------------------------------------------------------

def cmd_search(s, cmd, by_uid: bool = False) -> bytes:
    view = s.view
    out = s.updates(allow_expunge=by_uid)
    top_uid = view.uids[-1] if view.uids else 0
    try:
        pred, needs_file = search.compile_search(cmd.args, len(view.uids), top_uid)
    except search.BadCharset:
        raise Refused("[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset") from None
    hits = []
    for seq, uid in enumerate(view.uids, 1):
        msg = view.msgs.get(uid)
        cand = search.Candidate(
            seq, uid, {f.lower() for f in view.flags(uid)}, uid in view.recent,
            msg.size(view.path) if msg else 0,
            functools.partial(_internal_of, view, msg),
            functools.partial(_part_of, _load, view, uid),
            functools.partial(_part_of, _load_header, view, uid),
            key=(str(view.path), msg.base) if msg else None)
        if pred(cand):
            hits.append(uid if by_uid else seq)
    line = "SEARCH" + "".join(f" {n}" for n in hits)
    return out + replies.untagged(line) + replies.tagged(cmd.tag, "OK", replies.OK_DONE)


# -- COPY / MOVE ------------------------------------------------------------------------------

def _copy(s, cmd, by_uid: bool) -> tuple[list[int], list[int], int]:
    if len(cmd.args) != 2:
        raise Syntax("COPY needs a sequence set and a mailbox")
    uids = _uids(s, cmd.args[0], by_uid)
    dest = _path(s, mailbox_name(cmd.args[1]))
    if not (dest / "cur").is_dir():
        raise Refused(replies.NO_TRYCREATE)
    view = s.view
    names = mailbox.keywords(view.path)
    src_ok, dst, validity = [], [], 0
    for uid in uids:
        loaded = _load(view, uid)
        msg = view.msgs.get(uid)
        if loaded is None or msg is None:
            continue
        letters = mailbox.letters_of(dest, mailbox.flags_of(view.letters.get(uid, ""), names))
        validity, new_uid = mailbox.add_message(dest, loaded[0], letters, mailbox.internal_date(view.path, msg))
        src_ok.append(uid)
        dst.append(new_uid)
    return src_ok, dst, validity


def _uid_set(uids: list[int]) -> str:
    return ",".join(str(u) for u in uids)


def cmd_copy(s, cmd, by_uid: bool = False) -> bytes:
    src, dst, validity = _copy(s, cmd, by_uid)
    code = f"[COPYUID {validity} {_uid_set(src)} {_uid_set(dst)}] " if src else ""
    return s.updates(allow_expunge=by_uid) + replies.tagged(cmd.tag, "OK", code + replies.OK_DONE)


def cmd_move(s, cmd, by_uid: bool = False) -> bytes:
    if s.view.readonly:
        raise Refused(replies.NO_READ_ONLY)
    src, dst, validity = _copy(s, cmd, by_uid)
    out = [replies.untagged(f"OK [COPYUID {validity} {_uid_set(src)} {_uid_set(dst)}] Moved")] if src else []
    out += _expunge(s.view, src)
    return b"".join(out) + s.updates() + replies.tagged(cmd.tag, "OK", replies.OK_DONE)


# -- EXPUNGE / CLOSE / UNSELECT / CHECK ---------------------------------------------------------

def _expunge(view, uids: list[int]) -> list[bytes]:
    out = []
    for uid in sorted(uids, reverse=True):
        msg = view.msgs.get(uid)
        if msg is not None:
            mailbox.unlink(view.path, msg)
        seq = view.forget(uid)
        if seq is not None:
            out.append(replies.untagged(f"{seq} EXPUNGE"))
    return out


def _deleted(view, within: set[int] | None = None) -> list[int]:
    return [u for u in view.uids if "T" in view.letters.get(u, "") and (within is None or u in within)]


def cmd_expunge(s, cmd, uids: list[int] | None = None) -> bytes:
    view = s.view
    if view.readonly:
        raise Refused(replies.NO_READ_ONLY)
    out = s.updates()
    within = set(uids) if uids is not None else None
    return out + b"".join(_expunge(view, _deleted(view, within))) + replies.tagged(cmd.tag, "OK", replies.OK_DONE)


def cmd_close(s, cmd) -> bytes:
    view = s.view
    if not view.readonly:
        view.refresh(True)
        for uid in _deleted(view):
            msg = view.msgs.get(uid)
            if msg is not None:
                mailbox.unlink(view.path, msg)
    return replies.tagged(cmd.tag, "OK", replies.OK_DONE)


def cmd_unselect(s, cmd) -> bytes:
    return replies.tagged(cmd.tag, "OK", replies.OK_DONE)


def cmd_check(s, cmd) -> bytes:
    return s.updates() + replies.tagged(cmd.tag, "OK", replies.OK_DONE)


# -- UID -------------------------------------------------------------------------------------

def cmd_uid(s, cmd) -> bytes | Outcome:
    if not cmd.args or not isinstance(cmd.args[0], Atom):
        raise Syntax("UID needs a command")
    sub = cmd.args[0].upper
    inner = type(cmd)(cmd.tag, sub, cmd.args[1:])
    if sub == "EXPUNGE":
        if len(inner.args) != 1:
            raise Syntax("UID EXPUNGE needs a UID set")
        return cmd_expunge(s, inner, _uids(s, inner.args[0], True))
    handler = {"FETCH": cmd_fetch, "STORE": cmd_store, "SEARCH": cmd_search,
               "COPY": cmd_copy, "MOVE": cmd_move}.get(sub)
    if handler is None:
        raise Syntax("Unknown UID command")
    return handler(s, inner, by_uid=True)


def _internal_of(view, msg: mailbox.Message | None) -> float:
    return mailbox.internal_date(view.path, msg) if msg else 0.0


def _part_of(load: Callable[[Any, int], tuple[bytes, mime.Part] | None], view, uid: int) -> mime.Part | None:
    loaded = load(view, uid)
    return loaded[1] if loaded else None


HANDLERS: dict[str, Callable[..., Any]] = {
    "FETCH": cmd_fetch, "STORE": cmd_store, "SEARCH": cmd_search, "COPY": cmd_copy, "MOVE": cmd_move,
    "EXPUNGE": cmd_expunge, "CLOSE": cmd_close, "UNSELECT": cmd_unselect, "CHECK": cmd_check,
    "UID": cmd_uid,
}

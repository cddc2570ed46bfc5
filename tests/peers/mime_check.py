#!/usr/bin/env python3
"""Strict MIME checker for the mail nhacviec sends.

Usage: mime_check.py FILE_OR_MAILDIR...

A Maildir argument means every file in DIR/new and DIR/cur (sorted by name,
which for smtp_peer.py's Maildir is arrival order). For each message one JSON
object is printed on its own line (UTF-8, not \\u-escaped):

  {"file": path, "ok": bool, "errors": [str, ...],
   "message_id": str|null, "to": [addr-spec, ...], "from": addr-spec|null,
   "from_name": display name|null, "subject": decoded str|null,
   "date": header str|null, "date_iso": ISO 8601|null,
   "text": decoded text/plain|null, "html": decoded text/html|null,
   "headers": {name: [decoded value, ...]} of the top-level headers}

"text" and "html" have their line endings turned into \\n.

Exit status: 0 when every message is ok, 1 when any is not, 2 on a usage
error or when the arguments hold no message at all (an empty Maildir is more
likely a broken test than a pass).

Python's own parser (policy=default) is the reader here because it is a real,
strict one that we did not write: it records what it had to repair as defects,
and every defect is an error.
"""

import email.parser
import email.policy
import json
import os
import re
import sys

REQUIRED_HEADERS = ("Message-ID", "Date", "From", "To", "Subject", "MIME-Version")
# RFC 5322 3.6: these may appear at most once.
SINGLE_HEADERS = ("Message-ID", "Date", "From", "To", "Cc", "Subject", "MIME-Version",
                  "Reply-To", "Sender")
MSG_ID_RE = re.compile(r"^<[^<>@\s]+@[^<>@\s]+>$")
UNDECODED_RE = re.compile("[\udc80-\udcff\ufffd]")
MAX_LINE = 998  # RFC 5322 2.1.1, octets excluding CRLF


class UsageError(Exception):
    pass


def message_files(args):
    files = []
    for arg in args:
        if os.path.isdir(arg):
            subdirs = [os.path.join(arg, d) for d in ("new", "cur")]
            if not any(os.path.isdir(d) for d in subdirs):
                raise UsageError(f"{arg} is a directory but not a Maildir (no new/ or cur/)")
            for d in subdirs:
                if os.path.isdir(d):
                    files += sorted(os.path.join(d, n) for n in os.listdir(d)
                                    if not n.startswith("."))
        elif os.path.isfile(arg):
            files.append(arg)
        else:
            raise UsageError(f"no such file or directory: {arg}")
    return files


def check_bytes(raw, errors):
    """Checks on the octets themselves, which the parser would quietly repair."""
    end = re.search(rb"\r?\n\r?\n", raw)
    header_block = raw[:end.start()] if end else raw
    if end is None:
        errors.append("no blank line ends the header block")
    for n, line in enumerate(header_block.split(b"\n"), 1):
        if not line.isascii():
            bad = line.rstrip(b"\r")[:80].decode("utf-8", "backslashreplace")
            errors.append(f"header line {n} is not ASCII: {bad}")
            break

    lines = raw.split(b"\n")
    if lines[-1] != b"":
        errors.append("last line does not end in CRLF")
    bare_lf = [n for n, line in enumerate(lines[:-1], 1) if not line.endswith(b"\r")]
    if bare_lf:
        errors.append(f"{len(bare_lf)} line(s) end in a bare LF, first at line {bare_lf[0]}")
    bare_cr = [n for n, line in enumerate(lines, 1) if b"\r" in line[:-1]]
    if bare_cr:
        errors.append(f"bare CR inside line {bare_cr[0]}")
    long = [(n, len(line.rstrip(b"\r"))) for n, line in enumerate(lines, 1)
            if len(line.rstrip(b"\r")) > MAX_LINE]
    if long:
        errors.append(f"{len(long)} line(s) over {MAX_LINE} octets, first at line "
                      f"{long[0][0]} ({long[0][1]} octets)")


def clean(value):
    """Undecodable bytes reach us as lone surrogates (surrogateescape); they
    cannot be written as UTF-8 and JSON readers (serde_json) reject them, so
    they become U+FFFD. The errors list has already said what was wrong."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if isinstance(value, list):
        return [clean(v) for v in value]
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    return value


def part_label(part, index):
    return f"part {index} ({part.get_content_type()})"


def check_defects(msg, errors):
    """Defects of every part and of every header in it."""
    for i, part in enumerate(msg.walk()):
        where = "message" if i == 0 else part_label(part, i)
        for d in part.defects:
            errors.append(f"{where}: parser defect {type(d).__name__}: {d}")
        for name, raw_value in part.raw_items():
            if not str(raw_value).isascii():
                errors.append(f"{where}: header {name} is not ASCII")
            try:
                value = part[name]  # the structured header; parsing records defects
            except Exception as e:  # noqa: BLE001 - any failure is a finding
                errors.append(f"{where}: header {name} does not parse: {type(e).__name__}: {e}")
                continue
            for d in getattr(value, "defects", ()):
                errors.append(f"{where}: header {name} defect {type(d).__name__}: {d}")
            # An encoded word whose bytes are not valid in its charset decodes
            # to surrogates or U+FFFD without any defect being recorded.
            if UNDECODED_RE.search(str(value)):
                errors.append(f"{where}: header {name} holds undecodable bytes")


def find_alternative(msg, errors):
    """The multipart/alternative body, possibly inside mixed/related wrappers
    (attachments, inline images); their first part is the body by RFC 2046/2387."""
    node = msg
    while node.get_content_type() in ("multipart/mixed", "multipart/related"):
        parts = node.get_payload()
        if not parts:
            errors.append(f"{node.get_content_type()} has no parts")
            return None
        node = parts[0]
    if node.get_content_type() != "multipart/alternative":
        errors.append(f"body is {node.get_content_type()}, expected multipart/alternative")
        return None
    return node


def decode_text(part, label, errors):
    charset = part.get_param("charset")
    if charset is None or str(charset).lower() != "utf-8":
        errors.append(f"{label}: charset is {charset!r}, expected utf-8")
    try:
        # errors="strict": the default replaces undecodable bytes silently.
        text = part.get_content(errors="strict")
    except Exception as e:  # noqa: BLE001
        errors.append(f"{label}: does not decode: {type(e).__name__}: {e}")
        return None
    # Line endings were checked on the raw bytes; whether CRLF survives
    # decoding depends on the transfer encoding, so give callers plain \n.
    return text.replace("\r\n", "\n")


def header_str(msg, name, errors):
    try:
        value = msg[name]
    except Exception as e:  # noqa: BLE001
        errors.append(f"header {name} does not parse: {type(e).__name__}: {e}")
        return None
    return None if value is None else str(value)


def empty_result(path):
    # Every key is always present, so the Rust side can deserialise strictly.
    return {"file": path, "ok": False, "errors": [], "message_id": None, "to": [],
            "from": None, "from_name": None, "subject": None, "date": None,
            "date_iso": None, "text": None, "html": None, "headers": {}}


def check_message(path):
    result = empty_result(path)
    errors = result["errors"]
    with open(path, "rb") as f:
        raw = f.read()
    check_bytes(raw, errors)
    try:
        msg = email.parser.BytesParser(policy=email.policy.default).parsebytes(raw)
    except Exception as e:  # noqa: BLE001
        errors.append(f"does not parse: {type(e).__name__}: {e}")
        return result

    for name in dict.fromkeys(msg.keys()):
        result["headers"][name] = [str(v) for v in msg.get_all(name, [])]
    for name in REQUIRED_HEADERS:
        if name not in msg:
            errors.append(f"missing header {name}")
    for name in SINGLE_HEADERS:
        if len(msg.get_all(name, [])) > 1:
            errors.append(f"header {name} appears {len(msg.get_all(name))} times")

    mid = header_str(msg, "Message-ID", errors)
    if mid is not None:
        mid = mid.strip()
        result["message_id"] = mid
        if not MSG_ID_RE.match(mid):
            errors.append(f"Message-ID is not <left@right>: {mid!r}")
    if msg["MIME-Version"] is not None and str(msg["MIME-Version"]).strip() != "1.0":
        errors.append(f"MIME-Version is {str(msg['MIME-Version'])!r}, expected 1.0")

    result["subject"] = header_str(msg, "Subject", errors)
    date = header_str(msg, "Date", errors)
    result["date"] = date
    if date is not None:
        dt = getattr(msg["Date"], "datetime", None)
        if dt is None:
            errors.append(f"Date does not parse: {date!r}")
        else:
            result["date_iso"] = dt.isoformat()
    try:
        if msg["To"] is not None:
            result["to"] = [a.addr_spec for a in msg["To"].addresses]
            if not result["to"]:
                errors.append("To holds no address")
        if msg["From"] is not None:
            senders = msg["From"].addresses
            if len(senders) != 1:
                errors.append(f"From holds {len(senders)} addresses, expected 1")
            if senders:
                result["from"] = senders[0].addr_spec
                result["from_name"] = senders[0].display_name or None
    except Exception as e:  # noqa: BLE001
        errors.append(f"address header does not parse: {type(e).__name__}: {e}")

    alt = find_alternative(msg, errors)
    alt_parts = alt.get_payload() if alt is not None else []
    if alt is not None:
        types = [p.get_content_type() for p in alt_parts]
        if types != ["text/plain", "text/html"]:
            errors.append(f"multipart/alternative holds {types}, expected ['text/plain', 'text/html']")
        for part in alt_parts:
            ctype = part.get_content_type()
            if ctype == "text/plain" and result["text"] is None:
                result["text"] = decode_text(part, "text/plain part", errors)
            elif ctype == "text/html" and result["html"] is None:
                result["html"] = decode_text(part, "text/html part", errors)

    # Every other leaf must decode too (e.g. attachments), and decoding runs
    # before the defect check because base64 damage is recorded only then.
    for i, part in enumerate(msg.walk()):
        if part.is_multipart() or any(part is p for p in alt_parts):
            continue
        if part.get_content_maintype() == "text":
            decode_text(part, part_label(part, i), errors)
        else:
            try:
                part.get_content()
            except Exception as e:  # noqa: BLE001
                errors.append(f"{part_label(part, i)}: does not decode: {type(e).__name__}: {e}")

    check_defects(msg, errors)
    result["ok"] = not errors
    return result


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        files = message_files(argv)
        if not files:
            raise UsageError("no message found in " + " ".join(argv))
    except UsageError as e:
        print(f"mime_check: {e}", file=sys.stderr)
        return 2
    all_ok = True
    for path in files:
        try:
            result = check_message(path)
        except Exception as e:  # noqa: BLE001 - report, and go on with the rest
            result = empty_result(path)
            result["errors"].append(f"checker failed: {type(e).__name__}: {e}")
        all_ok &= result["ok"]
        sys.stdout.write(json.dumps(clean(result), ensure_ascii=False) + "\n")
    sys.stdout.flush()
    return 0 if all_ok else 1


if __name__ == "__main__":
    # Output is UTF-8 whatever the caller's locale (the Rust side reads UTF-8).
    sys.stdout.reconfigure(encoding="utf-8")
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""A real SMTP server (aiosmtpd) for nhacviec's integration tests.

We test against a real protocol implementation rather than a hand-written
fake, so that our own misunderstandings of SMTP cannot hide in both sides.

Usage:
  smtp_peer.py --maildir DIR [--host 127.0.0.1] [--port 0] [--ready-file PATH]
               [--tls-cert FILE --tls-key FILE [--require-starttls | --implicit-tls]]
               [--auth USER:PASSWORD] [--fault-rate P] [--seed S] [--verbose]

Once listening it prints exactly one line, "LISTENING <port>", to stdout.

Every accepted DATA transaction becomes one file in DIR/new with the bytes
exactly as received (after SMTP dot-unstuffing; no headers are added), and
DIR/log.jsonl gets one JSON object per line, flushed at once:
  {"event":"accepted","mail_from":..,"rcpt_tos":[..],"message_id":"<..>"|null,
   "file":"DIR/new/NAME","size":N,"tls":bool,"auth_user":str|null,"ts":..}
  {"event":"fault","fault":KIND,"mail_from":..,"rcpt":..,"ts":..,...}

Faults are chosen by the recipient's local part, so one server can serve
healthy and faulty recipients at once. KIND in the log is given in brackets:
  fail451rcpt  451 at RCPT TO, every time                      [451-rcpt]
  fail550rcpt  550 at RCPT TO, every time                      [550-rcpt]
  drop         connection closed at RCPT TO, no reply           [drop-rcpt]
  dropfirst<N> connection closed at RCPT TO for the first N attempts
               carrying this recipient, then accepted           [drop-rcpt]
  fail451data  451 after DATA, every time                       [451-data]
  fail554data  554 after DATA, every time                       [554-data]
  flaky<N>     451 after DATA for the first N DATA attempts carrying this
               recipient, then accepted                         [flaky-451-data]
  slow<S>      stored and logged as accepted at once, but the 250 reply to
               DATA comes S seconds later (S may be fractional)  [slow-data]
--fault-rate P adds a 451 after DATA with probability P for any transaction,
drawn from random.Random(--seed)                                [random-451-data]
"""

import argparse
import asyncio
import email.parser
import email.policy
import itertools
import json
import logging
import os
import random
import re
import resource
import signal
import socket
import ssl
import sys
import threading
import time
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword, TLSSetupException

# What the server calls itself in its greeting. Set explicitly because the
# default, socket.getfqdn(), may wait on DNS, which this machine lacks.
SERVER_NAME = "nhacviec-test-peer"

log = logging.getLogger("smtp_peer")

FLAKY_RE = re.compile(r"flaky(\d+)")
DROPFIRST_RE = re.compile(r"dropfirst(\d+)")
SLOW_RE = re.compile(r"slow(\d+(?:\.\d+)?)")


def local_part(address):
    """Lower-cased local part: fault keywords match whatever case a client keeps."""
    return (address.rpartition("@")[0] if "@" in address else address).lower()


def clean(text):
    """Make text safe for UTF-8 JSON: aiosmtpd hands over non-UTF-8 bytes of an
    address as lone surrogates, which would make json.dump's output unwritable."""
    if text is None:
        return None
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def header_message_id(raw):
    """The Message-ID header as sent (unfolded), or None."""
    # compat32 never raises on a malformed header; this is a log, not a checker.
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
    value = headers.get("Message-ID")
    if value is None:
        return None
    return clean(" ".join(str(value).split()))


class Maildir:
    """Writes messages in Maildir layout (tmp/ then rename into new/).

    Not mailbox.Maildir: that one fsyncs every message, which we do not need
    for test data and which slows bulk tests down."""

    def __init__(self, path):
        self.path = os.path.abspath(path)
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(self.path, sub), exist_ok=True)
        self._counter = itertools.count()
        self._host = socket.gethostname().replace("/", "_").replace(":", "_")
        self._log = open(os.path.join(self.path, "log.jsonl"), "a", encoding="utf-8")

    def store(self, raw):
        name = f"{time.time_ns()}.P{os.getpid()}Q{next(self._counter)}.{self._host}"
        tmp = os.path.join(self.path, "tmp", name)
        final = os.path.join(self.path, "new", name)
        with open(tmp, "wb") as f:
            f.write(raw)
        os.rename(tmp, final)
        return final

    def log(self, event, **fields):
        record = {"event": event, **fields, "ts": time.time()}
        # Tests tail this file while the server runs: one whole line per write.
        self._log.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._log.flush()

    def close(self):
        self._log.close()


class FaultyHandler:
    """aiosmtpd handler: stores mail and injects faults chosen by recipient."""

    def __init__(self, maildir, fault_rate, seed, implicit_tls):
        self.maildir = maildir
        self.fault_rate = fault_rate
        self.rng = random.Random(seed)
        self.implicit_tls = implicit_tls
        # DATA attempts seen per flaky recipient; kept for the server's lifetime
        # so that a client's retries on new connections are counted too.
        self.flaky_attempts = {}
        # RCPT attempts seen per dropfirst recipient, likewise.
        self.drop_attempts = {}

    async def handle_exception(self, error):
        if isinstance(error, TLSSetupException):
            # A client that rejects our certificate is routine in these tests:
            # one line, not aiosmtpd's full traceback.
            cause = error.__cause__ or error
            log.warning("TLS handshake failed: %s: %s", type(cause).__name__, cause)
            return "454 4.7.0 TLS handshake failed"
        # Anything else is a bug in this peer: show it in full.
        log.exception("SMTP session error")
        return f"500 5.3.0 Peer error ({type(error).__name__}: {error})"

    def _common(self, server, session, envelope):
        return {
            "mail_from": clean(envelope.mail_from),
            "tls": self.implicit_tls or server._tls_protocol is not None,
            "auth_user": clean(_login_name(session)),
        }

    def _fault(self, kind, server, session, envelope, rcpt, **extra):
        self.maildir.log(
            "fault", fault=kind, **self._common(server, session, envelope),
            rcpt=clean(rcpt), **extra,
        )

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        lp = local_part(address)
        first = DROPFIRST_RE.search(lp)
        if first:
            # A connection that drops a few times and then recovers: the retry must
            # get through, under the same Message-ID.
            seen = self.drop_attempts.get(clean(address), 0) + 1
            self.drop_attempts[clean(address)] = seen
            drop_now = seen <= int(first.group(1))
        else:
            drop_now = "drop" in lp
        if drop_now:
            self._fault("drop-rcpt", server, session, envelope, address)
            # abort(), not close(): no TLS close_notify and no flush, as when a
            # server dies or a middlebox cuts the line. aiosmtpd then writes the
            # reply below into a closed transport, where it is discarded.
            server.transport.abort()
            return "421 4.4.2 connection dropped (injected)"
        if "fail451rcpt" in lp:
            self._fault("451-rcpt", server, session, envelope, address)
            return "451 4.3.0 Temporary failure at RCPT (injected fail451rcpt)"
        if "fail550rcpt" in lp:
            self._fault("550-rcpt", server, session, envelope, address)
            return "550 5.1.1 Mailbox unavailable (injected fail550rcpt)"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content
        message_id = header_message_id(raw)
        rcpts = list(envelope.rcpt_tos)

        def fault(kind, rcpt, **extra):
            self._fault(kind, server, session, envelope, rcpt,
                        rcpt_tos=[clean(r) for r in rcpts], message_id=message_id, **extra)

        for rcpt in rcpts:
            if "fail451data" in local_part(rcpt):
                fault("451-data", rcpt)
                return "451 4.3.0 Temporary failure after DATA (injected fail451data)"
        for rcpt in rcpts:
            if "fail554data" in local_part(rcpt):
                fault("554-data", rcpt)
                return "554 5.6.0 Message rejected (injected fail554data)"

        # Count every flaky recipient of this attempt before deciding, so that
        # two flaky recipients in one transaction both advance.
        flaky_hit = None
        for rcpt in rcpts:
            m = FLAKY_RE.search(local_part(rcpt))
            if m:
                limit = int(m.group(1))
                attempt = self.flaky_attempts.get(rcpt, 0) + 1
                self.flaky_attempts[rcpt] = attempt
                if attempt <= limit and flaky_hit is None:
                    flaky_hit = (rcpt, attempt, limit)
        if flaky_hit:
            rcpt, attempt, limit = flaky_hit
            fault("flaky-451-data", rcpt, attempt=attempt, limit=limit)
            return f"451 4.3.0 Temporary failure after DATA (injected flaky, attempt {attempt} of {limit})"

        if self.fault_rate > 0 and self.rng.random() < self.fault_rate:
            fault("random-451-data", rcpts[0])
            return "451 4.3.0 Temporary failure after DATA (injected --fault-rate)"

        delay = None
        delayed_rcpt = None
        for rcpt in rcpts:
            m = SLOW_RE.search(local_part(rcpt))
            if m:
                delay = float(m.group(1))
                delayed_rcpt = rcpt
                break

        # Store before any delay: when the client gives up and disconnects,
        # aiosmtpd cancels this coroutine, and the point of slow<S> is that the
        # message was accepted all the same (a retry then duplicates it).
        path = self.maildir.store(raw)
        if delay is not None:
            fault("slow-data", delayed_rcpt, seconds=delay)
        self.maildir.log(
            "accepted",
            **self._common(server, session, envelope),
            rcpt_tos=[clean(r) for r in rcpts],
            message_id=message_id,
            file=path,
            size=len(raw),
        )
        if delay is not None:
            await asyncio.sleep(delay)
        return "250 2.0.0 OK queued"


def _login_name(session):
    data = getattr(session, "auth_data", None)
    if isinstance(data, LoginPassword):
        return data.login.decode("utf-8", "surrogateescape")
    return None


def make_authenticator(user, password):
    user_b, password_b = user.encode(), password.encode()

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user_b
            and auth_data.password == password_b
        )
        # handled=False lets aiosmtpd send the 535 itself; with handled=True it
        # sends nothing and the client waits for a reply that never comes.
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    return authenticator


class PeerController(Controller):
    """Controller that can bind port 0 and accept large bursts of clients."""

    def _create_server(self):
        async def create():
            server = await self.loop.create_server(
                self._factory_invoker,
                host=self.hostname,
                port=self.port,
                ssl=self.ssl_context,
                # The default backlog (100) refuses connections when a test
                # opens hundreds at once.
                backlog=1024,
                reuse_address=True,
            )
            # With port 0 the kernel chose one. Controller.start() connects to
            # self.port right after this to warm the server up, so set it here.
            self.port = server.sockets[0].getsockname()[1]
            return server

        return create()


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1",
                   help="IP address to bind (an IP literal, so port 0 gives one socket)")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--ready-file", help="also write the port here (atomically) once listening")
    p.add_argument("--maildir", required=True, help="Maildir to store messages and log.jsonl in")
    p.add_argument("--tls-cert", help="PEM certificate (chain) for STARTTLS / implicit TLS")
    p.add_argument("--tls-key", help="PEM private key for --tls-cert")
    p.add_argument("--require-starttls", action="store_true",
                   help="refuse mail commands before STARTTLS")
    p.add_argument("--implicit-tls", action="store_true",
                   help="TLS from the first byte (SMTPS, port 465 style) instead of STARTTLS")
    p.add_argument("--auth", metavar="USER:PASSWORD",
                   help="offer AUTH PLAIN/LOGIN and require it before MAIL")
    p.add_argument("--fault-rate", type=float, default=0.0,
                   help="probability of a 451 after DATA for any transaction")
    p.add_argument("--seed", type=int, default=0, help="seed for --fault-rate")
    p.add_argument("--verbose", action="store_true", help="log the SMTP dialogue to stderr")
    a = p.parse_args(argv)
    if bool(a.tls_cert) != bool(a.tls_key):
        p.error("--tls-cert and --tls-key go together")
    if (a.require_starttls or a.implicit_tls) and not a.tls_cert:
        p.error("--require-starttls and --implicit-tls need --tls-cert/--tls-key")
    if a.require_starttls and a.implicit_tls:
        p.error("--require-starttls and --implicit-tls exclude each other")
    if a.auth is not None and ":" not in a.auth:
        p.error("--auth takes USER:PASSWORD")
    if not 0.0 <= a.fault_rate <= 1.0:
        p.error("--fault-rate must be within 0..1")
    return a


def raise_fd_limit():
    # Each client costs a descriptor; many concurrent ones hit a low soft limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)

    logging.basicConfig(stream=sys.stderr, format="smtp_peer: %(levelname)s %(message)s")
    # aiosmtpd warns on every connection when AUTH runs without TLS, which is
    # exactly what some tests ask for; keep stderr for real problems.
    logging.getLogger("mail.log").setLevel(logging.INFO if args.verbose else logging.ERROR)
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    raise_fd_limit()

    tls = None
    if args.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)

    kwargs = {}
    if args.auth is not None:
        user, _, password = args.auth.partition(":")
        kwargs.update(
            authenticator=make_authenticator(user, password),
            auth_required=True,
            # Only a STARTTLS server can insist on TLS before AUTH: a plain one
            # has none to offer, and under implicit TLS aiosmtpd does not know
            # the line is already encrypted and would never advertise AUTH.
            auth_require_tls=bool(tls) and not args.implicit_tls,
        )
    if tls and not args.implicit_tls:
        kwargs.update(tls_context=tls, require_starttls=args.require_starttls)

    maildir = Maildir(args.maildir)
    handler = FaultyHandler(maildir, args.fault_rate, args.seed, args.implicit_tls)
    controller = PeerController(
        handler,
        hostname=args.host,
        port=args.port,
        ssl_context=tls if args.implicit_tls else None,
        server_hostname=SERVER_NAME,
        **kwargs,
    )

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    controller.start()
    port = controller.port
    if args.ready_file:
        # Write then rename, so a test polling for the file never reads half a port.
        tmp = f"{args.ready_file}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.ready_file)
    sys.stdout.write(f"LISTENING {port}\n")
    sys.stdout.flush()

    # The server runs in the controller's thread; the main thread only waits
    # for SIGTERM/SIGINT (whose handlers run here) to stop it cleanly.
    stop.wait()
    controller.stop()
    maildir.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

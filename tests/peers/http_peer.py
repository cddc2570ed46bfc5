#!/usr/bin/env python3
"""A real HTTP server standing in for the Telegram Bot API and for an agency's webhook
receiver, for nhacviec's integration tests.

Usage: http_peer.py --log FILE --ready-file FILE [--secret S]

Every request is appended to FILE as one JSON line (header names lower-cased):
  {"path": ..., "headers": {...}, "body": <parsed JSON or text>, "status": <reply>,
   "signature_ok": true|false|null}
signature_ok checks X-Nhacviec-Signature against HMAC-SHA256(--secret, body).

Faults are chosen by the Telegram chat_id or the webhook's webhook_id:
  contains "throttle<N>"  first request answered 429 with retry_after N (Telegram's JSON
                          parameters.retry_after, and a Retry-After header), then 200
  contains "blocked"      403 every time (a user who blocked the bot)
  contains "fail500"      500 on the first request, then 200
  contains "reject400"    400 every time
"""

import argparse
import hashlib
import hmac
import json
import os
import re
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SEEN = {}
LOCK = threading.Lock()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--log", required=True)
    parser.add_argument("--ready-file", required=True)
    parser.add_argument("--secret", default="")
    args = parser.parse_args()
    log = open(args.log, "a", encoding="utf-8")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_):
            pass

        def do_POST(self):
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
            target = ""
            if isinstance(body, dict):
                target = str(body.get("chat_id") or body.get("webhook_id") or "")
            sig = self.headers.get("X-Nhacviec-Signature")
            signature_ok = None
            if sig is not None:
                expected = "sha256=" + hmac.new(args.secret.encode(), raw, hashlib.sha256).hexdigest()
                signature_ok = hmac.compare_digest(sig, expected)
            with LOCK:
                count = SEEN.get(target, 0) + 1
                SEEN[target] = count
            status, reply, extra = 200, {"ok": True, "result": {"message_id": count}}, {}
            throttle = re.search(r"throttle(\d+)", target)
            if throttle and count == 1:
                wait = int(throttle.group(1))
                status = 429
                reply = {"ok": False, "error_code": 429, "description": "Too Many Requests",
                         "parameters": {"retry_after": wait}}
                extra = {"Retry-After": str(wait)}
            elif "blocked" in target:
                status, reply = 403, {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}
            elif "fail500" in target and count == 1:
                status, reply = 500, {"ok": False, "description": "injected 500"}
            elif "reject400" in target:
                status, reply = 400, {"ok": False, "description": "injected 400"}
            data = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in extra.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
            entry = {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                     "body": body, "status": status, "signature_ok": signature_ok}
            with LOCK:
                log.write(json.dumps(entry, ensure_ascii=False) + "\n")
                log.flush()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    tmp = args.ready_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(tmp, args.ready_file)
    signal.signal(signal.SIGTERM, lambda *_: (server.shutdown(), sys.exit(0)))
    server.serve_forever()


if __name__ == "__main__":
    main()

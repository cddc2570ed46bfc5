#!/usr/bin/env python3
"""A static HTTP server for the source tests: serves the files of --dir with an ETag (the
SHA-256 of the content) and Last-Modified, answers 304 to a matching If-None-Match, asks for
a bearer token when --token is given (401 otherwise), and logs each request as one JSON line
to --log: {"path", "status", "if_none_match", "authorization"}.

Usage: etag_server.py --dir DIR --port-file FILE [--token TOKEN] --log FILE
The port it listens on (chosen by the OS) is written to --port-file once it is ready.
"""
import argparse, email.utils, hashlib, http.server, json, os


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--token")
    ap.add_argument("--log", required=True)
    args = ap.parse_args()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def record(self, status):
            with open(args.log, "a") as f:
                f.write(json.dumps({"path": self.path, "status": status,
                                    "if_none_match": self.headers.get("If-None-Match"),
                                    "authorization": self.headers.get("Authorization")}) + "\n")

        def do_GET(self):
            if args.token and self.headers.get("Authorization") != f"Bearer {args.token}":
                self.record(401)
                self.send_response(401)
                self.end_headers()
                return
            path = os.path.join(args.dir, self.path.lstrip("/").split("?")[0])
            if not os.path.isfile(path):
                self.record(404)
                self.send_response(404)
                self.end_headers()
                return
            body = open(path, "rb").read()
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            if self.headers.get("If-None-Match") == etag:
                self.record(304)
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return
            self.record(200)
            self.send_response(200)
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", email.utils.formatdate(os.path.getmtime(path), usegmt=True))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()

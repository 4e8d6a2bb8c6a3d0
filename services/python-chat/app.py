#!/usr/bin/env python3
"""Chat rooms for WebSocket clients, written with Python's standard library only.

The application never touches a WebSocket: `wsgw bridge` POSTs every WebSocket event here, and this app
answers over HTTP. Broadcasts go through the connection service's HTTP API (`wsgw connections`).

    python3 services/python-chat/app.py            # listens on 127.0.0.1:3000 (PORT to change)
    npx wsgw bridge --target http://127.0.0.1:3000/events --secret "$WSGW_SECRET"

Clients connect to ws://localhost:8000/ws?room=lobby&name=ann and send text; everyone in the room gets
{"type":"message","room":"lobby","name":"ann","text":"..."}.

Environment: PORT (3000), WSGW_API (http://127.0.0.1:8004), WSGW_API_TOKEN (bearer token of the API,
if it has one), WSGW_SECRET (verify the bridge's signatures; unsigned or forged requests get 401).
"""
import hashlib
import hmac
import json
import os
import re
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API = os.environ.get("WSGW_API", "http://127.0.0.1:8004").rstrip("/")
API_TOKEN = os.environ.get("WSGW_API_TOKEN", "")
SECRET = os.environ.get("WSGW_SECRET", "")
SAFE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SIGNED_HEADERS = ["wsgw-timestamp", "wsgw-event", "wsgw-conn", "wsgw-gateway", "wsgw-route", "wsgw-binary", "wsgw-seq"]

# who is who: filled on open, used on message and close (one process; see the README for several)
people = {}
people_lock = threading.Lock()


def signature_ok(headers, body):
    """Wsgw-Signature: v1=HMAC-SHA256(secret, each signed header value + "\\n", then the body)."""
    if not SECRET:
        return True
    canonical = "".join((headers.get(h) or "") + "\n" for h in SIGNED_HEADERS).encode() + body
    expected = "v1=" + hmac.new(SECRET.encode(), canonical, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers.get("wsgw-signature") or "")


def broadcast(topic, payload):
    """POST /topics/<topic>/messages on the connection service."""
    req = urllib.request.Request(f"{API}/topics/{topic}/messages", data=json.dumps(payload).encode(), method="POST")
    req.add_header("Content-Type", "text/plain; charset=utf-8")
    if API_TOKEN:
        req.add_header("Authorization", f"Bearer {API_TOKEN}")
    try:
        urllib.request.urlopen(req, timeout=5).read()
    except urllib.error.URLError as err:
        print(f"broadcast to {topic} failed: {err}", file=sys.stderr, flush=True)


class Events(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the bridge reuses connections

    def answer(self, status, body=b"", headers=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        if not signature_ok(headers, body):
            return self.answer(401, b"bad signature")
        event, conn = headers.get("wsgw-event"), headers.get("wsgw-conn", "")

        if event == "open":
            info = json.loads(body)
            q = urllib.parse.parse_qs(info.get("query", ""))
            room = (q.get("room") or ["lobby"])[0]
            name = (q.get("name") or [f"guest-{conn[-4:]}"])[0][:32]
            if not SAFE.match(room):
                # refuse: the bridge closes the connection with 4400
                return self.answer(400, b"room must be 1-64 characters of A-Z a-z 0-9 _ -")
            with people_lock:
                people[conn] = (room, name)
            welcome = json.dumps({"type": "welcome", "id": conn, "room": room, "name": name}).encode()
            broadcast(f"room-{room}", {"type": "join", "room": room, "name": name, "from": conn})
            return self.answer(200, welcome, {"Content-Type": "text/plain; charset=utf-8", "Wsgw-Subscribe": f"room-{room}"})

        with people_lock:
            who = people.get(conn)
        if event == "message" and who:
            room, name = who
            if headers.get("wsgw-binary") == "1":
                return self.answer(204)
            text = body.decode("utf-8", "replace")[:2000]
            broadcast(f"room-{room}", {"type": "message", "room": room, "name": name, "text": text, "from": conn})
            return self.answer(204)
        if event == "close" and who:
            with people_lock:
                people.pop(conn, None)
            broadcast(f"room-{who[0]}", {"type": "leave", "room": who[0], "name": who[1], "from": conn})
        return self.answer(204)

    def log_message(self, fmt, *args):  # quiet: one line per request is noise at chat rates
        pass


def main():
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "3000"))), Events)
    print(json.dumps({"msg": "python chat app listening", "port": server.server_address[1]}), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Chat rooms for WebSocket clients, written with Python's standard library only.

The application never touches a WebSocket: `wsgw bridge` POSTs every WebSocket event here, and this app
answers over HTTP. A message's answer is its broadcast to the room (`Wsgw-Publish`); joins and leaves go
through the connection service's HTTP API (`wsgw connections`).

    python3 services/python-chat/app.py            # listens on 127.0.0.1:3000 (PORT to change)
    npx wsgw bridge --target http://127.0.0.1:3000/events --secret "$WSGW_SECRET"

Clients connect to ws://localhost:8000/ws?room=lobby&name=ann and send text; everyone in the room gets
{"type":"message","room":"lobby","name":"ann","text":"..."}.

The app keeps no state: its answer to `open` sets the connection's room and name as metadata
(`Wsgw-Set-Meta-*`), and every later request carries them back (`Wsgw-Meta`), so any number of app
processes can serve one chat.

Environment: PORT (3000), WSGW_API (http://127.0.0.1:8004), WSGW_API_TOKEN (bearer token of the API,
if it has one), WSGW_SECRET (verify the bridge's signatures; unsigned or forged requests get 401).
"""
import hashlib
import hmac
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API = os.environ.get("WSGW_API", "http://127.0.0.1:8004").rstrip("/")
API_TOKEN = os.environ.get("WSGW_API_TOKEN", "")
SECRET = os.environ.get("WSGW_SECRET", "")
SAFE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
HISTORY_LINES = 50
SIGNED_HEADERS = ["wsgw-timestamp", "wsgw-event", "wsgw-conn", "wsgw-gateway", "wsgw-route", "wsgw-binary", "wsgw-seq"]


def signature_ok(headers, body):
    """Wsgw-Signature: v1=HMAC-SHA256(secret, each signed header value + "\\n", Wsgw-Meta + "\\n" when
    the request has it, then the body)."""
    if not SECRET:
        return True
    canonical = "".join((headers.get(h) or "") + "\n" for h in SIGNED_HEADERS)
    if "wsgw-meta" in headers:
        canonical += headers["wsgw-meta"] + "\n"
    canonical = canonical.encode() + body
    expected = "v1=" + hmac.new(SECRET.encode(), canonical, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers.get("wsgw-signature") or "")


def room_and_name(query, conn):
    """The room and name a connection asked for in its URL's query."""
    q = urllib.parse.parse_qs(query)
    return (q.get("room") or ["lobby"])[0], (q.get("name") or [f"guest-{conn[-4:]}"])[0][:32]


def from_meta(headers):
    """(room, name) from the metadata the request carries (Wsgw-Meta), or None."""
    meta = json.loads(headers.get("wsgw-meta") or "{}")
    return (meta["room"], urllib.parse.unquote(meta.get("name", ""))) if "room" in meta else None


def who(headers, conn):
    """(room, name) from the metadata the request carries. A frame the gateway published before it
    applied the open's answer, posted by another bridge than the open's, has none yet: then the
    connection's record (GET /connections/<id>) tells."""
    known = from_meta(headers)
    if known:
        return known
    try:
        record = json.loads(api_request(f"/connections/{conn}"))
    except urllib.error.URLError:
        return None
    return room_and_name(record.get("query", ""), conn)


def api_request(path, data=None, method="GET"):
    """A request to the connection service's HTTP API, with its token when it has one."""
    req = urllib.request.Request(f"{API}{path}", data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "text/plain; charset=utf-8")
    if API_TOKEN:
        req.add_header("Authorization", f"Bearer {API_TOKEN}")
    return urllib.request.urlopen(req, timeout=5).read()


def last_lines(topic):
    """The room's last chat lines from the topic history (GET /topics/<topic>/history): none when
    history is off (404 history_off) or the API cannot be reached."""
    try:
        kept = json.loads(api_request(f"/topics/{topic}/history?limit={HISTORY_LINES * 2}"))["messages"]
    except (urllib.error.URLError, ValueError, KeyError):
        return []
    lines = []
    for m in kept:
        try:
            line = json.loads(m["data"]) if not m["binary"] else None
        except ValueError:
            line = None  # something else broadcast to the room is not a chat line
        if isinstance(line, dict) and line.get("type") == "message":
            lines.append({"name": line.get("name"), "text": line.get("text"), "from": line.get("from"), "time": m["time"]})
    return lines[-HISTORY_LINES:]


def broadcast(topic, payload):
    """POST /topics/<topic>/messages on the connection service."""
    try:
        api_request(f"/topics/{topic}/messages", json.dumps(payload).encode(), "POST")
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
            room, name = room_and_name(json.loads(body).get("query", ""), conn)
            if not SAFE.match(room):
                # refuse: the bridge closes the connection with 4400
                return self.answer(400, b"room must be 1-64 characters of A-Z a-z 0-9 _ -")
            welcome = json.dumps({"type": "welcome", "id": conn, "room": room, "name": name}).encode()
            # with topic history on, the room's last lines; sent now, so they arrive before the welcome
            earlier = last_lines(f"room-{room}")
            if earlier:
                try:
                    api_request(f"/connections/{conn}/messages", json.dumps({"type": "history", "room": room, "messages": earlier}).encode(), "POST")
                except urllib.error.URLError as err:
                    print(f"history to {conn} failed: {err}", file=sys.stderr, flush=True)
            broadcast(f"room-{room}", {"type": "join", "room": room, "name": name, "from": conn})
            # remembered with the connection, not here: header values are ASCII, so the name is percent-encoded
            return self.answer(200, welcome, {
                "Content-Type": "text/plain; charset=utf-8",
                "Wsgw-Subscribe": f"room-{room}",
                "Wsgw-Set-Meta-Room": room,
                "Wsgw-Set-Meta-Name": urllib.parse.quote(name),
            })

        if event == "message" and headers.get("wsgw-binary") != "1":
            known = who(headers, conn)
            if known and SAFE.match(known[0]):
                room, name = known
                text = body.decode("utf-8", "replace")[:2000]
                line = json.dumps({"type": "message", "room": room, "name": name, "text": text, "from": conn}).encode()
                # the answer itself is the broadcast: no call to the connection service per message
                return self.answer(200, line, {"Content-Type": "text/plain; charset=utf-8", "Wsgw-Publish": f"room-{room}"})
        elif event == "close":
            # a connection the app refused at open has no room in its metadata: nothing to announce
            known = from_meta(headers)
            if known:
                broadcast(f"room-{known[0]}", {"type": "leave", "room": known[0], "name": known[1], "from": conn})
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

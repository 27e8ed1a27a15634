#!/usr/bin/env python3
"""A codeframe agent in Python, standard library only.

It works on a project served by `codeframe serve` the way any agent should:

1. take a run-gate permit before a unit of work (a pause then waits for it);
2. work, renewing the permit while the unit lasts;
3. stop early when a pause begins: the WebSocket event `pause_requested` (or a renewal that
   answers `"pause_requested": true`), save what was done under the permit, release it;
4. while the project is paused, writes are refused (409); after `project_resumed`, take a
   permit again and carry on.

Settings come from the environment: CODEFRAME_URL (default http://127.0.0.1:8080),
CODEFRAME_TOKEN (required), CODEFRAME_PROJECT (default 1), CODEFRAME_AGENT (default py-agent).
It prints one JSON line per step, so a person (or a test) can follow it.
"""
import base64
import json
import os
import socket
import struct
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

BASE = os.environ.get("CODEFRAME_URL", "http://127.0.0.1:8080")
TOKEN = os.environ["CODEFRAME_TOKEN"]
PROJECT = int(os.environ.get("CODEFRAME_PROJECT", "1"))
AGENT = os.environ.get("CODEFRAME_AGENT", "py-agent")
TTL = 10  # seconds a permit lasts unless renewed; renewed every TTL / 3


def report(step, **fields):
    print(json.dumps({"step": step, **fields}), flush=True)


def api(method, path, body=None, permit=None):
    """One HTTP call; returns (status, JSON body or None)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + TOKEN)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if permit is not None:
        req.add_header("Codeframe-Permit", str(permit))
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            text = res.read()
            return res.status, json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        text = e.read()
        return e.code, json.loads(text) if text else None


class Events:
    """Just enough of a WebSocket client (RFC 6455) for codeframe's event stream."""

    def __init__(self, project):
        url = urllib.parse.urlparse(BASE)
        self.sock = socket.create_connection((url.hostname, url.port or 80))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET /ws HTTP/1.1\r\nHost: {url.netloc}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                f"Authorization: Bearer {TOKEN}\r\n\r\n"
            ).encode()
        )
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                sys.exit("the server closed the connection during the WebSocket handshake")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            sys.exit(f"WebSocket refused: {head.decode(errors='replace')}")
        self.send({"type": "subscribe", "project_id": project})

    def send(self, message, opcode=0x1):
        data = message if isinstance(message, bytes) else json.dumps(message).encode()
        mask = os.urandom(4)  # a client masks every frame
        if len(data) < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | len(data))
        else:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, len(data))
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _frame(self):
        """A whole frame from the buffer (opcode, payload), or None if it is not all here yet."""
        if len(self.buf) < 2:
            return None
        opcode, size, at = self.buf[0] & 0x0F, self.buf[1] & 0x7F, 2
        if size == 126:
            if len(self.buf) < 4:
                return None
            size, at = struct.unpack("!H", self.buf[2:4])[0], 4
        elif size == 127:
            if len(self.buf) < 10:
                return None
            size, at = struct.unpack("!Q", self.buf[2:10])[0], 10
        if len(self.buf) < at + size:
            return None
        payload, self.buf = self.buf[at : at + size], self.buf[at + size :]
        return opcode, payload

    def next(self, timeout):
        """The next JSON message, or None when nothing came within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self._frame()
            if frame is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.sock.settimeout(left)
                try:
                    chunk = self.sock.recv(65536)
                except socket.timeout:
                    return None
                if not chunk:
                    raise EOFError("the server closed the event stream")
                self.buf += chunk
                continue
            opcode, payload = frame
            if opcode == 0x9:  # ping: answer, keep reading
                self.send(payload, opcode=0xA)
            elif opcode == 0x8:
                raise EOFError("the server closed the event stream")
            elif opcode == 0x1:
                return json.loads(payload)

    def wait_for(self, kind, timeout):
        """Waits for an event of type `kind`; returns it (None after `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = self.next(left)
            if message is not None and message.get("type") == kind:
                return message
        return None


def work_one_unit(events, unit):
    """One unit of work under a permit; returns when done or when a pause begins."""
    status, permit = api("POST", f"/api/projects/{PROJECT}/permits", {"agent_id": AGENT, "ttl_seconds": TTL})
    if status != 201:
        report("permit_refused", status=status, code=(permit or {}).get("error", {}).get("code"))
        return None
    pid = permit["permit_id"]
    report("permit", permit_id=pid, unit=unit)
    renewed_at = time.monotonic()
    while True:
        # The work itself would go here; meanwhile, listen for a pause.
        event = events.next(timeout=0.2)
        if event is not None and event.get("type") == "pause_requested":
            report("pause_requested", deadline=event["deadline"])
            break
        if time.monotonic() - renewed_at > TTL / 3:
            status, permit = api("POST", f"/api/projects/{PROJECT}/permits/{pid}/renew", {"ttl_seconds": TTL})
            renewed_at = time.monotonic()
            if status != 200 or permit["pause_requested"]:
                report("pause_requested_on_renew", status=status)
                break
    # Finish the unit: record what was done, under the permit (allowed while a pause drains).
    note = {"item_type": "TASK", "content": f"unit {unit}: stopped cleanly for a pause"}
    status, _ = api("POST", f"/api/projects/{PROJECT}/agents/{AGENT}/context", note, permit=pid)
    report("final_write", status=status)
    status, _ = api("DELETE", f"/api/projects/{PROJECT}/permits/{pid}")
    report("released", status=status)
    return pid


def main():
    events = Events(PROJECT)
    if events.wait_for("subscribed", 10) is None:
        sys.exit("no subscription acknowledgement")
    report("ready")
    pid = work_one_unit(events, 1)
    if pid is None:
        return 1
    if events.wait_for("project_paused", 60) is None:
        sys.exit("the pause never completed")
    # Paused: a write is refused, whatever permit is shown.
    note = {"item_type": "TASK", "content": "written while paused"}
    status, body = api("POST", f"/api/projects/{PROJECT}/agents/{AGENT}/context", note, permit=pid)
    report("paused_write", status=status, code=(body or {}).get("error", {}).get("code"))
    if events.wait_for("project_resumed", 120) is None:
        sys.exit("the project was never resumed")
    status, permit = api("POST", f"/api/projects/{PROJECT}/permits", {"agent_id": AGENT})
    report("permit_after_resume", status=status)
    if status == 201:
        api("DELETE", f"/api/projects/{PROJECT}/permits/{permit['permit_id']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

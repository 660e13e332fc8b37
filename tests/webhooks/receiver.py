#!/usr/bin/env python3
"""A webhook receiver for Portico's tests: every delivery is verified with Standard Webhooks'
own library (`standardwebhooks`, pinned in tests/python/requirements.txt), never with code of
ours, recorded, and answered as the test's plan says.

Run it with the test environment's Python (tests/python/.venv/bin/python):

    receiver.py [--port P] [--secret whsec_…]… [PLAN]

It listens on 127.0.0.1 (port P, or one the system picks), prints `READY <port>`, then one JSON
line per request received:

    {"seq", "time" (Unix seconds, when it arrived), "method", "path", "headers" (names in lower
     case), "body", "payload" (the body as JSON, or null), "webhookId", "attempt" (how many
     requests with this webhook-id arrived, this one included), "verified" (by at least one
     secret), "verifiedBy" (the indices of the secrets it verified with), "verifyErrors" (what
     the library said for each other secret), "answered" (the status it answers)}

PLAN, how it answers (200 to everything by default):
    --fail N                  the next N requests answer 500 (or --status)
    --status CODE [--times N] the next N requests (all, without --times) answer CODE
    --fail-first-attempts     the first request of each webhook-id answers 500 (or --status)
    --ok-status CODE          what the other requests answer (default 200)
    --delay-ms MS             every answer waits this long

Commands on standard input, one a line, each acknowledged by `{"ack": <n>, "command": …}`:
    secrets S1 [S2 …]   verify with these secrets from now on (a rotation gives several)
    plan [PLAN]         answer as PLAN says from now on (no flags: 200 to everything)

It exits when its standard input closes, so that a test that dies leaves nothing running.
"""

import argparse
import json
import os
import shlex
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook, WebhookVerificationError


def plan_parser(prog):
    parser = argparse.ArgumentParser(prog=prog, add_help=False, exit_on_error=False)
    parser.add_argument("--fail", type=int, default=0)
    parser.add_argument("--status", type=int)
    parser.add_argument("--times", type=int)
    parser.add_argument("--fail-first-attempts", action="store_true")
    parser.add_argument("--ok-status", type=int, default=200)
    parser.add_argument("--delay-ms", type=int, default=0)
    return parser


class Plan:
    """How the next requests are answered."""

    def __init__(self, args):
        self.failure = args.status if args.status is not None else 500
        if args.fail:
            self.failures_left = args.fail
        elif args.status is not None and not args.fail_first_attempts:
            self.failures_left = args.times  # None: every request
        else:
            self.failures_left = 0
        self.fail_first_attempts = args.fail_first_attempts
        self.ok = args.ok_status
        self.delay = args.delay_ms / 1000

    def answer(self, attempt):
        """The status of a request that is the `attempt`-th of its webhook-id."""
        if self.failures_left is None:
            return self.failure
        if self.failures_left > 0:
            self.failures_left -= 1
            return self.failure
        if self.fail_first_attempts and attempt == 1:
            return self.failure
        return self.ok


class State:
    def __init__(self, secrets, plan):
        self.lock = threading.Lock()
        self.secrets = list(secrets)
        self.plan = plan
        self.seq = 0
        self.attempts = {}

    def emit(self, record):
        # Under the lock: one whole line at a time.
        sys.stdout.write(json.dumps(record, separators=(",", ":")) + "\n")
        sys.stdout.flush()


def verify(secrets, body, headers):
    """The indices of the secrets that verify the request, and what the library said for the others."""
    verified, errors = [], []
    for index, secret in enumerate(secrets):
        try:
            Webhook(secret).verify(body, headers)
            verified.append(index)
        except WebhookVerificationError as error:
            errors.append(f"secret {index}: {error}")
        except Exception as error:  # a malformed header the library does not expect
            errors.append(f"secret {index}: {type(error).__name__}: {error}")
    return verified, errors


def read_body(handler):
    if "chunked" in handler.headers.get("transfer-encoding", "").lower():
        chunks = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("content-length") or 0)
    return handler.rfile.read(length) if length else b""


def handler_for(state):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            self.receive()

        def do_GET(self):
            self.receive()

        def do_PUT(self):
            self.receive()

        def receive(self):
            arrived = time.time()
            body = read_body(self)
            headers = {name.lower(): value for name, value in self.headers.items()}
            webhook_id = headers.get("webhook-id")
            with state.lock:
                state.seq += 1
                attempt = state.attempts.get(webhook_id, 0) + 1
                state.attempts[webhook_id] = attempt
                verified, errors = verify(state.secrets, body, headers)
                status = state.plan.answer(attempt)
                delay = state.plan.delay
                text = body.decode("utf-8", errors="replace")
                try:
                    payload = json.loads(text)
                except ValueError:
                    payload = None
                state.emit(
                    {
                        "seq": state.seq,
                        "time": arrived,
                        "method": self.command,
                        "path": self.path,
                        "headers": headers,
                        "body": text,
                        "payload": payload,
                        "webhookId": webhook_id,
                        "attempt": attempt,
                        "verified": bool(verified),
                        "verifiedBy": verified,
                        "verifyErrors": errors,
                        "answered": status,
                    }
                )
            if delay:
                time.sleep(delay)
            answer = b"ok" if status < 300 else b"not now"
            self.send_response(status)
            self.send_header("content-type", "text/plain")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    return Handler


def main():
    parser = plan_parser("receiver.py")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--secret", action="append", default=[])
    args = parser.parse_args()
    state = State(args.secret, Plan(args))
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler_for(state))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with state.lock:
        sys.stdout.write(f"READY {server.server_address[1]}\n")
        sys.stdout.flush()

    commands = 0
    for line in sys.stdin:
        words = shlex.split(line)
        if not words:
            continue
        commands += 1
        with state.lock:
            try:
                if words[0] == "secrets":
                    state.secrets = words[1:]
                elif words[0] == "plan":
                    plan, unknown = plan_parser("plan").parse_known_args(words[1:])
                    if unknown:
                        raise ValueError(f"unknown arguments {unknown}")
                    state.plan = Plan(plan)
                else:
                    raise ValueError(f"unknown command {words[0]!r}")
                state.emit({"ack": commands, "command": words[0]})
            except (ValueError, argparse.ArgumentError) as error:
                state.emit({"ack": commands, "command": words[0], "error": str(error)})
    # Standard input closed: the test is over, or dead.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()

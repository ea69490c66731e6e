"""Measures a Lambda binary's init time locally: process start to ready.

Hosts a stand-in Lambda Runtime API on loopback, starts the binary with
AWS_LAMBDA_RUNTIME_API pointing at it (plus the environment Lambda and the
function need), and times from spawn to the binary's first
`GET /2018-06-01/runtime/invocation/next`: by then main() has built its
clients and config and the runtime loop is waiting for work. The request is
never answered; the process is killed. One untimed warm-up run first, so the
binary is in the page cache as it is on a warm Lambda host.

    python3 infra/cold_start.py [--runs 10] BINARY...

Prints one line per binary: median, min and max in milliseconds. Run through
infra/lambda-report.sh, which builds the binaries first.
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time

NEXT = b"GET /2018-06-01/runtime/invocation/next"


class FakeRuntimeApi:
    """Accepts connections and notes when the first /next request arrives."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.arrived = None
        self.ready = threading.Event()
        self.held = []
        threading.Thread(target=self._serve, daemon=True).start()

    def reset(self):
        self.arrived = None
        self.ready.clear()
        for conn in self.held:
            conn.close()
        self.held.clear()

    def _serve(self):
        while True:
            conn, _ = self.sock.accept()
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn):
        data = b""
        while b"\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                conn.close()
                return
            data += chunk
        if data.startswith(NEXT) and not self.ready.is_set():
            self.arrived = time.perf_counter()
            self.ready.set()
        # Left unanswered: the binary stays parked in its runtime loop.
        self.held.append(conn)


def environment(port, name):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/psa-bridge/local/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "cold-start",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        # Dummy credentials and a loopback endpoint: init must not need AWS,
        # and nothing may reach it by accident.
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_ENDPOINT_URL": os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
        "TABLE_NAME": "psa-bridge-local",
        "QUEUE_URL": "http://127.0.0.1:4566/000000000000/psa-bridge-local-jobs.fifo",
        "SECRETS_PREFIX": "psa-bridge/local",
        "RUST_LOG": "info",
    }
    return env


def measure_once(api, binary, env, timeout=10.0):
    api.reset()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [binary], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        if not api.ready.wait(timeout):
            proc.kill()
            _, err = proc.communicate()
            raise RuntimeError(
                f"{binary} never asked for an invocation within {timeout}s "
                f"(exit {proc.returncode}): {err.decode(errors='replace')[-2000:]}"
            )
        return (api.arrived - started) * 1000.0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("binaries", nargs="+")
    args = parser.parse_args()
    api = FakeRuntimeApi()
    for binary in args.binaries:
        name = os.path.basename(os.path.dirname(binary)) or os.path.basename(binary)
        env = environment(api.port, name)
        measure_once(api, binary, env)  # warm-up, not counted
        times = [measure_once(api, binary, env) for _ in range(args.runs)]
        print(
            f"{name:<18} init median {statistics.median(times):6.1f} ms"
            f"  (min {min(times):.1f}, max {max(times):.1f}, {args.runs} runs)"
        )
        sys.stdout.flush()


if __name__ == "__main__":
    main()

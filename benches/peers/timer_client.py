"""The client side of `octet-bench-timer serve` (benches/timer.rs): one child process that keeps
octet models loaded and answers one JSON line per request. Standard library only, so every
runner (peers, Python package, serving) can import it.
"""

import json
import subprocess


class OctetServer:
    """`octet-bench-timer serve` in a child process."""

    def __init__(self, timer):
        self.proc = subprocess.Popen([str(timer), "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    @property
    def pid(self):
        return self.proc.pid

    def ask(self, request):
        """Sends one request; its answer, or RuntimeError with the server's message."""
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        if "error" in answer:
            raise RuntimeError(f"octet-bench-timer: {answer['error']}")
        return answer

    def close(self):
        self.proc.stdin.write('{"op":"quit"}\n')
        self.proc.stdin.flush()
        self.proc.wait()

"""The client side of `octet-bench-timer serve` (benches/timer.rs): one child process that keeps
octet models loaded and answers one JSON line per request. Standard library only, so every
runner (peers, Python package, serving) can import it.
"""

import json
import subprocess


class JsonLinesChild:
    """A child process that answers one JSON line per request line (`{"error": ...}` on failure)
    and stops on `{"op":"quit"}`: octet's timer server here, ONNX Runtime's worker
    (ort_worker.OrtWorker)."""

    def __init__(self, cmd, what, env=None):
        self.what = what
        self.proc = subprocess.Popen([str(c) for c in cmd], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=env)

    @property
    def pid(self):
        return self.proc.pid

    def ask(self, request):
        """Sends one request; its answer, or RuntimeError with the child's message."""
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.what} {self.proc.pid} exited (code {self.proc.poll()})")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"{self.what}: {answer['error']}")
        return answer

    def close(self):
        try:
            self.proc.stdin.write('{"op":"quit"}\n')
            self.proc.stdin.flush()
        except OSError:
            pass
        self.proc.wait()


class OctetServer(JsonLinesChild):
    """`octet-bench-timer serve` in a child process."""

    def __init__(self, timer, env=None):
        super().__init__([timer, "serve"], "octet-bench-timer", env)

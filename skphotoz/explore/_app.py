"""The web application of ``skphotoz explore``: one page and a small JSON API over an
:class:`~skphotoz.explore.Explorer`.

Flask (with its server library, Werkzeug) is the web library: a local, single-user page
whose every answer is a short computation in numpy or torch fits a synchronous framework, and
Flask is small, well kept, and its test client lets most tests run without a server. It is an
optional extra (``pip install skphotoz[explore]``).

Every error is answered as JSON, ``{"error": message}``, with a 4xx status (5xx for a failure
of the server itself, with the message but never the traceback); the page shows the message.
Stamps are addressed by integer rows only (``/stamp/<row>.png``), and the static files by
Flask's ``send_from_directory``, which refuses paths outside the package's ``static`` folder:
nothing outside the archive and the page's own files is ever read.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
from importlib import resources

from ._data import MAX_LIST, ExploreError, Explorer

logger = logging.getLogger("skphotoz.explore")

_STATIC = resources.files("skphotoz.explore") / "static"


def _import_flask():
    try:
        import flask
    except ImportError:
        raise ImportError(
            "skphotoz explore needs Flask: pip install 'skphotoz[explore]' (or pip install flask)."
        ) from None
    return flask


def create_app(explorer: Explorer):
    """The Flask application serving ``explorer``.

    Routes: ``/`` (the page), ``/api/info``, ``/api/map``, ``/api/galaxy/<row>``,
    ``/api/objid/<objid>`` (the row of an ObjID), ``/api/anomalies?n=N``, ``/api/lookup``
    (POST, a pasted list of ObjIDs), ``/stamp/<row>.png`` and ``/static/<file>``.
    """
    flask = _import_flask()
    from werkzeug.exceptions import HTTPException

    app = flask.Flask("skphotoz.explore", static_folder=str(_STATIC), static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024  # a pasted list, nothing more
    app.json.sort_keys = False  # the catalogue in its own order
    # "//" in an address is a 404 (JSON), not a redirect page.
    app.url_map.merge_slashes = False

    def error(message: str, status: int, response=None):
        """A JSON error; ``response`` (an HTTP exception's own) keeps its headers, such as
        ``Allow`` of a 405."""
        body = flask.json.dumps({"error": message})
        if response is None:
            response = flask.Response(body, status=status)
        else:
            response.set_data(body)
        response.mimetype = "application/json"
        return response

    @app.errorhandler(ExploreError)
    def explore_error(e):
        return error(str(e), e.status)

    @app.errorhandler(HTTPException)
    def http_error(e):
        message = {
            404: f"no such page or resource: {flask.request.path[:200]!r}",
            405: f"{flask.request.method} is not allowed on {flask.request.path[:200]!r}",
            413: "the request is too large (at most 64 KiB)",
        }.get(e.code, e.description)
        return error(message, e.code or 500, e.get_response())

    @app.errorhandler(Exception)
    def unexpected(e):
        logger.exception("skphotoz explore: request %s failed", flask.request.path)
        return error(f"the server failed on this request: {type(e).__name__}: {e}", 500)

    @app.after_request
    def headers(response):
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @app.get("/")
    def page():
        return flask.send_from_directory(str(_STATIC), "index.html")

    @app.get("/api/info")
    def info():
        return flask.jsonify(explorer.info())

    @app.get("/api/map")
    def map_():
        return flask.Response(explorer.map_json(), mimetype="application/json")

    @app.get("/api/galaxy/<path:row>")
    def galaxy(row):
        return flask.jsonify(explorer.galaxy(explorer.check_row(row)))

    @app.get("/api/objid/<path:objid>")
    def objid(objid):
        return flask.jsonify({"row": explorer.row_of(objid)})

    @app.get("/api/anomalies")
    def anomalies():
        text = flask.request.args.get("n", "24")
        if not re.fullmatch(r"[0-9]{1,3}", text) or not 1 <= int(text) <= MAX_LIST:
            raise ExploreError(f"n must be a whole number from 1 to {MAX_LIST}; got {text[:40]!r}.")
        return flask.jsonify({"galaxies": explorer.anomalies(int(text))})

    @app.post("/api/lookup")
    def lookup():
        try:
            data = flask.request.get_json(silent=True)
        except RecursionError:  # JSON nested deeper than Python's parser goes
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("objids"), str):
            raise ExploreError(
                'the body must be JSON {"objids": "<ObjIDs separated by spaces or commas>"}.'
            )
        return flask.jsonify(explorer.lookup(data["objids"]))

    @app.get("/stamp/<path:name>")
    def stamp(name):
        if not name.endswith(".png"):
            raise ExploreError(f"a stamp is /stamp/<row>.png; got {name[:80]!r}.", status=404)
        row = explorer.check_row(name[: -len(".png")])
        response = flask.Response(explorer.stamp_png(row), mimetype="image/png")
        response.headers["Cache-Control"] = "max-age=3600"
        return response

    return app


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port``, or an OSError that says which and why (the
    server library would print its own lines and exit)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family)
    except OSError as error:
        hint = "; give another --port (0 picks a free one)" if error.errno == 98 else ""
        raise OSError(
            f"cannot listen on {host} port {port}: {error.strerror or error}{hint}."
        ) from None


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


class Server:
    """A running explore server (Werkzeug's threaded server) in a background thread:
    ``url``, ``port`` and ``shutdown()``. :func:`serve` runs the same server in the
    foreground; tests and the benchmark use this one."""

    def __init__(self, explorer: Explorer, host: str = "127.0.0.1", port: int = 0):
        self._server, self._socket, self.port = _make_server(explorer, host, port)
        self.url = _url(host, self.port)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()
        self._socket.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()


def _make_server(explorer: Explorer, host: str, port: int):
    """Werkzeug's threaded server of ``explorer``'s application on a socket this module
    opened (so that a busy port is a one-line error); returns it, the socket and the port."""
    _import_flask()
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    listening = _listen(host, port)
    port = listening.getsockname()[1]
    server = make_server(host, port, create_app(explorer), threaded=True, fd=listening.fileno())
    return server, listening, port


def serve(explorer: Explorer, host: str = "127.0.0.1", port: int = 8000, *, announce=print):
    """Serve the page until Ctrl-C. ``host`` 127.0.0.1 (the default) answers this computer
    only; another address lets the network in (the page is read-only, but it shows the
    archive)."""
    server, listening, port = _make_server(explorer, host, port)
    announce(f"serving {explorer.archive_path.name} at {_url(host, port)} (Ctrl-C stops)")
    try:
        server.serve_forever()
    finally:
        server.server_close()
        listening.close()

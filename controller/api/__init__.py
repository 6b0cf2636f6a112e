"""REST API v1 (webob). It reads and writes only the northbound store.

``app``: the Api (a WSGI app), its routes, problem+json and bodies; ``auth``:
tokens and callers; ``context``: what new objects are checked against; one
module per resource; ``imports``: POST /v1/import.
"""

from controller.api.app import Api, main, make_app
from controller.api.auth import Caller, create_token, digest, ensure_admin_token

__all__ = ["Api", "Caller", "create_token", "digest", "ensure_admin_token", "main", "make_app"]

"""``/docs`` with no network: Swagger UI served by the engine (``fastapi-offline``'s copy of its assets).

FastAPI's own pages load their scripts from a CDN: ``/docs`` is replaced on the app by the same page pointing at
``/web/docs-assets/…``, with Swagger UI's validator badge (a request to an outside server) off. ``/redoc`` is
removed: ReDoc loads its logo from its vendor's server whatever it is given.
"""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/web/docs-assets"


def mount_docs(app: FastAPI) -> None:
    """Serve ``/docs`` from the engine's own copy of its assets (replacing FastAPI's; ``/redoc`` removed)."""
    static = resources.files("fastapi_offline") / "static"
    app.router.routes = [route for route in app.router.routes
                         if getattr(route, "path", None) not in ("/docs", "/docs/oauth2-redirect", "/redoc")]
    app.mount(ASSETS, StaticFiles(directory=str(static)), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    title = f"{app.title} - API"

    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=openapi_url, title=title,
                                   swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{ASSETS}/favicon.png",
                                   swagger_ui_parameters={"validatorUrl": None})

    app.add_api_route("/docs", docs, methods=["GET"], include_in_schema=False)

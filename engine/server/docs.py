"""``/docs`` offline: Swagger UI's assets served by the engine from the installed ``fastapi-offline`` package.

The page references only this server's URLs (``/docs/assets/...`` and ``/openapi.json``), never a CDN, so the
API's documentation works on a machine without internet access. ReDoc (CDN-only) is not served.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs/assets"


def register(app: FastAPI, _engine: Any) -> None:
    """``GET /docs`` and its assets (the application is made with ``docs_url=None``)."""
    static = resources.files("fastapi_offline") / "static"  # Swagger UI 5: renders OpenAPI 3.1 (4.x cannot)
    app.mount(ASSETS, StaticFiles(directory=str(static)), name="swagger-ui-assets")

    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} - API",
                                   swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{ASSETS}/favicon.png",
                                   swagger_ui_parameters={"validatorUrl": None})  # the badge asks an outside server

    app.add_api_route("/docs", docs, methods=["GET"], include_in_schema=False)

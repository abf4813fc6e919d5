"""The Orders page: HTML, JavaScript and CSS that hold no data (everything comes from the authenticated endpoints)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC_DIR = Path(__file__).parent / "static"
#: Where the page is served (``/orders/ui``): not a usable order id.
UI_PATH = "ui"

router = APIRouter()


def static(name: str, media_type: str) -> FileResponse:
    return FileResponse(STATIC_DIR / name, media_type=media_type, headers={"Cache-Control": "no-cache"})

@router.get(f"/{UI_PATH}", include_in_schema=False)
def orders_page() -> FileResponse:
    return static("orders.html", "text/html; charset=utf-8")

@router.get(f"/{UI_PATH}/orders.js", include_in_schema=False)
def orders_js() -> FileResponse:
    return static("orders.js", "text/javascript; charset=utf-8")

@router.get(f"/{UI_PATH}/orders.css", include_in_schema=False)
def orders_css() -> FileResponse:
    return static("orders.css", "text/css; charset=utf-8")

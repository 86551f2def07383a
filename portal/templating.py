"""Jinja filters: dates shown in England's time, sizes in words people read."""

from __future__ import annotations

from datetime import datetime

from flask import Flask

from portal.models.base import ENGLAND


def localdatetime(value: datetime | None) -> str:
    """``27 March 2026, 3:04pm`` in England's time."""
    if value is None:
        return ""
    local = value.astimezone(ENGLAND)
    return local.strftime("%-d %B %Y, ") + local.strftime("%-I:%M%p").lower()


def localdate(value: datetime | None) -> str:
    """``27 March 2026`` in England's time."""
    return "" if value is None else value.astimezone(ENGLAND).strftime("%-d %B %Y")


def filesize(size: int | None) -> str:
    """``1.4 MB`` (decimal units, as file managers show them)."""
    if size is None:
        return ""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def init_app(app: Flask) -> None:
    """Register the filters."""
    app.jinja_env.filters.update(localdatetime=localdatetime, localdate=localdate, filesize=filesize)

#!/usr/bin/env python3
"""Render infra/nginx/handover.conf: replace each ``${HANDOVER_...}`` with its value.

    sudo python3 infra/scripts/render_nginx_site.py --env-file /etc/handover/nginx.env \\
        --env-file /etc/handover/handover.env --output /etc/nginx/sites-available/handover.conf

Values come from the environment and any ``--env-file`` (``NAME=value`` lines; later files win,
the environment wins over files). Derived defaults, so the site always matches the portal:

* ``HANDOVER_PUBLIC_BASE_URL`` defaults to ``PORTAL_PUBLIC_BASE_URL``; ``HANDOVER_SERVER_NAME``
  and ``HANDOVER_PUBLIC_HOST`` are taken from it.
* ``HANDOVER_CLIENT_MAX_BODY_SIZE`` is ``PORTAL_UPLOAD_LIMIT_BYTES`` (default 2 GiB) plus 1 MiB
  for the multipart envelope and the form's other fields.

A name left without a value stops the rendering: nginx would otherwise start with a broken
site. Only ``${HANDOVER_...}`` names are replaced; nginx's own ``$variables`` are left alone.
Standard library only: it runs with Debian's python3 before the portal's virtualenv exists.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

TEMPLATE = Path(__file__).resolve().parents[1] / "nginx" / "handover.conf"
_PLACEHOLDER = re.compile(r"\$\{(HANDOVER_[A-Z0-9_]+)\}")
MIB = 1024 * 1024
DEFAULT_UPLOAD_LIMIT = 2 * 1024 * MIB
DEFAULTS = {
    "HANDOVER_APP_1": "127.0.0.1:8001",
    "HANDOVER_APP_2": "127.0.0.1:8002",
    "HANDOVER_HTTPS_LISTEN": "443",
    "HANDOVER_HTTP_LISTEN": "80",
    "HANDOVER_ACCESS_LOG": "/var/log/nginx/handover.access.log",
    "HANDOVER_ACME_ROOT": "/var/www/acme",
}


class RenderError(Exception):
    """The template cannot be rendered from the values given."""


def read_env_file(path: Path) -> dict[str, str]:
    """``NAME=value`` lines (a systemd EnvironmentFile); blank lines and ``#`` comments skipped."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep:
            raise RenderError(f"{path}:{number}: expected NAME=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[name.strip()] = value
    return values


def site_values(given: Mapping[str, str]) -> dict[str, str]:
    """Every template value: ``given``, then derived ones, then defaults."""
    values = {**DEFAULTS, **{k: v for k, v in given.items() if v}}
    base_url = values.get("HANDOVER_PUBLIC_BASE_URL") or values.get("PORTAL_PUBLIC_BASE_URL", "")
    if base_url:
        parts = urlsplit(base_url.rstrip("/"))
        if parts.scheme != "https" or not parts.hostname or parts.path or parts.query:
            raise RenderError("the public base URL must be https://host[:port] with nothing after it")
        values["HANDOVER_PUBLIC_BASE_URL"] = f"https://{parts.netloc}"
        values.setdefault("HANDOVER_SERVER_NAME", parts.hostname)
        values.setdefault("HANDOVER_PUBLIC_HOST", parts.netloc)
    limit_raw = values.get("PORTAL_UPLOAD_LIMIT_BYTES", "")
    limit = int(limit_raw) if limit_raw else DEFAULT_UPLOAD_LIMIT
    values.setdefault("HANDOVER_CLIENT_MAX_BODY_SIZE", f"{-(-limit // MIB) + 1}m")
    return values


def render(template: str, values: Mapping[str, str]) -> str:
    """The template with every placeholder replaced; raises :class:`RenderError` naming what is missing."""
    missing = sorted({name for name in _PLACEHOLDER.findall(template) if not values.get(name)})
    if missing:
        raise RenderError(f"no value for {', '.join(missing)}")
    for name in _PLACEHOLDER.findall(template):
        if any(ch in values[name] for ch in ";{}\n\r"):
            raise RenderError(f"{name} must not contain ';', braces or line breaks")
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env-file", action="append", default=[], type=Path, help="NAME=value file")
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    parser.add_argument("--output", type=Path, help="write here instead of standard output")
    args = parser.parse_args(argv)
    given: dict[str, str] = {}
    try:
        for path in args.env_file:
            given.update(read_env_file(path))
        given.update({k: v for k, v in os.environ.items() if k.startswith(("HANDOVER_", "PORTAL_"))})
        text = render(args.template.read_text(encoding="utf-8"), site_values(given))
    except (RenderError, OSError, ValueError) as problem:
        sys.stderr.write(f"render_nginx_site: {problem}\n")
        return 1
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

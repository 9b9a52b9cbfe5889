"""Test helper, not part of the package: open a page in headless Chromium (rendered DOM,
screenshot, network check); :func:`ensure_chromium` installs Debian's ``chromium`` when missing.

Used by the browser tests (``pytest -m browser``) to prove a report renders offline: the plotly
figures must have drawn their SVG, and the page must not try to reach the network.

How "no network request" is checked (two independent checks, both required):

1. **Static**: :func:`amdd_kit.export.external_resources` parses the HTML (``html.parser``) and
   lists every ``http(s)://`` ``<script src>``, ``<link href>``, ``<img src>``, ... .
2. **Dynamic**: Chromium writes a NetLog (``--log-net-log=FILE``, JSON) of every URL request
   made while the page loaded and ran its scripts (including ``fetch``/XHR and lazily inserted
   ``<script>``/``<img>``). :func:`network_requests` lists the ``http(s)``/``ws(s)`` URLs the
   *page* requested. A NetLog is more reliable than Chromium's console log
   (``--enable-logging --v=0``), whose wording changes between versions and which only reports
   failed loads. Chromium itself still pings Google services (time sync, account list,
   component updates) despite ``--disable-background-networking``; those requests carry
   ``initiator: "not an origin"`` and no ``file://`` isolation key, which is how
   :func:`network_requests` leaves them out. As a backstop every host name resolves to nothing
   (``--host-resolver-rules``): a request still shows in the NetLog but never leaves the machine.

Chromium flags: see :data:`CHROMIUM_FLAGS`; every call uses a fresh ``--user-data-dir`` in a
temp dir and ``--virtual-time-budget`` so that scripts run to completion before the DOM is read.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

#: Binaries tried, in order, by :func:`find_chromium`.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

#: Flags for a quiet, offline, throw-away browser (a fresh profile is added per call).
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--no-first-run", "--disable-component-update",
    "--disable-sync", "--disable-default-apps", "--disable-extensions",
    "--no-default-browser-check", "--metrics-recording-only", "--mute-audio",
    "--host-resolver-rules=MAP * ~NOTFOUND",
)


def find_chromium() -> str | None:
    """Path of an installed Chromium/Chrome (``AMDD_CHROMIUM`` overrides), or None."""
    env = os.environ.get("AMDD_CHROMIUM")
    if env and Path(env).exists():
        return env
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def ensure_chromium(install: bool = True, timeout: float = 900) -> str | None:
    """Path to a Chromium binary; installs Debian's ``chromium`` when missing.

    The install (``apt-get update && apt-get install -y chromium``) only runs as root with
    ``apt-get`` present; otherwise, or when it fails, the function returns None and says why on
    stderr. Nothing is downloaded from outside the distribution.
    """
    path = find_chromium()
    if path or not install:
        return path
    apt = shutil.which("apt-get")
    if apt is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        print("amdd-kit: chromium not found and apt-get is unavailable (or not root); "
              "install Chromium yourself or set AMDD_CHROMIUM", file=sys.stderr)
        return None
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print("amdd-kit: installing Debian's chromium with apt-get (one-off, a few minutes)",
          file=sys.stderr, flush=True)
    for cmd in ([apt, "update"], [apt, "install", "-y", "--no-install-recommends", "chromium"]):
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                                  timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            print(f"amdd-kit: {' '.join(cmd)} failed: {exc}", file=sys.stderr)
            return None
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
            print(f"amdd-kit: {' '.join(cmd)} failed ({proc.returncode}): {tail[0]}",
                  file=sys.stderr)
            return None
    return find_chromium()


def _run_chromium(html_path: str | Path, extra: list[str], chromium: str | None,
                  budget_ms: int, timeout: float, net_log: str | Path | None
                  ) -> subprocess.CompletedProcess:
    binary = chromium or find_chromium()
    if binary is None:
        raise FileNotFoundError("no Chromium found: call ensure_chromium() or set AMDD_CHROMIUM")
    page = Path(html_path).absolute()
    if not page.is_file():
        raise FileNotFoundError(f"no such HTML file: {page}")
    with tempfile.TemporaryDirectory(prefix="amdd-chromium-") as profile:
        cmd = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
               f"--virtual-time-budget={budget_ms}", *extra]
        if net_log is not None:
            cmd += [f"--log-net-log={Path(net_log).absolute()}",
                    "--net-log-capture-mode=Default"]
        cmd.append(page.as_uri())
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or [""])[-1]
        raise RuntimeError(f"chromium exited with {proc.returncode}: {tail}")
    return proc


def render_dom(html_path: str | Path, screenshot: str | Path | None = None, *,
               chromium: str | None = None, net_log: str | Path | None = None,
               budget_ms: int = 10_000, timeout: float = 120) -> str:
    """Load ``html_path`` in headless Chromium, let its scripts run, return the DOM as HTML.

    ``--virtual-time-budget`` fast-forwards timers until the page is idle (up to
    ``budget_ms`` of virtual time), so plotly has drawn its SVG before ``--dump-dom``.
    ``screenshot``: also write a PNG (a second, separate browser run).
    ``net_log``: write Chromium's NetLog (JSON) there; see :func:`network_requests`.
    """
    proc = _run_chromium(html_path, ["--dump-dom"], chromium, budget_ms, timeout, net_log)
    if screenshot is not None:
        take_screenshot(html_path, screenshot, chromium=chromium, budget_ms=budget_ms,
                        timeout=timeout)
    return proc.stdout


def take_screenshot(html_path: str | Path, png_path: str | Path, *, chromium: str | None = None,
                    size: tuple[int, int] = (1280, 2400), budget_ms: int = 10_000,
                    timeout: float = 120) -> Path:
    """Write a PNG of the rendered page (``size`` = width, height in pixels)."""
    png = Path(png_path).absolute()
    png.parent.mkdir(parents=True, exist_ok=True)
    _run_chromium(html_path, [f"--screenshot={png}", f"--window-size={size[0]},{size[1]}",
                              "--hide-scrollbars"], chromium, budget_ms, timeout, None)
    if not png.is_file() or png.stat().st_size == 0:
        raise RuntimeError(f"chromium wrote no screenshot at {png}")
    return png


#: The name the task brief uses for the screenshot helper.
screenshot = take_screenshot


def network_requests(net_log: str | Path, page_only: bool = True) -> list[str]:
    """The ``http(s)://`` / ``ws(s)://`` URLs requested according to a Chromium NetLog.

    ``page_only`` (default): only requests the *page* made. Chromium's own background traffic
    (time sync, account and component-update pings, which some builds send despite
    ``--disable-background-networking``) is told apart by its NetLog parameters: it carries
    ``initiator: "not an origin"`` and a network isolation key that is not the page's
    ``file://`` site, whereas everything a ``file://`` page loads (scripts, images, fetch/XHR,
    iframes, navigations) has the page's opaque origin (``initiator: "null"``) or a
    ``file://`` isolation key. ``page_only=False`` lists every request.
    Local loads (``file:``, ``data:``, ``blob:``, ``chrome:``) are never listed. A NetLog cut
    short (Chromium killed) is read up to its last complete event.
    """
    text = Path(net_log).read_text(errors="replace")
    try:
        log = json.loads(text)
    except json.JSONDecodeError:  # unterminated log: keep the complete events
        cut = text.rfind("},")
        try:
            log = json.loads(text[:cut + 1] + "]}")
        except json.JSONDecodeError:
            log = {}
    names = {v: k for k, v in (log.get("constants", {}).get("logEventTypes") or {}).items()}
    urls: list[str] = []
    for ev in log.get("events", []):
        if names.get(ev.get("type")) != "URL_REQUEST_START_JOB":
            continue
        params = ev.get("params") or {}
        url = params.get("url")
        if not isinstance(url, str) or url.split(":", 1)[0].lower() not in (
                "http", "https", "ws", "wss"):
            continue
        from_page = (params.get("initiator", "not an origin") != "not an origin"
                     or "file://" in str(params.get("network_isolation_key", "")))
        if (from_page or not page_only) and url not in urls:
            urls.append(url)
    return urls


class _PlotScanner(HTMLParser):
    """Counts ``<svg>`` descendants of every element with class ``js-plotly-plot``."""

    _VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
             "source", "track", "wbr", "path", "rect", "circle", "line", "stop"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, int | None]] = []  # (tag, plot index or None)
        self.svg_counts: list[int] = []

    def _current_plot(self) -> int | None:
        for _, idx in reversed(self.stack):
            if idx is not None:
                return idx
        return None

    def handle_starttag(self, tag, attrs):
        classes = (dict(attrs).get("class") or "").split()
        idx = None
        if "js-plotly-plot" in classes:
            self.svg_counts.append(0)
            idx = len(self.svg_counts) - 1
        if tag == "svg":
            owner = self._current_plot()
            if owner is not None:
                self.svg_counts[owner] += 1
        if tag not in self._VOID:
            self.stack.append((tag, idx))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in self._VOID and self.stack and self.stack[-1][0] == tag:
            self.stack.pop()

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break


def plotly_svg_counts(dom: str) -> list[int]:
    """For each rendered plotly figure (``.js-plotly-plot``) in ``dom``, its number of
    ``<svg>`` elements (0 means the figure did not draw)."""
    scanner = _PlotScanner()
    scanner.feed(dom)
    scanner.close()
    return scanner.svg_counts

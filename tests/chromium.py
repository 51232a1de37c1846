"""Open a page in real headless Chromium over the DevTools protocol, and say what a person would see.

``render(path, screenshot)`` starts ``chromium --headless=new`` with a private profile, loads the file, waits
for its load event, collects console errors, uncaught exceptions and failed loads, checks every ``<img>``,
saves a full-page screenshot, and stops the browser (its whole process group) whatever happens.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import websockets

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
START_TIMEOUT_S = 30.0
LOAD_TIMEOUT_S = 30.0


@dataclass
class PageCheck:
    title: str = ""
    errors: list[str] = field(default_factory=list)  # console.error, uncaught exceptions, failed loads
    images: list[dict] = field(default_factory=list)  # {src (shortened), complete, width, height}
    page_height: int = 0

    @property
    def broken_images(self) -> list[dict]:
        return [i for i in self.images if not (i["complete"] and i["width"] > 0)]


class DevTools:
    """A minimal CDP client on one page session (flattened), with events kept for later inspection."""

    def __init__(self, socket, session_id: str):
        self.socket, self.session_id = socket, session_id
        self.next_id = 1000
        self.events: list[dict] = []

    async def call(self, method: str, params: dict | None = None, timeout: float = LOAD_TIMEOUT_S) -> dict:
        self.next_id += 1
        call_id = self.next_id
        await self.socket.send(json.dumps(
            {"id": call_id, "method": method, "params": params or {}, "sessionId": self.session_id}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(await asyncio.wait_for(self.socket.recv(), deadline - time.monotonic()))
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"DevTools {method} failed: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    async def wait_for(self, method: str, timeout: float = LOAD_TIMEOUT_S) -> dict:
        for event in self.events:
            if event["method"] == method:
                return event
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(await asyncio.wait_for(self.socket.recv(), deadline - time.monotonic()))
            if "method" in message:
                self.events.append(message)
                if message["method"] == method:
                    return message


def _devtools_port(profile: Path, proc: subprocess.Popen) -> int:
    """Chromium writes the port it chose (``--remote-debugging-port=0``) to DevToolsActivePort in its profile."""
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if marker.exists() and marker.read_text().strip():
            return int(marker.read_text().splitlines()[0])
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with status {proc.returncode} before opening DevTools")
        time.sleep(0.1)
    raise RuntimeError(f"chromium did not open DevTools within {START_TIMEOUT_S:g} s")


def _errors(events: list[dict]) -> list[str]:
    errors = []
    for e in events:
        p = e.get("params", {})
        if e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            errors.append("console." + p["type"] + ": " + " ".join(str(a.get("value", a.get("description", "")))
                                                                 for a in p.get("args", [])))
        elif e["method"] == "Runtime.exceptionThrown":
            details = p.get("exceptionDetails", {})
            errors.append("uncaught: " + details.get("exception", {}).get("description", details.get("text", "")))
        elif e["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            entry = p["entry"]
            errors.append(f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}".strip())
        elif e["method"] == "Network.loadingFailed" and not p.get("canceled"):
            errors.append(f"load failed: {p.get('errorText')}")
    return errors


async def _drive(port: int, url: str, screenshot: Path, width: int) -> PageCheck:
    version = json.loads(await asyncio.to_thread(_http_get, f"http://127.0.0.1:{port}/json/version"))
    async with websockets.connect(version["webSocketDebuggerUrl"], max_size=64 * 2**20) as socket:
        target = await _browser_call(socket, "Target.createTarget", {"url": "about:blank"})
        attached = await _browser_call(socket, "Target.attachToTarget",
                                       {"targetId": target["targetId"], "flatten": True})
        page = DevTools(socket, attached["sessionId"])
        for domain in ("Runtime", "Log", "Page", "Network"):
            await page.call(f"{domain}.enable")
        await page.call("Emulation.setDeviceMetricsOverride",
                        {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False})
        await page.call("Page.navigate", {"url": url})
        await page.wait_for("Page.loadEventFired")
        state = await page.call("Runtime.evaluate", {"returnByValue": True, "expression": """({
            title: document.title,
            height: Math.ceil(document.documentElement.scrollHeight),
            images: [...document.images].map(i => ({src: i.src.slice(0, 40), complete: i.complete,
                                                    width: i.naturalWidth, height: i.naturalHeight}))})"""})
        value = state["result"]["value"]
        shot = await page.call("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": value["height"], "scale": 1}})
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        await asyncio.sleep(0.2)  # let late console events arrive before counting them
        await page.call("Runtime.evaluate", {"expression": "0"})
        return PageCheck(title=value["title"], errors=_errors(page.events), images=value["images"],
                         page_height=value["height"])


async def _browser_call(socket, method: str, params: dict) -> dict:
    call_id = int(time.monotonic_ns() % 1_000_000)
    await socket.send(json.dumps({"id": call_id, "method": method, "params": params}))
    while True:
        message = json.loads(await asyncio.wait_for(socket.recv(), START_TIMEOUT_S))
        if message.get("id") == call_id:
            if "error" in message:
                raise RuntimeError(f"DevTools {method} failed: {message['error']}")
            return message["result"]


def _http_get(url: str) -> str:
    from urllib.request import urlopen

    with urlopen(url, timeout=10) as response:  # noqa: S310 - a local DevTools endpoint
        return response.read().decode()


def render(path: Path, screenshot: Path, width: int = 1200) -> PageCheck:
    """Load ``path`` in headless Chromium; return what went wrong, with a full-page screenshot saved."""
    if CHROMIUM is None:
        raise FileNotFoundError("chromium is not installed (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        proc = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--no-default-browser-check", "--disable-extensions", "--remote-debugging-port=0",
             f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        try:
            port = _devtools_port(Path(profile), proc)
            return asyncio.run(_drive(port, path.resolve().as_uri(), screenshot, width))
        finally:
            _stop_group(proc)


def _stop_group(proc: subprocess.Popen) -> None:
    """Chromium's helpers (renderer, GPU, zygote) share its process group: kill them all (the profile is
    thrown away, so nothing needs a clean shutdown), then wait until none is left running."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    deadline = time.monotonic() + 10
    while _running_in_group(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def _running_in_group(pgid: int) -> list[int]:
    """Processes of the group that are not yet dead; zombies wait for init to reap them and run nothing."""
    running = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # /proc/PID/stat: "pid (comm) state ppid pgrp ..."; comm may hold spaces, so split after the ")".
            state, _ppid, pgrp = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if int(pgrp) == pgid and state != "Z":
            running.append(int(entry.name))
    return running

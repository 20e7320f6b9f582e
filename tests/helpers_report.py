"""Test helpers for ``posebridge report``: open a page in headless Chromium and drive it.

* :func:`chromium_binary`: the Chromium/Chrome executable (``$POSEBRIDGE_CHROMIUM`` first), or None.
* :class:`ChromiumPage`: one headless browser on one page, spoken to with the DevTools protocol
  over a pipe (``--remote-debugging-pipe``: no network port, no websocket library). It records
  console messages, uncaught exceptions and browser log errors from before the page loads,
  evaluates JavaScript, and takes PNG screenshots.

Owned by the "report" engineer.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

CHROMIUM_ENV = "POSEBRIDGE_CHROMIUM"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
          "--hide-scrollbars", "--remote-debugging-pipe")
TIMEOUT_S = 60.0


def chromium_binary() -> str | None:
    """The browser to test with, or None when there is none."""
    override = os.environ.get(CHROMIUM_ENV)
    if override:
        return shutil.which(override) or (override if Path(override).is_file() else None)
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


class ChromiumPage:
    """A headless Chromium showing one page. Use as a context manager.

    ``problems`` lists every console message, uncaught exception and error-level log entry
    the page produced (a clean report produces none).
    """

    def __init__(self, binary: str, page: Path, profile: Path, window: tuple[int, int] = (1400, 1000),
                 fragment: str = "") -> None:
        self.problems: list[str] = []
        self._buffer = b""
        self._next_id = 0
        read_commands, self._commands = os.pipe()
        self._results, write_results = os.pipe()
        profile.mkdir(parents=True, exist_ok=True)
        self._log_path = profile / "chromium-stderr.log"
        self._log = self._log_path.open("wb")
        # The browser reads commands on fd 3 and writes results on fd 4.
        self._process = subprocess.Popen(
            ["bash", "-c", f'exec "$0" "$@" 3<&{read_commands} 4>&{write_results}', binary, *_FLAGS,
             f"--user-data-dir={profile}", f"--window-size={window[0]},{window[1]}", "about:blank"],
            pass_fds=(read_commands, write_results), stdout=subprocess.DEVNULL, stderr=self._log)
        os.close(read_commands)
        os.close(write_results)
        try:
            target = self._call("Target.createTarget", {"url": "about:blank"})["targetId"]
            self._session = self._call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Runtime", "Log", "Page"):
                self._call(f"{domain}.enable", session=True)
            url = page.resolve().as_uri() + (f"#{fragment}" if fragment else "")
            self._call("Page.navigate", {"url": url}, session=True)
        except BaseException:
            self.close()
            raise

    # -- protocol ----------------------------------------------------------------------------
    def _send(self, method: str, params: dict | None, session: bool) -> int:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self._session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        return self._next_id

    def _record(self, message: dict) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            self.problems.append(f"console.{params.get('type')}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.problems.append(f"exception: {details.get('exception', {}).get('description') or details.get('text')}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") in ("error", "warning"):
            entry = params["entry"]
            self.problems.append(f"log {entry.get('level')}: {entry.get('text')} ({entry.get('url', '')})")

    def _call(self, method: str, params: dict | None = None, session: bool = False) -> dict:
        wanted = self._send(method, params, session)
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                if message.get("id") == wanted:
                    if "error" in message:
                        raise RuntimeError(f"{method}: {message['error']}")
                    return message.get("result", {})
                self._record(message)
            ready, _, _ = select.select([self._results], [], [], 0.5)
            if ready:
                chunk = os.read(self._results, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"the browser closed the pipe: {self._stderr_tail()}")
                self._buffer += chunk
        raise TimeoutError(f"no answer to {method} within {TIMEOUT_S} s")

    def _stderr_tail(self) -> str:
        self._log.flush()
        return self._log_path.read_text(errors="replace")[-2000:]

    # -- page access -------------------------------------------------------------------------
    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (raises on a thrown exception)."""
        result = self._call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                 "awaitPromise": True}, session=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = TIMEOUT_S) -> Any:
        """Poll ``expression`` until it is truthy (a throw counts as false, e.g. before <body>)."""
        guarded = f"(() => {{ try {{ return ({expression}); }} catch (error) {{ return null; }} }})()"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(guarded)
            if value:
                return value
            time.sleep(0.1)
        raise TimeoutError(f"{expression!r} stayed false for {timeout} s; problems: {self.problems}")

    def screenshot(self, path: Path) -> Path:
        """Write a PNG of the visible window to ``path``."""
        data = self._call("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        """Close the browser."""
        if self._process.poll() is None:
            try:
                self._send("Browser.close", None, False)
                self._process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self._process.kill()
                self._process.wait()
        for fd in (self._commands, self._results):
            try:
                os.close(fd)
            except OSError:
                pass
        self._log.close()

    def __enter__(self) -> ChromiumPage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""The interactive documentation in a real browser: headless Chromium (Debian's package) opens
/api/docs, lists every operation, and "Try it out" → "Execute" reaches this host, with and without
a pasted bearer token, under the page's Content-Security-Policy.

Chromium is driven over the DevTools protocol with aiohttp's WebSocket client, so the test needs
no browser-automation package. A screenshot is left at .data/docs-screenshot.png.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from tests.support import PROJECT_ROOT, Caller

SCREENSHOT = PROJECT_ROOT / ".data" / "docs-screenshot.png"
ENSURE_CHROMIUM = PROJECT_ROOT / "tools" / "ensure_chromium.sh"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--remote-debugging-port=0", "--window-size=1280,1600",
)
WAIT_SECONDS = 20.0


@pytest.fixture(scope="session")
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        installed = subprocess.run(["bash", str(ENSURE_CHROMIUM)], capture_output=True, text=True, timeout=600)
        path = shutil.which("chromium")
        if path is None:
            pytest.skip(f"headless Chromium is not available: {installed.stderr.strip() or installed.stdout.strip()}")
    return path


@pytest.fixture
def browser(chromium: str) -> Iterator[str]:
    """A headless Chromium; yields the WebSocket URL of its first page."""
    profile = Path(tempfile.mkdtemp(prefix="docs-browser-"))
    process = subprocess.Popen([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port = _devtools_port(profile / "DevToolsActivePort", process)
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        yield next(target["webSocketDebuggerUrl"] for target in targets if target["type"] == "page")
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        shutil.rmtree(profile, ignore_errors=True)


def _devtools_port(active_port_file: Path, process: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"chromium exited with {process.returncode}")
        if active_port_file.exists() and active_port_file.read_text().strip():
            return int(active_port_file.read_text().split()[0])
        time.sleep(0.1)
    raise RuntimeError("chromium did not open its DevTools port")


class Page:
    """Just enough of the DevTools protocol: commands, and the events a test asserts on."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self._socket = socket
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []

    async def listen(self) -> None:
        async for message in self._socket:
            data = json.loads(message.data)
            if "id" in data:
                self._pending.pop(data["id"]).set_result(data)
            else:
                self.events.append(data)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        command_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[command_id] = future
        await self._socket.send_json({"id": command_id, "method": method, "params": params})
        answer = await asyncio.wait_for(future, WAIT_SECONDS)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer["result"]
        return result

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str) -> Any:
        """The first truthy value of `expression`, polled until WAIT_SECONDS pass."""
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out waiting for {expression}")

    async def click(self, selector: str) -> None:
        await self.wait_for(f"!!document.querySelector({json.dumps(selector)})")
        await self.evaluate(f"document.querySelector({json.dumps(selector)}).click()")

    async def type_into(self, selector: str, text: str) -> None:
        """Focus the field and type as a person would, so the page's own input handlers run."""
        await self.wait_for(f"!!document.querySelector({json.dumps(selector)})")
        await self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        await self.send("Input.insertText", text=text)

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions and policy violations the page reported."""
        found = []
        for event in self.events:
            params = event.get("params", {})
            if event["method"] == "Runtime.exceptionThrown":
                found.append(str(params["exceptionDetails"].get("exception", {}).get("description")))
            elif event["method"] == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(params["entry"]["text"])
            elif event["method"] == "Runtime.consoleAPICalled" and params["type"] == "error":
                found.append(" ".join(str(arg.get("value", arg.get("description"))) for arg in params["args"]))
        return found

    def requested_urls(self) -> list[str]:
        return [event["params"]["request"]["url"] for event in self.events
                if event["method"] == "Network.requestWillBeSent"]


@asynccontextmanager
async def open_page(websocket_url: str) -> AsyncIterator[Page]:
    async with aiohttp.ClientSession() as session, session.ws_connect(websocket_url, max_msg_size=0) as socket:
        page = Page(socket)
        listener = asyncio.create_task(page.listen())
        try:
            for domain in ("Page", "Runtime", "Log", "Network"):
                await page.send(f"{domain}.enable")
            yield page
        finally:
            listener.cancel()


def block(operation_id: str, tag: str) -> str:
    # Swagger UI's deep-linking id of an operation's block.
    return f"#operations-{tag}-{operation_id}"


async def try_it_out(page: Page, block: str) -> str:
    """Expand an operation, press "Try it out" then "Execute"; the status code the UI shows."""
    await page.click(f"{block} .opblock-summary-control")
    await page.click(f"{block} .try-out__btn")
    await page.click(f"{block} .btn.execute")
    status_cell = json.dumps(f"{block} .live-responses-table .response .response-col_status")
    status: str = await page.wait_for(f"document.querySelector({status_cell})?.textContent.trim()")
    return status


async def walk_the_docs(websocket_url: str, api: str, token: str, document: dict[str, Any]) -> dict[str, Any]:
    async with open_page(websocket_url) as page:
        await page.send("Page.navigate", url=f"{api}/docs")
        operations = [(operation["operationId"], operation["tags"][0])
                      for item in document["paths"].values() for operation in item.values()]
        await page.wait_for(f"document.querySelectorAll('.opblock').length === {len(operations)}")
        text = await page.evaluate("document.body.innerText")
        missing_blocks = [operation_id for operation_id, tag in operations
                          if not await page.evaluate(f"!!document.querySelector('{block(operation_id, tag)}')")]

        health_status = await try_it_out(page, block("health", "health"))

        await page.click(".auth-wrapper .btn.authorize")
        await page.type_into(".auth-container input[type=text]", token)
        await page.click(".auth-container .auth-btn-wrapper .btn.authorize")
        await page.click(".auth-btn-wrapper .btn-done")
        me_status = await try_it_out(page, block("users_get_me", "users"))
        storage = await page.evaluate(
            "JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage), document.cookie])")
        shot = await page.send("Page.captureScreenshot", format="png", captureBeyondViewport=False)
        problems = page.problems()
        # A fresh load (the deep link's fragment dropped; Swagger UI warns about old-style ones).
        await page.send("Page.navigate", url=f"{api}/docs")
        await page.wait_for("document.readyState === 'complete'")
        await page.wait_for(f"document.querySelectorAll('.opblock').length === {len(operations)}")
        # Swagger UI marks the Authorize button `locked` while it holds a token.
        authorized_after_reload = await page.evaluate("!!document.querySelector('.btn.authorize.locked')")
        return {"text": text, "missing_blocks": missing_blocks, "health": health_status, "me": me_status,
                "storage": storage, "authorized_after_reload": authorized_after_reload,
                "problems": problems, "urls": page.requested_urls(), "screenshot": shot["data"]}


def test_the_docs_list_every_operation_and_try_it_out_works(
    browser: str, api: str, client: httpx.Client, user: Caller
) -> None:
    document = client.get("/openapi.json").json()
    seen = asyncio.run(walk_the_docs(browser, api, user.token, document))

    SCREENSHOT.parent.mkdir(exist_ok=True)
    SCREENSHOT.write_bytes(base64.b64decode(seen["screenshot"]))
    assert seen["missing_blocks"] == []
    for path, item in document["paths"].items():
        assert path in seen["text"]
        for operation in item.values():
            assert operation["operationId"] in seen["text"]
    assert seen["health"] == "200"
    assert seen["me"] == "200"
    # The pasted token is kept nowhere the page outlives: not in storage, gone after a reload.
    assert user.token not in seen["storage"]
    assert "authorized" not in json.loads(seen["storage"])[0]
    assert seen["authorized_after_reload"] is False
    assert seen["problems"] == []
    origin = api.removesuffix("/api")
    assert [url for url in seen["urls"] if not url.startswith((f"{origin}/", "data:"))] == []

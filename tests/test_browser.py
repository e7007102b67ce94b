"""What a researcher sees in the MLflow UI, checked in a real browser.

An `mlflow server` process on 127.0.0.1, a debug APW ablation (two variants, one seed) logged to it,
and headless Chromium (Debian's `chromium`) driven through the DevTools protocol with aiohttp's
websocket client. MLflow 3's UI is a React app: every check polls `document.body.innerText` until
the page has rendered what it looks for. Checked: the URL a run prints opens on the runs table (not
the GenAI overview) with the parent run's headline metric per variant as columns; the parent run's
description holds the table; the compare view of the trials shows the varied parameter with each
trial's value, the comparable dev reconstruction error of each, which stages each trained, and
their sample translations (an MLflow table) side by side. Screenshots go to the test's
temporary folder and, when UNIGLOR_SCREENSHOT_DIR is set, the runs table also to
$UNIGLOR_SCREENSHOT_DIR/mlflow-runs.png (the README's screenshot: docs/).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import math
import os
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from test_ablations_e2e import run_ablation
from test_multinode import TINY, start_mlflow_server, stop_process_group

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("chromium") is None,
                                 reason="Debian's chromium is not installed (apt-get install chromium; .ci/run does)")]


class Chromium:
    """A headless Chromium process and its first page, driven through the DevTools protocol."""

    def __init__(self, profile: Path, width: int = 1600, height: int = 900):
        self.proc = subprocess.Popen(
            ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-address=127.0.0.1",
             "--remote-debugging-port=0", f"--user-data-dir={profile}", f"--window-size={width},{height}",
             "--no-first-run", "--no-default-browser-check", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
        seen = []
        deadline = time.time() + 60
        port = None
        while port is None and time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line and self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited {self.proc.returncode}: {''.join(seen)[-2000:]}")
            seen.append(line)
            found = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            port = int(found.group(1)) if found else None
        if port is None:
            self.close()
            raise RuntimeError(f"chromium printed no DevTools address within 60 s: {''.join(seen)[-2000:]}")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            self.page_ws = next(t for t in json.load(r) if t["type"] == "page")["webSocketDebuggerUrl"]
        self.ids = itertools.count(1)

    async def __aenter__(self) -> "Chromium":
        import aiohttp
        self.session = aiohttp.ClientSession()
        self.ws = await self.session.ws_connect(self.page_ws, max_msg_size=0)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.ws.close()
        await self.session.close()

    async def send(self, method: str, **params):
        i = next(self.ids)
        await self.ws.send_json({"id": i, "method": method, "params": params})
        while True:  # events arrive in between: skip them
            msg = await self.ws.receive_json(timeout=60)
            if msg.get("id") == i:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    async def evaluate(self, expression: str):
        r = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression[:200]}: {r['exceptionDetails']}")
        return r["result"].get("value")

    async def open(self, url: str, until, timeout_s: float = 90.0) -> str:
        """Navigate to url; the page's text once until(text) holds."""
        await self.send("Page.navigate", url=url)
        return await self.wait(until, timeout_s, url)

    async def wait(self, until, timeout_s: float = 90.0, where: str = "the page") -> str:
        """The page's text once until(text) holds (an AssertionError naming what the page showed
        if it never does)."""
        deadline = time.time() + timeout_s
        text = ""
        while time.time() < deadline:
            text = await self.evaluate("document.body ? document.body.innerText : ''") or ""
            if until(text):
                return text
            await asyncio.sleep(0.5)
        raise AssertionError(f"{where} did not show what was expected within {timeout_s:.0f} s; it showed:\n"
                             f"{text[:3000]}")

    async def screenshot(self, *paths: Path) -> None:
        png = base64.b64decode((await self.send("Page.captureScreenshot", format="png"))["data"])
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(png)

    def close(self) -> None:
        stop_process_group(self.proc)


# The compare view lays its metrics out as two virtualised grids (names, values) of absolutely placed
# cells: a metric's values are the cells at its name's height.
METRIC_ROW = """(() => { const key = %s;
  const link = [...document.querySelectorAll('a[title="Plot chart"]')].find(a => a.textContent.trim() === key);
  if (!link) return null;
  const cell = link.parentElement, top = cell.style.top;
  for (let p = cell.parentElement; p; p = p.parentElement) {
    const row = [...p.querySelectorAll('div')].filter(d => d.style.position === 'absolute' && d.style.top === top);
    if (row.length > 1) return row.map(d => d.innerText.trim());
  }
  return null; })()"""


# A column of the runs table (ag-grid; columns off screen are not rendered): its header, shown
# whole only when it fits, and its first row's value.
RUNS_CELL = """(() => { const id = %s;
  const header = document.querySelector(`.ag-header-cell[col-id="${id}"]`);
  const cell = document.querySelector(`.ag-row [col-id="${id}"]`);
  if (!header || !cell) return null;
  const fits = [...header.querySelectorAll('*')].every(e => e.scrollWidth <= e.clientWidth + 1);
  return {header: fits ? header.innerText.trim() : 'cut: ' + header.innerText.trim(), value: cell.innerText.trim()}; })()"""


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """A debug APW ablation (baseline and APW, one seed) logged to an `mlflow server` process."""
    folder = tmp_path_factory.mktemp("browser")
    server, uri = start_mlflow_server(folder / "server")
    try:
        out = run_ablation("apw", folder / "results", "--only", "none", "--only", "apw", "--tracking-uri", uri, *TINY)
        yield folder, uri, out
    finally:
        stop_process_group(server)


def test_the_ui_shows_the_winner_the_table_and_the_comparison(logged, tmp_path):
    from mlflow import MlflowClient
    folder, uri, out = logged
    printed = re.search(r"Compare in MLflow:  open (\S+)", out.stdout)
    assert printed, out.stdout[-2000:]
    runs_url = printed.group(1)
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("ablation-apw")
    runs = client.search_runs([exp.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("harness.role") == "parent"]
    trials = sorted((r for r in runs if r.data.tags.get("harness.role") == "trial"), key=lambda r: r.data.tags["variant"])
    assert [t.data.tags["variant"] for t in trials] == ["apw", "none"]
    headline = {k: v for k, v in parent.data.metrics.items() if k.startswith("sign2text.test_bleu4.")}
    assert set(headline) == {f"sign2text.test_bleu4.{v}.{s}" for v in ("apw", "none") for s in ("mean", "std")}

    async def look() -> None:
        browser = Chromium(tmp_path / "chromium-profile")
        try:
            async with browser as b:
                # 1. The printed URL: the runs table, each task's BLEU-4 of each variant as a column.
                text = await b.open(runs_url, lambda t: "text2sign.test_bleu4.none.mean" in t)
                assert "workflowType=genai" not in await b.evaluate("location.href")
                # What a researcher closes first: the assistant panel takes a third of the width.
                await b.evaluate("""[...document.querySelectorAll('button[aria-label="Close"]')].forEach(x => x.click())""")
                await asyncio.sleep(1)
                assert "Run Name" in text and parent.info.run_name in text
                for task, variant in itertools.product(("sign2text", "text2sign"), ("none", "apw")):
                    name = f"{task}.test_bleu4.{variant}.mean"
                    cell = await b.evaluate(RUNS_CELL % json.dumps(f"metrics.`{name}`"))
                    assert cell is not None, (name, text[:3000])
                    assert cell["header"] == name  # the whole name: the column is wide enough
                    assert math.isclose(float(cell["value"]), parent.data.metrics[name], abs_tol=1e-3), (name, cell)
                shots = [tmp_path / "runs.png"]
                if os.environ.get("UNIGLOR_SCREENSHOT_DIR"):
                    shots.append(Path(os.environ["UNIGLOR_SCREENSHOT_DIR"]) / "mlflow-runs.png")
                await b.screenshot(*shots)
                # 2. The parent run: its description is the ablation's table.
                base = uri.rstrip("/")
                text = await b.open(f"{base}/#/experiments/{exp.experiment_id}/runs/{parent.info.run_id}",
                                    lambda t: "p (BLEU-4)" in t)
                await b.screenshot(tmp_path / "parent.png")
                assert "Sign-to-text (SLT)" in text and "Text-to-sign" in text
                assert re.search(r"^none\t[\d.]+ ± [\d.]+\t.*\(baseline\)$", text, re.M), text[:3000]
                assert re.search(r"^apw\t[\d.]+ ± [\d.]+\t", text, re.M)
                # 3. The compare view of the trials: the varied parameter and a comparable metric.
                query = urllib.parse.urlencode({"runs": json.dumps([t.info.run_id for t in trials]),
                                                "experiments": json.dumps([exp.experiment_id])})
                text = await b.open(f"{base}/#/compare-runs?{query}",
                                    lambda t: "pretrain.weighting" in t and "pretrain/dev_recon_mpjpe" in t)
                await b.screenshot(tmp_path / "compare.png")
                assert re.search(r"^pretrain\.weighting\tapw\tnone$", text, re.M), text[:3000]
                row = await b.evaluate(METRIC_ROW % json.dumps("pretrain/dev_recon_mpjpe"))
                assert row and row[0] == "pretrain/dev_recon_mpjpe" and len(row) == 3, row
                shown = [float(v) for v in row[1:]]
                logged_values = [t.data.metrics["pretrain/dev_recon_mpjpe"] for t in trials]
                assert all(math.isclose(s, v, abs_tol=1e-3) for s, v in zip(shown, logged_values)), (shown, logged_values)
                assert re.search(r"^stage\.pretrain\.cached\tfalse\tfalse$", text, re.M)  # each trained its own
                # ... and the sample translations of both trials side by side.
                assert await b.evaluate("""(() => { const nodes = document.querySelectorAll(
                    '[data-testid="artifact-tree-node"][artifact-name="translations.json"]');
                    nodes.forEach(n => n.click()); return nodes.length; })()""") >= 1
                text = await b.wait(lambda t: t.count('"sentence_bleu4"') == 2, where="the compare view's artifacts")
                await b.screenshot(tmp_path / "compare-translations.png")
                for trial in trials:
                    table = json.loads(Path(client.download_artifacts(trial.info.run_id, "translations.json",
                                                                      str(tmp_path))).read_text())
                    assert table["data"][0][1] in text  # a reference of each trial, as logged
        finally:
            browser.close()

    asyncio.run(look())

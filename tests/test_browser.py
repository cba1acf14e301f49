"""Real-browser test of the notebook panel (issue 5, item 6).

JupyterLab (started and stopped here, on 127.0.0.1 with a token) + Debian's chromium driven
headless by Python Playwright (``executable_path='/usr/bin/chromium'``; never ``playwright
install``). Opens a notebook showing ``Panel()``, checks the controls render, types an invalid
``num_workers``, sees the message appear and Train disable, fixes it and sees Train enable; then
trains (the quick preset: ``PTYCHO_NB_QUICK=1`` from conftest) and checks what a person sees: a
progress bar wider than 100 px and the live figure inside the panel while it trains, and after
Reconstruct a reconstruction ``<img>`` that really decoded (``naturalWidth > 0``).

Skipped only when chromium/playwright/jupyterlab are missing *and* ``CI`` is unset; under CI a
missing tool fails. ``.ci/install-test-extras.sh`` installs them. Screenshots land in the test's
tmp_path (``*.png``; ``failure.png`` on failure). The whole test is bounded by SIGALRM plus a
faulthandler backstop, so a hang fails instead of stalling CI. Step logs with timings go to
stderr (``-s`` to watch live) and to tmp_path/steps.log.

Env: PTYCHO_NB_BROWSER_TIMEOUT (s, default 300), PTYCHO_NB_CHROMIUM (default /usr/bin/chromium),
PTYCHO_NB_BROWSER_STANDIN=1 (dev only: a hand-built stand-in instead of Panel(); no training),
PTYCHO_NB_SCREENSHOTS (a folder: also copy the panel's screenshots there; docs/make_screenshots.py).
"""
from __future__ import annotations

import faulthandler
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("PTYCHO_NB_CHROMIUM", "/usr/bin/chromium")  # Debian's chromium
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
TEST_TIMEOUT_S = int(os.environ.get("PTYCHO_NB_BROWSER_TIMEOUT", "300"))
STEP_TIMEOUT_MS = 90_000  # any single Playwright wait (first kernel start imports torch: slow on 2 cores)
LAB_SETTINGS_OVERRIDES = {
    # silence the news/update toast; let Lab save widget state
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyter-widgets/jupyterlab-manager:plugin": {"saveState": True},
}
# Dev-only: PTYCHO_NB_BROWSER_STANDIN=1 shows an equivalent hand-built widget set instead of
# Panel() (used to build the harness before panel.py existed). CI always uses the real Panel.
PANEL_CELL = "from ptycho_nb.notebook import Panel\npanel = Panel()\npanel"
# A first widget before the one under test: Lab's widget manager registers its comm target
# asynchronously after the kernel connects, and a widget created before that is never shown
# (jupyterlab/jupyterlab#10533: "Widget don't show the first time"). The harness re-runs this
# cell until its label appears, so the Panel itself is shown on a ready widget manager, once.
WARMUP_CELL = "import ipywidgets\nipywidgets.Label('widgets ready')"
WARMUP_TRIES = 4
STANDIN_CELL = '''\
import ipywidgets as w
from ptycho_nb.config.execution import PyTorchExecutionConfig
nw = w.Text(value="0", description="num_workers")
msg = w.HTML("")
train = w.Button(description="Train")
def _check(change=None):
    try:
        PyTorchExecutionConfig(num_workers=int(nw.value))
        msg.value = ""; nw.remove_class("ptycho-nb-invalid"); train.disabled = False
    except Exception as e:
        msg.value = str(e); nw.add_class("ptycho-nb-invalid"); train.disabled = True
nw.observe(_check, "value")
panel = w.Tab([w.VBox([w.HBox([w.Text(description="max_epochs", value="3")])]),
               w.VBox([w.HBox([nw, msg])])])
panel.titles = ("trainer", "dataloader")
w.VBox([panel, train])
'''

_T0 = time.monotonic()


_STEP_LOG: list = []  # open file handle of the current test's steps.log (in its tmp_path)


def log(msg: str) -> None:
    line = f"[browser-test {time.monotonic() - _T0:7.2f}s] {msg}"
    print(line, file=sys.stderr, flush=True)  # shown by pytest on failure, live with -s
    for f in _STEP_LOG:
        f.write(line + "\n")
        f.flush()


def _missing_tools() -> list[str]:
    missing = []
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    for mod, pkg in (("playwright.sync_api", "playwright"), ("jupyterlab", "jupyterlab"),
                     ("ipykernel", "ipykernel")):
        try:
            __import__(mod)
        except ImportError:
            missing.append(f"python package {pkg}")
    return missing


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http(url: str, method: str = "GET", timeout: float = 5.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""


def _write_notebook(path: Path, source: str) -> None:
    cells = [("warmup-cell", WARMUP_CELL), ("panel-cell", source)]
    nb = {
        "cells": [{"cell_type": "code", "execution_count": None, "id": cid,
                   "metadata": {}, "outputs": [], "source": src} for cid, src in cells],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                    "name": "python3"}},
        "nbformat": 4, "nbformat_minor": 5,
    }
    path.write_text(json.dumps(nb, indent=1))


class _Lab:
    """A JupyterLab server in its own process group, all state under one tmp folder."""

    def __init__(self, tmp: Path, root: Path):
        self.tmp, self.root = tmp, root
        self.port = _free_port()
        self.token = uuid.uuid4().hex
        self.base = f"http://127.0.0.1:{self.port}"
        self.runtime = tmp / "jrt"
        self.proc: subprocess.Popen | None = None
        self.log_path = tmp / "lab.log"

    def start(self, timeout: float = 120.0) -> None:
        settings = self.tmp / "lab-app-settings"  # app_settings_dir: overrides.json is read here
        settings.mkdir(parents=True, exist_ok=True)
        (settings / "overrides.json").write_text(json.dumps(LAB_SETTINGS_OVERRIDES))
        for d in ("jcfg", "jrt", "jws", "lab-user-settings", "ipython"):
            (self.tmp / d).mkdir(exist_ok=True)
        env = dict(os.environ,
                   JUPYTER_CONFIG_DIR=str(self.tmp / "jcfg"),
                   JUPYTER_RUNTIME_DIR=str(self.runtime),
                   IPYTHONDIR=str(self.tmp / "ipython"),
                   PYTHONUNBUFFERED="1")
        env.pop("JUPYTER_PLATFORM_DIRS", None)
        cmd = [sys.executable, "-m", "jupyterlab",
               "--allow-root", "--no-browser", "--expose-app-in-browser",
               "--ip=127.0.0.1", f"--port={self.port}", "--port-retries=0",
               f"--IdentityProvider.token={self.token}",
               f"--ServerApp.root_dir={self.root}",
               f"--LabApp.app_settings_dir={settings}",
               f"--LabApp.user_settings_dir={self.tmp / 'lab-user-settings'}",
               f"--LabApp.workspaces_dir={self.tmp / 'jws'}",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--LabApp.news_url=None"]
        log(f"starting JupyterLab on port {self.port}")
        self._logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._logf, stderr=subprocess.STDOUT, env=env,
                                     cwd=self.root, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                code, _ = _http(f"{self.base}/api/status?token={self.token}", timeout=2)
                if code == 200:
                    log("JupyterLab ready (/api/status 200)")
                    return
            except OSError:
                pass
            time.sleep(0.25)
        raise TimeoutError(f"JupyterLab not ready after {timeout}s:\n{self.tail()}")

    def tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None:
            return
        # 1. shut kernels down through the API (they run in their own sessions)
        if self.proc.poll() is None:
            try:
                code, body = _http(f"{self.base}/api/kernels?token={self.token}")
                for k in json.loads(body or b"[]") if code == 200 else []:
                    _http(f"{self.base}/api/kernels/{k['id']}?token={self.token}", "DELETE", 10)
            except Exception as e:  # noqa: BLE001 - best effort
                log(f"kernel shutdown via API failed: {e!r}")
        # 2. the server's process group: SIGTERM, then SIGKILL
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                pass
        # 3. any kernel still alive: it names a connection file in *our* runtime dir
        for pid in _pids_mentioning(str(self.runtime)):
            log(f"killing leftover kernel pid {pid}")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._logf.close()
        log(f"JupyterLab stopped (rc={self.proc.returncode})")


def _pids_mentioning(needle: str) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            if needle in (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                pids.append(int(d.name))
        except OSError:
            continue
    return pids


class _Timeout(Exception):
    pass


@pytest.fixture
def hard_timeout(tmp_path):
    """Fail (not hang) after TEST_TIMEOUT_S (SIGALRM raises in the test); if even that cannot
    interrupt it, faulthandler writes all tracebacks to tmp_path/hang-traceback.txt and exits
    the process 60 s later. Step logs also go to tmp_path/steps.log."""
    global _T0
    _T0 = time.monotonic()

    def _on_alarm(signum, frame):
        raise _Timeout(f"browser test exceeded {TEST_TIMEOUT_S}s (PTYCHO_NB_BROWSER_TIMEOUT)")

    steps = open(tmp_path / "steps.log", "w")
    hang = open(tmp_path / "hang-traceback.txt", "w")
    _STEP_LOG.append(steps)
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(TEST_TIMEOUT_S)
    faulthandler.dump_traceback_later(TEST_TIMEOUT_S + 60, exit=True, file=hang)
    try:
        yield
    finally:
        signal.alarm(0)
        faulthandler.cancel_dump_traceback_later()
        signal.signal(signal.SIGALRM, old)
        _STEP_LOG.remove(steps)
        steps.close()
        hang.close()


# JS helpers ---------------------------------------------------------------------------------
_KERNEL_IDLE = """() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.connectionStatus === 'connected' && k.status === 'idle'; }"""
# run cell i of the open notebook (no promise returned: the waits below watch the page)
_RUN_CELL = """i => { const nb = window.jupyterapp.shell.currentWidget.content;
  nb.activeCellIndex = i; window.jupyterapp.commands.execute('notebook:run-cell'); }"""
_WARMUP_LABEL = ".jp-OutputArea-output .widget-label:text-is('widgets ready')"
_TRAIN_BUTTON = ".jp-OutputArea-output button:text-is('Train')"
# the input that follows the 'num_workers' label text (ipywidgets description or a separate Label)
_NUM_WORKERS_INPUT = ("xpath=//*[contains(@class,'jp-OutputArea-output')]"
                      "//*[normalize-space(text())='num_workers']/following::input[1]")
_TRAINING_VIEW = ".jp-OutputArea-output .ptycho-nb-training-view"
# widest visible progress bar in the panel's training view (0 when none)
_BAR_WIDTH_JS = f"""() => Math.max(0, ...Array.from(document.querySelectorAll(
  '{_TRAINING_VIEW} .widget-hprogress')).map(e => e.getBoundingClientRect().width))"""
# natural width of the live figure (0 until a PNG decoded)
_LIVE_JS = f"""() => {{ const i = document.querySelector('{_TRAINING_VIEW} .ptycho-nb-live-figure');
  return i && i.offsetParent !== null ? i.naturalWidth : 0; }}"""
# natural widths of the images in the panel's log (the reconstruction)
_RECON_JS = """() => Array.from(document.querySelectorAll(
  '.jp-OutputArea-output .ptycho-nb-output .jp-OutputArea-output img')).map(i => i.naturalWidth)"""
_RECONSTRUCT_BUTTON = ".jp-OutputArea-output button:text-is('Reconstruct')"
# the refinement's view in the panel: its progress line and the natural width of its phase picture
_REFINE_VIEW = ".jp-OutputArea-output .ptycho-nb-output .ptycho-nb-refine-view"
_REFINE_JS = f"""() => Array.from(document.querySelectorAll('{_REFINE_VIEW} img'))
  .map(i => i.naturalWidth)"""
_MESSAGES_JS = """() => Array.from(document.querySelectorAll('.jp-OutputArea-output *'))
  .filter(e => e.offsetParent !== null && e.children.length === 0
               && /num_workers/.test(e.textContent) && e.textContent.trim() !== 'num_workers')
  .map(e => e.textContent.trim())"""


def _num_workers_input(page):
    return page.locator(_NUM_WORKERS_INPUT).filter(visible=True).first


def _open_dataloader_section(page) -> None:
    """Reveal the num_workers control: open the 'execution' Accordion section and/or the
    'dataloader' Tab when they exist (the Panel nests the execution Tab in an Accordion)."""
    for title in ("execution", "dataloader"):
        if page.locator(_NUM_WORKERS_INPUT).filter(visible=True).count():
            return
        # an Accordion header or Tab title: the visible element whose own text is the title
        loc = page.locator("xpath=//*[contains(@class,'jp-OutputArea-output')]"
                           f"//*[normalize-space(text())='{title}']").filter(visible=True)
        if loc.count():
            cls = loc.first.evaluate("e => (e.closest('.lm-TabBar-tab, [class*=Collapse-header]')"
                                     " || e).className")
            log(f"opening section {title!r} (clicking text in {cls!r})")
            loc.first.click()
            page.wait_for_timeout(300)
    _num_workers_input(page).wait_for(state="visible")


def _train_and_reconstruct(page, train, tmp_path: Path) -> None:
    """Train with the quick preset; the bar and the live figure must show in the panel while it
    trains, and the reconstruction image must decode."""
    panel = page.locator(".jp-OutputArea-output .ptycho-nb-panel").first
    # collapse the open 'execution' section so the panel's output area is in view
    page.locator("xpath=//*[contains(@class,'jp-OutputArea-output')]"
                 "//*[normalize-space(text())='execution']").filter(visible=True).first.click()
    t = time.monotonic()
    train.click()
    page.wait_for_function(f"() => ({_BAR_WIDTH_JS})() > 100", timeout=30_000)
    t_bar = time.monotonic() - t
    width = page.evaluate(_BAR_WIDTH_JS)
    page.wait_for_function(f"() => ({_LIVE_JS})() > 0", timeout=60_000)
    t_live = time.monotonic() - t
    label = page.locator(f"{_TRAINING_VIEW} .widget-html").first.inner_text().replace("\u2007", " ")
    still_training = page.locator(".jp-OutputArea-output button:text-is('Stop')").first.is_enabled()
    log(f"progress bar {width:.0f} px after {t_bar:.1f}s ({label!r}); live figure after "
        f"{t_live:.1f}s; training still running then: {still_training}")
    panel.screenshot(path=str(tmp_path / "4-training.png"))
    assert re.match(r"Epoch \d+/\d+", label), label  # 1-based with the total
    recon = page.locator(_RECONSTRUCT_BUTTON).first
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('.jp-OutputArea-output button'))"
        ".filter(b => b.textContent.trim() === 'Reconstruct').every(b => !b.disabled)", timeout=120_000)
    log(f"training finished ({time.monotonic() - t:.1f}s after the click)")
    t = time.monotonic()
    recon.click()
    page.wait_for_function(f"() => ({_RECON_JS})().length > 0", timeout=60_000)
    page.wait_for_function(f"() => ({_RECON_JS})().every(w => w > 0)", timeout=10_000)
    log(f"reconstruction shown ({time.monotonic() - t:.1f}s): naturalWidth {page.evaluate(_RECON_JS)}")
    # the refinement's own view stays beside it: the last epoch's line and phase picture
    page.wait_for_function(f"() => ({_REFINE_JS})().some(w => w > 0)", timeout=10_000)
    line = page.locator(f"{_REFINE_VIEW} .widget-label").first.inner_text()
    log(f"refinement view: {line!r}, picture naturalWidth {page.evaluate(_REFINE_JS)}")
    assert re.match(r"refinement epoch \d+/\d+: deviance", line), line
    panel.screenshot(path=str(tmp_path / "5-reconstructed.png"))
    assert "Error displaying widget" not in page.inner_text("body")


def _copy_screenshots(tmp_path: Path) -> None:
    """Copy the screenshots to PTYCHO_NB_SCREENSHOTS (docs/make_screenshots.py sets it)."""
    dest = os.environ.get("PTYCHO_NB_SCREENSHOTS")
    if not dest:
        return
    import shutil

    names = {"1-rendered.png": "panel_idle.png", "2-invalid.png": "panel_invalid_field.png",
             "4-training.png": "panel_training.png", "5-reconstructed.png": "panel_reconstructed.png"}
    Path(dest).mkdir(parents=True, exist_ok=True)
    for src, name in names.items():
        shutil.copyfile(tmp_path / src, Path(dest) / name)
    log(f"screenshots copied to {dest}")


def test_panel_in_real_browser(tmp_path, hard_timeout):
    missing = _missing_tools()
    if missing:
        msg = "browser test needs: " + ", ".join(missing) + " (run .ci/install-test-extras.sh)"
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail(msg + " — CI is set, so this is a failure, not a skip")
        pytest.skip(msg)
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    t_start = time.monotonic()
    standin = os.environ.get("PTYCHO_NB_BROWSER_STANDIN") == "1"
    root = tmp_path / "root"
    root.mkdir()
    nb_name = "panel.ipynb"
    _write_notebook(root / nb_name, STANDIN_CELL if standin else PANEL_CELL)
    log(f"notebook {root / nb_name} ({'stand-in' if standin else 'Panel()'}); screenshots -> {tmp_path}")

    lab = _Lab(tmp_path / "jupyter", root)
    (tmp_path / "jupyter").mkdir()
    page = None
    console_errors: list[str] = []
    try:
        lab.start()
        with sync_playwright() as p:
            t = time.monotonic()
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            log(f"chromium launched ({time.monotonic() - t:.1f}s)")
            try:
                ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
                ctx.set_default_timeout(STEP_TIMEOUT_MS)
                page = ctx.new_page()
                page.on("console", lambda m: m.type in ("error", "warning")
                            and console_errors.append(f"{m.type}: {m.text}"))

                url = f"{lab.base}/lab/workspaces/ws-{uuid.uuid4().hex[:12]}/tree/{nb_name}?token={lab.token}&reset"
                t = time.monotonic()
                page.goto(url)
                page.wait_for_function("!!window.jupyterapp")
                page.wait_for_function(_KERNEL_IDLE)
                log(f"Lab loaded, kernel idle ({time.monotonic() - t:.1f}s)")

                t = time.monotonic()
                for attempt in range(1, WARMUP_TRIES + 1):
                    page.evaluate(_RUN_CELL, 0)
                    try:
                        page.wait_for_selector(_WARMUP_LABEL, timeout=20_000 * attempt)
                        break
                    except PlaywrightTimeout:
                        log(f"warm-up widget not shown (try {attempt}); running it again")
                else:
                    raise AssertionError(f"no widget shown after {WARMUP_TRIES} tries of a plain Label")
                log(f"widget manager ready ({time.monotonic() - t:.1f}s, {attempt} tries)")

                t = time.monotonic()
                page.evaluate(_RUN_CELL, 1)
                page.wait_for_selector(_TRAIN_BUTTON)
                page.wait_for_selector(".jp-OutputArea-output .widget-text, .jp-OutputArea-output .widget-dropdown")
                page.wait_for_function(
                    "() => !document.body.innerText.includes('Loading widget')")
                body = page.inner_text("body")
                assert "Error displaying widget" not in body
                assert "Loading widget" not in body
                log(f"panel rendered ({time.monotonic() - t:.1f}s)")
                page.screenshot(path=str(tmp_path / "1-rendered.png"), full_page=True)

                train = page.locator(_TRAIN_BUTTON).first
                assert train.is_enabled(), "Train is disabled with the default (valid) config"
                _open_dataloader_section(page)
                inp = _num_workers_input(page)
                before = set(page.evaluate(_MESSAGES_JS))

                # --- invalid value: message appears, field marked, Train disabled -------------------
                t = time.monotonic()
                inp.fill("-1")
                inp.press("Enter")
                inp.press("Tab")
                page.wait_for_function(
                    f"before => ({_MESSAGES_JS})().some(t => !before.includes(t))", arg=sorted(before))
                new_msgs = [m for m in page.evaluate(_MESSAGES_JS) if m not in before]
                log(f"error message shown ({time.monotonic() - t:.1f}s): {new_msgs}")
                train.wait_for(state="visible")
                page.wait_for_function(
                    "() => Array.from(document.querySelectorAll('.jp-OutputArea-output button'))"
                    ".filter(b => b.textContent.trim() === 'Train').every(b => b.disabled)")
                assert not train.is_enabled()
                assert page.locator(".jp-OutputArea-output .ptycho-nb-invalid").count() >= 1, \
                    "no control carries the ptycho-nb-invalid class"
                log("Train disabled, invalid field marked")
                page.screenshot(path=str(tmp_path / "2-invalid.png"), full_page=True)

                # --- fixed value: message gone, Train enabled -------------------------------------------
                t = time.monotonic()
                inp.fill("0")
                inp.press("Enter")
                inp.press("Tab")
                page.wait_for_function(
                    "() => Array.from(document.querySelectorAll('.jp-OutputArea-output button'))"
                    ".filter(b => b.textContent.trim() === 'Train').every(b => !b.disabled)")
                page.wait_for_function(
                    f"msgs => !({_MESSAGES_JS})().some(t => msgs.includes(t))", arg=new_msgs)
                assert train.is_enabled()
                assert page.locator(".jp-OutputArea-output .ptycho-nb-invalid").count() == 0
                log(f"fixed: message gone, Train enabled ({time.monotonic() - t:.1f}s)")
                page.screenshot(path=str(tmp_path / "3-fixed.png"), full_page=True)
                assert "Error displaying widget" not in page.inner_text("body")
                if not standin:
                    _train_and_reconstruct(page, train, tmp_path)
                    _copy_screenshots(tmp_path)
            except BaseException:
                if page is not None:
                    try:
                        page.screenshot(path=str(tmp_path / "failure.png"), full_page=True, timeout=10_000)
                        log(f"failure screenshot: {tmp_path / 'failure.png'}")
                    except Exception as e:  # noqa: BLE001
                        log(f"failure screenshot failed: {e!r}")
                log(f"console errors and warnings: {console_errors[:20]}")
                log(f"lab log tail:\n{lab.tail()}")
                raise
            finally:
                browser.close()
    finally:
        lab.stop()
        log(f"total {time.monotonic() - t_start:.1f}s; screenshots in {tmp_path}")

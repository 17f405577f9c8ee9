#!/usr/bin/env python
"""Check a rendered site in a real browser (headless Chromium) and take a screenshot of every page.

    python tools/check_site.py _site                 # all pages under _site, screenshots in _site/_screenshots
    python tools/check_site.py _site --shots /tmp/s  # screenshots elsewhere
    python tools/check_site.py _site --static-only   # only the checks that need no browser

For every HTML page (site_libs/ and the screenshot folder skipped):
- the page file is at most 10 MB (`--max-mb`);
- every `<audio>` carries its sound inside the page (a `data:` URI, never a file path) and the browser
  decodes it: the element's `duration` after `loadedmetadata` is > 0 (WebAudio's decodeAudioData is
  tried as well and its duration reported);
- every `<img>` loads: `complete` and `naturalWidth > 0` (remote http(s) resources are blocked, so a
  figure must live in the site);
- screenshots of the whole page for a person to look at: 1280 px wide PNG tiles, 4,000 px tall each
  (`NAME.png`, `NAME-2.png`, ...), with a report.json listing every player and figure and where it is.
Also checked without a browser: the same audio/image sources parsed from the HTML (data URIs that
decode to a known audio/image format, relative image files that exist).

Exit status 0 when every check passes, 1 with a list of failures, 2 when Chromium is missing.
Chromium is driven through its DevTools protocol (`--remote-debugging-port`, websocket-client).
"""
import argparse
import base64
import binascii
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

MAX_MB = 10
SKIP_DIRS = {"site_libs", "_screenshots", "_failed", ".quarto", "_mathjax"}
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--mute-audio",
                  "--disable-default-apps", "--disable-extensions", "--hide-scrollbars",
                  "--remote-allow-origins=*", "--allow-file-access-from-files"]


# ----------------------------------------------------------------------------- pure Python
def discover_pages(site):
    """Every `.html` page under `site`, sorted, skipping Quarto's site_libs/ and our screenshot folder."""
    site = Path(site)
    if not site.is_dir():
        raise FileNotFoundError(f"check_site: {site} is not a folder")
    return sorted(p for p in site.rglob("*.html")
                  if not SKIP_DIRS.intersection(p.relative_to(site).parts[:-1]))


def oversized(pages, max_bytes=MAX_MB * 2**20):
    """`(page, size)` for each page whose file is larger than `max_bytes`."""
    return [(p, p.stat().st_size) for p in pages if p.stat().st_size > max_bytes]


class _MediaParser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.audio, self.img, self._open = [], [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "audio":
            self._open = {"srcs": [a["src"]] if a.get("src") else []}
            self.audio.append(self._open)
        elif tag == "source" and self._open is not None and a.get("src"):
            self._open["srcs"].append(a["src"])
        elif tag == "img":
            self.img.append(a.get("src") or "")

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag == "audio":
            self._open = None

    def handle_endtag(self, tag):
        if tag == "audio":
            self._open = None


def parse_media(text):
    """The `<audio>` elements (each a list of its sources) and `<img>` sources of an HTML text."""
    p = _MediaParser()
    p.feed(text)
    p.close()
    return [a["srcs"] for a in p.audio], p.img


def decode_data_uri(uri):
    """`(mime, bytes)` of a `data:` URI; raises ValueError when it is not one or does not decode."""
    if not uri.startswith("data:") or "," not in uri:
        raise ValueError("not a data: URI")
    head, data = uri[5:].split(",", 1)
    parts = head.split(";")
    mime = parts[0].strip().lower() or "text/plain"
    if "base64" in (q.strip().lower() for q in parts[1:]):
        try:
            raw = base64.b64decode("".join(data.split()), validate=True)
        except (binascii.Error, ValueError) as e:
            raise ValueError(f"bad base64 ({e})") from None
    else:
        raw = unquote(data).encode("utf-8")
    return mime, raw


def sniff_audio(raw):
    """The container of some audio bytes (`wav`, `ogg`, `flac`, `mp3`) or None."""
    if raw[:4] == b"RIFF" and raw[8:12] == b"WAVE":
        return "wav"
    if raw[:4] == b"OggS":
        return "ogg"
    if raw[:4] == b"fLaC":
        return "flac"
    if raw[:3] == b"ID3" or (len(raw) > 1 and raw[0] == 0xFF and raw[1] & 0xE0 == 0xE0):
        return "mp3"
    return None


def sniff_image(raw):
    """The format of some image bytes (`png`, `jpeg`, `gif`, `webp`, `svg`) or None."""
    if raw[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if raw[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if raw[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        return "webp"
    head = raw[:512].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in raw[:2048].lower()):
        return "svg"
    return None


def _short(s, n=70):
    return s if len(s) <= n else s[:n] + "..."


def static_check(page, max_bytes=MAX_MB * 2**20):
    """Failures (strings) found by reading one page's HTML: size, audio that is not embedded or not audio, images that cannot load."""
    page = Path(page)
    fails = []
    size = page.stat().st_size
    if size > max_bytes:
        fails.append(f"page is {size / 2**20:.1f} MB (limit {max_bytes / 2**20:.0f} MB)")
    audios, imgs = parse_media(page.read_text(encoding="utf-8", errors="replace"))
    for i, srcs in enumerate(audios):
        if not srcs:
            fails.append(f"audio #{i}: no source")
            continue
        for s in srcs:
            if not s.startswith("data:"):
                fails.append(f"audio #{i}: source is a path, not embedded data (src={_short(s)!r})")
                continue
            try:
                mime, raw = decode_data_uri(s)
            except ValueError as e:
                fails.append(f"audio #{i}: data URI does not decode: {e}")
                continue
            if sniff_audio(raw) is None:
                fails.append(f"audio #{i}: embedded data is not audio ({mime}, {len(raw)} bytes)")
            elif len(raw) <= 44:
                fails.append(f"audio #{i}: embedded audio is empty ({len(raw)} bytes)")
    for i, s in enumerate(imgs):
        if not s:
            fails.append(f"image #{i}: no src")
        elif s.startswith("data:"):
            try:
                mime, raw = decode_data_uri(s)
            except ValueError as e:
                fails.append(f"image #{i}: data URI does not decode: {e}")
                continue
            if sniff_image(raw) is None:
                fails.append(f"image #{i}: embedded data is not an image ({mime}, {len(raw)} bytes)")
        elif urlparse(s).scheme in ("http", "https", "ftp") or s.startswith("//"):
            fails.append(f"image #{i}: remote image, not part of the site (src={_short(s)!r})")
        else:
            target = (page.parent / unquote(urlparse(s).path)).resolve()
            if not target.is_file():
                fails.append(f"image #{i}: file {_short(s)!r} does not exist")
    return fails


# ----------------------------------------------------------------------------- the browser
def find_chromium():
    """Path of a Chromium/Chrome binary (env CHROMIUM first), or None."""
    env = os.environ.get("CHROMIUM")
    if env and Path(env).exists():
        return env
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


class Browser:
    """Headless Chromium and one page, driven over the DevTools protocol (a websocket)."""

    def __init__(self, chromium=None, width=1280, height=900, timeout=60):
        import websocket  # websocket-client (a dependency of jupyter_server)
        self.chromium = chromium or find_chromium()
        if self.chromium is None:
            raise FileNotFoundError("check_site: no Chromium found (apt-get install -y chromium)")
        self.width, self.height, self.timeout = width, height, timeout
        self.tmp = tempfile.mkdtemp(prefix="check_site_")
        self.log = open(Path(self.tmp) / "chromium.log", "wb")
        self.proc = subprocess.Popen(
            [self.chromium, *CHROMIUM_FLAGS, f"--user-data-dir={self.tmp}/profile",
             "--remote-debugging-port=0", "about:blank"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        port_file = Path(self.tmp) / "profile" / "DevToolsActivePort"
        t0 = time.time()
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            if self.proc.poll() is not None or time.time() - t0 > timeout:
                self.close()
                log = (Path(self.tmp) / "chromium.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"check_site: Chromium did not start ({self.chromium}):\n{log}")
            time.sleep(0.1)
        port, path = port_file.read_text().splitlines()[:2]
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{port}{path}", timeout=timeout,
                                              suppress_origin=True, enable_multithread=False)
        self._id, self.events = 0, []
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.target = target
        self.send("Page.enable", session=True)
        self.send("Network.enable", session=True)
        # a page must stand on its own: nothing from the network
        self.send("Network.setBlockedURLs", {"urls": ["http://*", "https://*", "ws://*", "wss://*"]}, session=True)
        self.metrics(self.height)

    def send(self, method, params=None, session=False, timeout=None):
        """Send one command and wait for its answer (events that arrive meanwhile are kept)."""
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        self.ws.send(json.dumps(msg))
        deadline = time.time() + (timeout or self.timeout)
        while True:
            if time.time() > deadline:
                raise TimeoutError(f"check_site: no answer to {method} in {timeout or self.timeout} s")
            m = json.loads(self.ws.recv())
            if m.get("id") == self._id:
                if "error" in m:
                    raise RuntimeError(f"check_site: {method} failed: {m['error']}")
                return m.get("result", {})
            if "method" in m:
                self.events.append(m)

    def wait_event(self, name, timeout=None):
        """Wait for an event of this page's session (True) or give up after `timeout` seconds (False)."""
        deadline = time.time() + (timeout or self.timeout)
        while True:
            for i, e in enumerate(self.events):
                if e.get("method") == name and e.get("sessionId") == self.session:
                    del self.events[: i + 1]
                    return True
            left = deadline - time.time()
            if left <= 0:
                return False
            self.ws.settimeout(left)
            try:
                m = json.loads(self.ws.recv())
            except Exception:
                return False
            finally:
                self.ws.settimeout(self.timeout)
            if "method" in m:
                self.events.append(m)

    def metrics(self, height):
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": self.width, "height": int(height), "deviceScaleFactor": 1, "mobile": False},
                  session=True)

    def open(self, url):
        """Navigate and wait for the load event; returns an error text or None."""
        self.events.clear()
        r = self.send("Page.navigate", {"url": url}, session=True)
        if r.get("errorText"):
            return r["errorText"]
        if not self.wait_event("Page.loadEventFired"):
            return f"no load event within {self.timeout} s"
        return None

    def evaluate(self, expression, timeout=None):
        r = self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                           "returnByValue": True}, session=True, timeout=timeout)
        if "exceptionDetails" in r:
            raise RuntimeError(f"check_site: page script failed: {r['exceptionDetails']}")
        return r["result"].get("value")

    def screenshot(self, path, tile=4000, max_tiles=12):
        """The whole page as PNG tiles `tile` px tall (the first is `path`, then `NAME-2.png`, ...), each one a
        scrolled viewport (so the sidebar shows in every tile); returns (width, page height, tile paths)."""
        path = Path(path)
        lm = self.send("Page.getLayoutMetrics", session=True)
        size = lm.get("cssContentSize") or lm.get("contentSize")
        height = max(1, int(math.ceil(size["height"])))
        t = min(tile, height)
        self.metrics(t)
        paths = []
        try:
            for k, y in enumerate(range(0, height, t)):
                if k == max_tiles:
                    break
                self.evaluate(f"window.scrollTo(0, {y}); new Promise(r => requestAnimationFrame(() => "
                              "requestAnimationFrame(() => r(window.scrollY))))")
                r = self.send("Page.captureScreenshot", {"format": "png", "fromSurface": True},
                              session=True, timeout=120)
                p = path if k == 0 else path.with_name(f"{path.stem}-{k + 1}.png")
                p.write_bytes(base64.b64decode(r["data"]))
                paths.append(p)
        finally:
            self.metrics(self.height)
        return self.width, height, paths

    def close(self):
        try:
            if getattr(self, "ws", None) is not None:
                try:
                    self.send("Browser.close", timeout=5)
                except Exception:
                    pass
                self.ws.close()
        finally:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.log.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# What the page reports about its own media: run inside the page, awaited.
PAGE_SCRIPT = r"""
(async () => {
  const wait = (ms) => new Promise(r => setTimeout(r, ms));
  const short = (s) => (s || '').length > 70 ? s.slice(0, 70) + '...' : (s || '');
  const out = {title: document.title, audio: [], img: [], svg: document.querySelectorAll('svg').length,
               height: document.documentElement.scrollHeight};
  const audios = Array.from(document.querySelectorAll('audio'));
  for (let i = 0; i < audios.length; i++) {
    const a = audios[i];
    const srcs = [a.getAttribute('src')].concat(
      Array.from(a.querySelectorAll('source')).map(s => s.getAttribute('src'))).filter(Boolean);
    const rec = {index: i, src: short(srcs[0]), n_src: srcs.length,
                 y: Math.round(a.getBoundingClientRect().top + window.scrollY),
                 embedded: srcs.length > 0 && srcs.every(s => s.startsWith('data:')),
                 duration: null, error: null, decoded: null, decodeError: null};
    if (a.readyState < 1) {
      a.preload = 'metadata';
      const done = new Promise(r => { a.addEventListener('loadedmetadata', r, {once: true});
                                      a.addEventListener('error', r, {once: true});
                                      const s = a.querySelector('source:last-of-type');
                                      if (s) s.addEventListener('error', r, {once: true}); });
      a.load();
      await Promise.race([done, wait(15000)]);
    }
    rec.duration = (isFinite(a.duration) && a.duration > 0) ? a.duration : null;
    rec.error = a.error ? a.error.code : null;
    if (rec.embedded) {
      try {
        const buf = await (await fetch(srcs[0])).arrayBuffer();
        const ctx = new OfflineAudioContext(1, 1, 22050);
        const ab = await ctx.decodeAudioData(buf);
        rec.decoded = ab.duration;
      } catch (e) { rec.decodeError = String(e); }
    }
    out.audio.push(rec);
  }
  const imgs = Array.from(document.querySelectorAll('img'));
  for (let i = 0; i < imgs.length; i++) {
    const im = imgs[i];
    im.loading = 'eager';
    if (!im.complete) { await Promise.race([new Promise(r => { im.onload = r; im.onerror = r; }), wait(15000)]); }
    try { await Promise.race([im.decode(), wait(5000)]); } catch (e) {}
    out.img.push({index: i, src: short(im.getAttribute('src')), complete: im.complete,
                  y: Math.round(im.getBoundingClientRect().top + window.scrollY),
                  w: im.naturalWidth, h: im.naturalHeight});
  }
  return JSON.stringify(out);
})()
"""


def browser_check(browser, page, shot=None):
    """Open one page; returns (failures, info) from what the page itself reports."""
    fails = []
    err = browser.open(Path(page).resolve().as_uri())
    if err:
        return [f"page does not load: {err}"], {}
    info = json.loads(browser.evaluate(PAGE_SCRIPT, timeout=180))
    for a in info["audio"]:
        if not a["embedded"]:
            fails.append(f"audio #{a['index']}: not embedded data (src={a['src']!r})")
        if not a["duration"]:
            fails.append(f"audio #{a['index']}: the browser does not decode it "
                         f"(duration={a['duration']}, media error={a['error']}, decodeAudioData: "
                         f"{a['decodeError'] or a['decoded']})")
    for im in info["img"]:
        if not im["complete"] or not im["w"]:
            fails.append(f"image #{im['index']}: does not load (naturalWidth={im['w']}, src={im['src']!r})")
    if shot is not None:
        w, h, tiles = browser.screenshot(shot)
        info["screenshot"] = str(shot)
        info["screenshot_tiles"] = [str(t) for t in tiles]
        info["screenshot_size"] = [w, h]
    return fails, info


def check_site(site, shots=None, max_mb=MAX_MB, chromium=None, static_only=False, verbose=True):
    """Check every page of `site`; returns (failures as 'page: what' strings, per-page report dict)."""
    site = Path(site)
    pages = discover_pages(site)
    failures, report = [], {}
    if not pages:
        return [f"{site}: no HTML pages"], report
    if shots is not None:
        Path(shots).mkdir(parents=True, exist_ok=True)
    browser = None if static_only else Browser(chromium)
    try:
        for page in pages:
            rel = page.relative_to(site).as_posix()
            t0 = time.perf_counter()
            f = [f"[static] {x}" for x in static_check(page, max_bytes=max_mb * 2**20)]
            info = {"bytes": page.stat().st_size}
            if browser is not None:
                shot = None if shots is None else Path(shots) / (rel.replace("/", "__")[:-5] + ".png")
                bf, binfo = browser_check(browser, page, shot)
                f += bf
                info.update(binfo)
            info["seconds"] = round(time.perf_counter() - t0, 2)
            info["failures"] = f
            report[rel] = info
            failures += [f"{rel}: {x}" for x in f]
            if verbose:
                print(_summary_line(rel, info), flush=True)
    finally:
        if browser is not None:
            browser.close()
    return failures, report


def _summary_line(rel, info):
    parts = [f"{rel}: {info['bytes'] / 2**20:.2f} MB"]
    if "audio" in info:
        durs = ", ".join(f"{a['duration']:.2f}s" if a["duration"] else "NO" for a in info["audio"])
        parts.append(f"{len(info['audio'])} audio" + (f" ({durs})" if durs else ""))
        ok = sum(1 for i in info["img"] if i["complete"] and i["w"])
        parts.append(f"{ok}/{len(info['img'])} images load, {info['svg']} svg")
    if info.get("screenshot"):
        n = len(info["screenshot_tiles"])
        parts.append(f"screenshot {Path(info['screenshot']).name} ({n} tile{'s' if n > 1 else ''} of a "
                     f"{info['screenshot_size'][0]}x{info['screenshot_size'][1]} page)")
    parts.append(f"{info['seconds']:.1f} s")
    if info["failures"]:
        parts.append(f"{len(info['failures'])} FAILURES")
    return "  " + "; ".join(parts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("site", help="folder of the rendered site")
    ap.add_argument("--shots", default=None, help="folder for screenshots (default SITE/_screenshots)")
    ap.add_argument("--no-shots", action="store_true", help="take no screenshots")
    ap.add_argument("--max-mb", type=float, default=MAX_MB, help="largest page allowed, MB (default 10)")
    ap.add_argument("--chromium", default=None, help="Chromium binary (default: env CHROMIUM, then PATH)")
    ap.add_argument("--static-only", action="store_true", help="only the checks that need no browser")
    ap.add_argument("--json", default=None, help="write the per-page report here (default SHOTS/report.json)")
    args = ap.parse_args(argv)

    site = Path(args.site)
    if not site.is_dir():
        print(f"check_site: {site} is not a folder", file=sys.stderr)
        return 2
    if not args.static_only and (args.chromium or find_chromium()) is None:
        print("check_site: no Chromium found (apt-get install -y chromium, or --static-only)", file=sys.stderr)
        return 2
    shots = None if (args.no_shots or args.static_only) else Path(args.shots or site / "_screenshots")
    print(f"[check] {site} with {'no browser' if args.static_only else args.chromium or find_chromium()}", flush=True)
    t0 = time.perf_counter()
    failures, report = check_site(site, shots=shots, max_mb=args.max_mb, chromium=args.chromium,
                                  static_only=args.static_only)
    out = args.json or (shots / "report.json" if shots else None)
    if out:
        Path(out).write_text(json.dumps(report, indent=1))
    n_audio = sum(len(r.get("audio", [])) for r in report.values())
    n_img = sum(len(r.get("img", [])) for r in report.values())
    print(f"[check] {len(report)} pages, {n_audio} audio players, {n_img} images "
          f"in {time.perf_counter() - t0:.0f} s" + (f"; screenshots in {shots}" if shots else ""), flush=True)
    if failures:
        print(f"[check] {len(failures)} FAILURES:", flush=True)
        for f in failures:
            print("  - " + f, flush=True)
        return 1
    print("[check] all pages pass", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

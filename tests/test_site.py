"""The rendered book: chapter discovery and order, the nbconvert renderer, and the browser check of
pages (audio that decodes, figures that load, size limit, screenshots). The browser tests need
Chromium (`apt-get install -y chromium`) and are skipped, with that reason, without it."""
import base64
import io
import json
import math
import struct
import sys
import time
import wave
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import build_book  # noqa: E402
import check_site  # noqa: E402

CHROMIUM = check_site.find_chromium()
try:
    import websocket  # noqa: F401  (websocket-client drives Chromium's DevTools protocol)
    HAVE_WS = True
except ImportError:
    HAVE_WS = False
needs_browser = pytest.mark.skipif(
    CHROMIUM is None or not HAVE_WS,
    reason="browser check skipped: no Chromium on this machine (apt-get install -y chromium)"
    if CHROMIUM is None else "browser check skipped: websocket-client is not installed")


# ----------------------------------------------------------------------------- tiny media
def wav_bytes(seconds=0.25, sr=16000, freq=440.0):
    """A real 16-bit mono WAV file: a sine tone."""
    n = int(seconds * sr)
    frames = b"".join(struct.pack("<h", int(12000 * math.sin(2 * math.pi * freq * i / sr))) for i in range(n))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(frames)
    return buf.getvalue()


def png_bytes(w=3, h=2):
    """A real RGB PNG file, w x h pixels."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + bytes([200, 30, 30] * w) for _ in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def data_uri(mime, raw):
    return f"data:{mime};base64," + base64.b64encode(raw).decode()


def page(body):
    return f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>t</title></head><body>{body}</body></html>"


GOOD = page(
    "<h1>good</h1>"
    f'<audio controls="controls"><source src="{data_uri("audio/wav", wav_bytes())}" type="audio/wav" /></audio>'
    f'<audio controls src="{data_uri("audio/x-wav", wav_bytes(0.5, 22050))}"></audio>'
    f'<img src="{data_uri("image/png", png_bytes())}" alt="a figure">'
    '<img src="fig.png" alt="a figure file next to the page">')
BAD = page(
    "<h1>bad</h1>"
    '<audio controls src="clip.wav"></audio>'                                      # a path, not data
    f'<audio controls><source src="{data_uri("audio/wav", b"this is no sound at all")}"></audio>'
    '<img src="data:image/png;base64,AAAAAAAA" alt="broken">'                       # not an image
    '<img src="missing.png" alt="no such file">')


@pytest.fixture
def synthetic_site(tmp_path):
    (tmp_path / "good.html").write_text(GOOD)
    (tmp_path / "fig.png").write_bytes(png_bytes(5, 4))
    (tmp_path / "clip.wav").write_bytes(wav_bytes())  # exists, but a page must not point at files
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "bad.html").write_text(BAD)
    return tmp_path


# ----------------------------------------------------------------------------- pure Python
def test_discover_pages_skips_site_libs(tmp_path):
    for rel in ["index.html", "nbs/a.html", "site_libs/bootstrap/x.html", "_screenshots/y.html", "b.htm", "c.css"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("<html></html>")
    pages = [p.relative_to(tmp_path).as_posix() for p in check_site.discover_pages(tmp_path)]
    assert pages == ["index.html", "nbs/a.html"]
    with pytest.raises(FileNotFoundError, match="not a folder"):
        check_site.discover_pages(tmp_path / "nope")


def test_size_limit(tmp_path):
    small, big = tmp_path / "small.html", tmp_path / "big.html"
    small.write_text("x" * 1000)
    big.write_text("x" * 5000)
    assert check_site.oversized([small, big], max_bytes=2000) == [(big, 5000)]
    assert check_site.MAX_MB == 10
    fails = check_site.static_check(big, max_bytes=2000)
    assert len(fails) == 1 and "limit" in fails[0]


def test_media_detection_passes_good_page(synthetic_site):
    audios, imgs = check_site.parse_media(GOOD)
    assert len(audios) == 2 and all(s[0].startswith("data:audio/") for s in audios)
    assert len(imgs) == 2
    mime, raw = check_site.decode_data_uri(audios[0][0])
    assert mime == "audio/wav" and check_site.sniff_audio(raw) == "wav"
    assert check_site.sniff_image(png_bytes()) == "png"
    assert check_site.static_check(synthetic_site / "good.html") == []


def test_media_detection_reports_bad_page(synthetic_site):
    fails = check_site.static_check(synthetic_site / "sub" / "bad.html")
    text = "\n".join(fails)
    assert "audio #0: source is a path" in text and "clip.wav" in text
    assert "audio #1: embedded data is not audio" in text
    assert "image #0: embedded data is not an image" in text
    assert "image #1: file 'missing.png' does not exist" in text
    assert len(fails) == 4


def test_decode_data_uri_errors():
    with pytest.raises(ValueError, match="not a data"):
        check_site.decode_data_uri("clip.wav")
    with pytest.raises(ValueError, match="bad base64"):
        check_site.decode_data_uri("data:audio/wav;base64,@@@@")


def test_cli_static_only_exit_codes(synthetic_site, capsys):
    assert check_site.main([str(synthetic_site), "--static-only"]) == 1
    out = capsys.readouterr().out
    assert "sub/bad.html: [static] audio #0" in out and "good.html" in out
    (synthetic_site / "sub" / "bad.html").unlink()
    assert check_site.main([str(synthetic_site), "--static-only"]) == 0
    assert check_site.main([str(synthetic_site / "nope")]) == 2


# ----------------------------------------------------------------------------- build_book
def test_quarto_config_is_a_website_that_never_executes():
    import yaml
    cfg = yaml.safe_load((ROOT / "_quarto.yml").read_text())
    assert cfg["project"]["type"] == "website"
    assert cfg["execute"]["enabled"] is False
    assert cfg["website"]["sidebar"]["contents"], "the sidebar lists the chapters"
    assert cfg["format"]["html"]["css"] == "nbs/styles.css" and (ROOT / "nbs/styles.css").exists()


def test_every_sidebar_entry_exists():
    # Quarto stops on a missing file: every chapter the sidebar names must be in the repository
    entries = build_book.sidebar_entries(ROOT / "_quarto.yml")
    assert entries and entries[0][1] == "nbs/index.ipynb"
    missing = [href for _, href, _ in entries if not (ROOT / href).exists()]
    assert missing == [], f"_quarto.yml lists notebooks that do not exist: {missing}"


def _nb(path, title, cells=()):
    nb = {"cells": [{"cell_type": "markdown", "id": "t0", "metadata": {}, "source": [f"# {title}\n", "> sub"]},
                    *cells],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    Path(path).write_text(json.dumps(nb))


def test_chapter_order_follows_sidebar_then_adds_new_notebooks(tmp_path):
    (tmp_path / "nbs").mkdir()
    for name, title in [("index", "Front"), ("00_a", "Alpha"), ("01_b", "Beta"), ("02_c", "Gamma")]:
        _nb(tmp_path / "nbs" / f"{name}.ipynb", title)
    (tmp_path / "nbs" / "_draft.ipynb").write_text("{}")
    (tmp_path / "_quarto.yml").write_text(
        "website:\n  sidebar:\n    contents:\n      - href: nbs/index.ipynb\n        text: Intro\n"
        "      - section: Part\n        contents:\n          - nbs/01_b.ipynb\n"
        "          - href: nbs/99_gone.ipynb\n            text: Gone\n          - href: nbs/00_a.ipynb\n"
        "            text: A chapter\n")
    chs = build_book.chapter_order(tmp_path)
    assert [c.name for c in chs] == ["index", "01_b", "00_a", "02_c"]   # missing one dropped, new one appended
    assert [c.title for c in chs] == ["Intro", "Beta", "A chapter", "Gamma"]
    assert [c.section for c in chs] == [None, "Part", "Part", "More chapters"]
    assert chs[0].html == "index.html" and chs[1].html == "01_b.html"
    assert [c.name for c in build_book.select(chs, ["02_c", "00_a.ipynb"])] == ["02_c", "00_a"]
    assert [c.name for c in build_book.select(chs, ["00_a,01_b"])] == ["00_a", "01_b"]
    with pytest.raises(SystemExit, match="no such notebook"):
        build_book.select(chs, ["07_nope"])


def test_directives_are_hidden_like_nbdev_does():
    import nbformat
    src = "#| export\n#| echo: false\n\ndef f(x):\n    #| not a directive\n    return x"
    assert build_book.cell_directives(src) == {"export": True, "echo": "false"}
    assert build_book.strip_directives(src) == "def f(x):\n    #| not a directive\n    return x"
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_raw_cell("---\naliases: [/index.html]\n---"),
        nbformat.v4.new_code_cell("#| default_exp audio"),
        nbformat.v4.new_code_cell("#| hide\nimport secret"),
        nbformat.v4.new_code_cell(src),
        nbformat.v4.new_code_cell("#| export\ny = 1"),
        nbformat.v4.new_markdown_cell("text")])
    nb = build_book.prepare_for_html(nb)
    assert [c.source for c in nb.cells] == [build_book.strip_directives(src), "y = 1", "text"]
    assert nb.cells[0].metadata["transient"] == {"remove_source": True}


def test_decorate_page_links_chapters(tmp_path):
    (tmp_path / "nbs").mkdir()
    for name in ["index", "00_a", "01_b"]:
        _nb(tmp_path / "nbs" / f"{name}.ipynb", name.upper())
    chs = build_book.chapter_order(tmp_path)
    body = ('<html><head></head><body class="jp-Notebook"><a href="00_a.ipynb#sec">x</a>'
            '<a href="https://x.org/y.ipynb">r</a></body></html>')
    out = build_book.decorate_page(body, chs, 1, "/*css*/")
    assert 'href="00_a.html#sec"' in out and 'href="https://x.org/y.ipynb"' in out
    assert 'class="xb-page jp-Notebook"' in out and "/*css*/" in out
    assert '<a href="00_a.html" class="xb-current">' in out
    assert "&larr; Introduction" in out and "01_B &rarr;" in out


def test_build_book_renders_committed_notebooks(tmp_path, capsys):
    site = tmp_path / "site"
    assert build_book.main(["--no-execute", "--site", str(site), "--no-check", "--renderer", "nbconvert"]) == 0
    out = capsys.readouterr().out
    assert "renderer: nbconvert" in out
    chapters = build_book.chapter_order(ROOT)
    for c in chapters:
        text = (site / c.html).read_text()
        assert 'class="xb-sidebar"' in text, c.html
        assert "#| export" not in text, f"{c.html} shows nbdev directives"
    index = (site / "index.html").read_text()
    for c in chapters:
        assert f'href="{c.html}"' in index
    try:  # equations: MathJax copied into the site when jupyter-server-mathjax is installed, else the CDN
        import jupyter_server_mathjax  # noqa: F401
        assert 'src="_mathjax/MathJax.js?config=' in index and (site / "_mathjax" / "MathJax.js").exists()
    except ImportError:
        assert build_book.MATHJAX_CDN.split("?")[0] in index


def test_only_unknown_notebook_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no such notebook"):
        build_book.main(["--only", "does_not_exist", "--site", str(tmp_path / "s"), "--no-check"])


# ----------------------------------------------------------------------------- the browser
@needs_browser
def test_browser_check_on_synthetic_pages(synthetic_site):
    shots = synthetic_site / "_screenshots"
    failures, report = check_site.check_site(synthetic_site, shots=shots, verbose=False)
    good, bad = report["good.html"], report["sub/bad.html"]
    assert good["failures"] == []
    assert [round(a["duration"], 2) for a in good["audio"]] == [0.25, 0.5]
    assert [(i["w"], i["h"]) for i in good["img"]] == [(3, 2), (5, 4)]
    browser_fails = [f for f in bad["failures"] if not f.startswith("[static]")]
    text = "\n".join(browser_fails)
    assert "audio #0: not embedded data" in text and "audio #0: the browser does not decode it" in text
    assert "audio #1: the browser does not decode it" in text
    assert "image #0: does not load" in text and "image #1: does not load" in text
    assert all(f.startswith("sub/bad.html: ") for f in failures)
    for name in ["good.png", "sub__bad.png"]:
        assert (shots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_browser
def test_rendered_book_passes_browser_check(tmp_path):
    t0 = time.time()
    site = tmp_path / "site"
    build_book.render_nbconvert(build_book.chapter_order(ROOT), site)
    # no screenshots here (they are the slow part; `make book` and check_site.py take them)
    failures, report = check_site.check_site(site, shots=None, verbose=False)
    assert failures == [], "\n".join(failures)
    assert "index.html" in report and len(report) == len(build_book.chapter_order(ROOT))
    assert time.time() - t0 < 120


# ----------------------------------------------------------------------------- front page and README
def test_readme_is_generated_from_the_front_page():
    assert (ROOT / "README.md").read_text() == build_book.readme_from_index(), \
        "README.md is out of date: run `python tools/build_book.py --readme`"


def test_front_page_links_only_existing_chapters():
    import re
    nb = json.loads((ROOT / "nbs" / "index.ipynb").read_text())
    text = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    links = re.findall(r"\]\(([\w\-]+\.ipynb)", text)
    assert links, "the front page links its chapters"
    missing = [l for l in links if not (ROOT / "nbs" / l).exists()]
    assert missing == [], f"the front page links chapters that do not exist: {missing}"
    assert "## Results" in text and "20" in text


# ----------------------------------------------------------------------------- execution
def test_execute_notebook_in_profile_and_failure_names_it(tmp_path):
    good, bad = tmp_path / "good.ipynb", tmp_path / "bad.ipynb"
    _nb(good, "Good", [{"cell_type": "code", "id": "c1", "metadata": {}, "execution_count": None, "outputs": [],
                        "source": ["import os; print('profile', os.environ['XTTS_BOOK_PROFILE'])"]}])
    _nb(bad, "Bad", [{"cell_type": "code", "id": "c1", "metadata": {}, "execution_count": None, "outputs": [],
                      "source": ["raise ValueError('chapter is broken')"]}])
    for src in ["#| eval: false\nraise SystemExit('never run')", "#| gpu\nraise SystemExit('needs a GPU')"]:
        nb = json.loads(good.read_text())
        nb["cells"].append({"cell_type": "code", "id": f"s{len(nb['cells'])}", "metadata": {},
                            "execution_count": None, "outputs": [], "source": [src]})
        good.write_text(json.dumps(nb))
    assert build_book.skip_reason("#| eval: false\nx", "cpu") == "eval: false"
    assert build_book.skip_reason("#| gpu\nx", "cpu") == "gpu cell" and build_book.skip_reason("#| gpu\nx", "gpu") is None
    before = bad.read_text()
    dt = build_book.execute_notebook(good, "ci", timeout=120)
    assert dt > 0
    cells = json.loads(good.read_text())["cells"]
    assert "profile ci" in "".join(cells[1]["outputs"][0]["text"])
    assert cells[2]["outputs"] == [] and cells[3]["outputs"] == [] and "tags" not in cells[2]["metadata"]
    with pytest.raises(SystemExit, match=r"(?s)notebook bad\.ipynb FAILED.*ValueError: chapter is broken") as e:
        build_book.execute_notebook(bad, "cpu", timeout=120, failed_dir=tmp_path / "failed")
    assert "chapter is broken" in str(e.value)
    assert bad.read_text() == before, "a failing notebook is left as committed"
    assert (tmp_path / "failed" / "bad.ipynb").exists()


# ----------------------------------------------------------------------------- the Quarto path
def test_quarto_cell_keeps_quarto_options_only():
    keep, src = build_book.quarto_cell("#| export\n#| code-fold: true\n#| eval: false\nx = 1\n#| later: kept")
    assert keep and src == "#| code-fold: true\nx = 1\n#| later: kept"
    assert build_book.quarto_cell("#| hide\nimport os")[0] is False
    assert build_book.quarto_cell("#| default_exp audio")[0] is False
    assert build_book.quarto_cell("#| echo: false\nplot()")[1] == "#| echo: false\nplot()"
    assert build_book.quarto_cell("#| hide_input\nplot()")[1] == "#| echo: false\nplot()"


def test_stage_for_quarto_makes_front_matter(tmp_path):
    import nbformat
    import yaml
    chapters = build_book.chapter_order(ROOT)
    proc = build_book.stage_for_quarto(chapters, tmp_path / "_proc", ROOT)
    assert (proc / "_quarto.yml").read_text() == (ROOT / "_quarto.yml").read_text()
    assert (proc / "nbs" / "styles.css").exists()
    for c in chapters:
        nb = nbformat.read(proc / "nbs" / c.path.name, as_version=4)
        fm = yaml.safe_load(nb.cells[0].source.strip().strip("-"))
        assert nb.cells[0].cell_type == "raw" and fm["title"] == build_book.notebook_title(c.path)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not any(l.strip() in ("#| export", "#| hide") for l in cell.source.splitlines()), c.name
    index = nbformat.read(proc / "nbs" / "index.ipynb", as_version=4)
    assert "aliases:\n- /index.html" in index.cells[0].source
    assert not index.cells[1].source.startswith("# "), "the H1 became the title"


def test_build_book_uses_quarto_when_on_path(tmp_path, monkeypatch, capsys):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "quarto"   # stands in for Quarto: records its arguments, writes a site
    fake.write_text('#!/bin/sh\necho "$@" > "$2/args.txt"\nmkdir -p "$2/_site/nbs"\n'
                    'echo "<html><body>home</body></html>" > "$2/_site/index.html"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ['PATH']}")
    monkeypatch.setattr(build_book, "ROOT", ROOT)
    site = tmp_path / "site"
    try:
        assert build_book.main(["--no-execute", "--site", str(site), "--no-check"]) == 0
        out = capsys.readouterr().out
        assert "renderer: quarto (quarto found at" in out
        assert (site / "index.html").read_text().strip() == "<html><body>home</body></html>"
        assert (ROOT / "_proc" / "args.txt").read_text().split() == ["render", str(ROOT / "_proc"), "--no-execute"]
    finally:
        import shutil
        shutil.rmtree(ROOT / "_proc", ignore_errors=True)


@needs_browser
def test_real_notebook_outputs_play_and_show(tmp_path):
    """A notebook executed like a chapter (IPython Audio player, matplotlib figure) renders to a page whose
    player decodes and whose figure loads; one made with a file path is caught."""
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    code = ("import numpy as np\nimport matplotlib.pyplot as plt\n"
            "from IPython.display import Audio, display\nsr = 22050\nt = np.arange(int(0.75 * sr)) / sr\n"
            "wav = 0.3 * np.sin(2 * np.pi * 220 * t)\ndisplay(Audio(wav, rate=sr))\n"
            "fig, ax = plt.subplots(figsize=(4, 2)); ax.plot(t[:500], wav[:500]); ax.set_title('a tone')\nplt.show()")
    _nb(nbs / "01_demo.ipynb", "Demo", [{"cell_type": "code", "id": "c1", "metadata": {}, "execution_count": None,
                                          "outputs": [], "source": [code]}])
    _nb(nbs / "02_path.ipynb", "Path", [{"cell_type": "code", "id": "c1", "metadata": {}, "execution_count": None,
                                          "outputs": [], "source": [
        "from IPython.display import Audio\nopen('tone.wav','wb').write(Audio([0.0, 0.1, 0.2] * 2000, rate=8000).data)\n"
        "Audio(url='tone.wav')"]}])
    for p in sorted(nbs.glob("*.ipynb")):
        build_book.execute_notebook(p, "ci", timeout=300)
    site = tmp_path / "site"
    build_book.render_nbconvert(build_book.chapter_order(tmp_path), site)
    failures, report = check_site.check_site(site, shots=tmp_path / "shots", verbose=False)
    demo = report["01_demo.html"]
    assert demo["failures"] == []
    assert len(demo["audio"]) == 1 and abs(demo["audio"][0]["duration"] - 0.75) < 0.01
    assert len(demo["img"]) == 1 and demo["img"][0]["w"] > 100
    assert any("02_path.html: audio #0: not embedded data" in f for f in failures)
    assert all(f.startswith("02_path.html") for f in failures)


def test_long_exported_cells_fold_in_both_renderers(tmp_path):
    import nbformat
    body = "\n".join(["class Big:", "    pass"] + [f"x{i} = {i}" for i in range(45)] + ["def helper(): pass"])
    long_export, long_plain = "#| export\n" + body, body
    assert build_book.fold_summary(long_export) == "Code: Big, helper (48 lines)"
    assert build_book.fold_summary(long_plain) is None            # not exported: shown as it is
    assert build_book.fold_summary("#| export\ndef f(): pass") is None  # short: shown
    keep, q = build_book.quarto_cell(long_export)
    assert q.startswith('#| code-fold: true\n#| code-summary: "Code: Big, helper (48 lines)"\nclass Big:')
    (tmp_path / "nbs").mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Folds"),
                                         nbformat.v4.new_code_cell(long_export),
                                         nbformat.v4.new_code_cell("#| export\ny = 1")])
    nbformat.write(nb, tmp_path / "nbs" / "01_f.ipynb")
    build_book.render_nbconvert(build_book.chapter_order(tmp_path), tmp_path / "site")
    html_text = (tmp_path / "site" / "01_f.html").read_text()
    assert html_text.count('<details class="xb-fold"><summary>Code: Big, helper (48 lines)</summary>') == 1
    assert html_text.count("<details") == 1


def test_readme_carries_the_results_table_the_front_page_prints(tmp_path):
    nb = {"cells": [{"cell_type": "markdown", "id": "a", "metadata": {}, "source": ["# T\n", "See [x](01_x.ipynb)."]},
                    {"cell_type": "code", "id": "b", "metadata": {}, "execution_count": None, "source": ["#| echo: false\n..."],
                     "outputs": [{"output_type": "execute_result", "execution_count": None, "metadata": {},
                                  "data": {"text/markdown": ["| system | PESQ |\n", "|---|---|\n", "| GT | 4.5 |"],
                                           "text/plain": ["<Markdown>"]}}]}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    p = tmp_path / "index.ipynb"
    p.write_text(json.dumps(nb))
    text = build_book.readme_from_index(p)
    assert text.startswith(build_book.README_HEADER)
    assert "See [x](nbs/01_x.ipynb)." in text and "| GT | 4.5 |" in text and "echo" not in text

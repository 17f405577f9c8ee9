#!/usr/bin/env python
"""Build the book: the default corpus, every chapter executed in a profile, the rendered site.

    python tools/build_book.py --profile cpu --site _site          # what `make book` runs
    python tools/build_book.py --only 07_vqvae --only 08_quantizer # execute a subset, then render all
    python tools/build_book.py --no-execute                        # only render what is committed
    python tools/build_book.py --readme                            # README.md from nbs/index.ipynb

Steps:
1. the default corpus: `xtts_book.data.default_corpus(profile)` (skipped, with a message, while that
   module does not exist);
2. each chapter notebook in nbs/ is executed in place in the profile (env `XTTS_BOOK_PROFILE`) with
   nbconvert's ExecutePreprocessor, timed, then cleaned with `nbdev_clean` (outputs kept); a failing
   notebook stops the build with a message naming it (its partly executed copy is saved for reading,
   the committed notebook is left as it was);
3. the site: `quarto render` when `quarto` is on PATH (of a copy in _proc/ with nbdev's directives taken
   out and titles made front matter, as nbdev_docs does), else every notebook to HTML with nbconvert's
   HTML exporter (`jupyter nbconvert --to html`, no execution), a chapter sidebar and previous/next
   links added to each page, the front page (nbs/index.ipynb) as index.html;
4. the browser check (tools/check_site.py) when Chromium is installed: audio that decodes, figures that
   load, pages under 10 MB, a screenshot of each page.

Chapter order: the sidebar of _quarto.yml, then any notebook it does not list yet (sorted by name).
"""
import argparse
import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT / "nbs"


# ----------------------------------------------------------------------------- chapters
def discover_notebooks(nbs_dir=NBS):
    """Every notebook of the book in `nbs_dir` (top level), sorted by name; hidden, `_` and checkpoint files skipped."""
    nbs_dir = Path(nbs_dir)
    return sorted(p for p in nbs_dir.glob("*.ipynb")
                  if not p.name.startswith((".", "_")) and ".ipynb_checkpoints" not in p.parts)


def _walk_sidebar(items, section, out):
    for item in items or []:
        if isinstance(item, str):
            out.append((section, item, None))
        elif isinstance(item, dict):
            if "section" in item or "contents" in item:
                _walk_sidebar(item.get("contents"), item.get("section", section), out)
            href = item.get("href") or item.get("file")
            if href and "contents" not in item:
                out.append((section, href, item.get("text")))


def sidebar_entries(quarto_yml=ROOT / "_quarto.yml"):
    """The sidebar of `_quarto.yml` as a list of `(section or None, href, text or None)`, in order."""
    quarto_yml = Path(quarto_yml)
    if not quarto_yml.exists():
        return []
    import yaml
    cfg = yaml.safe_load(quarto_yml.read_text(encoding="utf-8")) or {}
    sidebar = (cfg.get("website") or {}).get("sidebar") or {}
    if isinstance(sidebar, list):  # several sidebars: use them all, in order
        contents = [c for s in sidebar for c in (s.get("contents") or [])]
    else:
        contents = sidebar.get("contents") or []
    out = []
    _walk_sidebar(contents, None, out)
    return out


def notebook_title(path):
    """The chapter title: the first `# ` heading of the notebook's first markdown cells (else the file stem)."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        src = "".join(cell.get("source", []))
        for line in src.splitlines():
            m = re.match(r"^#\s+(.+?)\s*#*\s*$", line)
            if m:
                return m.group(1).strip()
    return Path(path).stem


class Chapter:
    """One page of the book: its notebook, title, sidebar section and HTML file name."""

    def __init__(self, path, title=None, section=None):
        self.path = Path(path)
        self.name = self.path.stem
        self.title = title or notebook_title(self.path)
        self.section = section
        self.html = "index.html" if self.name == "index" else f"{self.name}.html"

    def __repr__(self):
        return f"Chapter({self.name!r}, {self.title!r}, section={self.section!r})"


def chapter_order(root=ROOT):
    """The book's pages in reading order: `_quarto.yml`'s sidebar (notebooks that exist), then the rest, sorted."""
    root = Path(root)
    nbs = {p.resolve(): p for p in discover_notebooks(root / "nbs")}
    seen, out = set(), []
    for section, href, text in sidebar_entries(root / "_quarto.yml"):
        p = (root / href).resolve()
        if p in nbs and p not in seen:
            seen.add(p)
            out.append(Chapter(nbs[p], title=text, section=section))
    # the front page first even when the sidebar does not list it
    idx = (root / "nbs" / "index.ipynb").resolve()
    if idx in nbs and idx not in seen:
        seen.add(idx)
        out.insert(0, Chapter(nbs[idx], title="Introduction"))
    rest = [Chapter(p, section="More chapters") for q, p in nbs.items() if q not in seen]
    return out + rest


def select(chapters, only):
    """The chapters named in `only` (stems or file names); an unknown name is an error that lists the known ones."""
    if not only:
        return list(chapters)
    names = []
    for o in only:
        names += [n.strip() for n in o.split(",") if n.strip()]
    by_name = {c.name: c for c in chapters}
    wanted = []
    for n in names:
        key = Path(n).name
        key = key[:-6] if key.endswith(".ipynb") else key
        if key not in by_name:
            raise SystemExit(f"build_book: --only {n!r}: no such notebook in nbs/ "
                             f"(have: {', '.join(sorted(by_name))})")
        wanted.append(by_name[key])
    return wanted


# ----------------------------------------------------------------------------- environment
def book_env(profile, root=ROOT):
    """The environment for kernels and subprocesses: the profile, and this tree first on PYTHONPATH."""
    env = dict(os.environ)
    env["XTTS_BOOK_PROFILE"] = profile
    pp = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = str(root) + (os.pathsep + pp if pp else "")
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    return env


def _tool(name):
    """A console script of this Python's environment (e.g. nbdev_clean), else the one on PATH."""
    cand = Path(sys.executable).parent / name
    return str(cand) if cand.exists() else shutil.which(name)


def build_corpus(profile, root=ROOT):
    """Step 1: `xtts_book.data.default_corpus(profile)` in a subprocess; returns its path, or None when the module is missing."""
    env = book_env(profile, root)
    probe = subprocess.run([sys.executable, "-c", "import importlib.util as u; "
                            "print(u.find_spec('xtts_book.data') is not None)"],
                           cwd=root, env=env, capture_output=True, text=True)
    if probe.stdout.strip() != "True":
        print("[corpus] xtts_book.data does not exist yet: skipping the default corpus", flush=True)
        return None
    t0 = time.perf_counter()
    code = ("import sys; from xtts_book.data import default_corpus; "
            "p = default_corpus(sys.argv[1]); print('CORPUS=' + str(p))")
    r = subprocess.run([sys.executable, "-c", code, profile], cwd=root, env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout[-4000:] + r.stderr[-8000:])
        raise SystemExit(f"build_book: building the default corpus failed "
                         f"(xtts_book.data.default_corpus({profile!r}), exit {r.returncode})")
    path = next((l[7:] for l in r.stdout.splitlines() if l.startswith("CORPUS=")), None)
    print(f"[corpus] {path} ({time.perf_counter() - t0:.1f} s)", flush=True)
    return path


# ----------------------------------------------------------------------------- execution
SKIP_TAG = "skip-execution"  # nbclient's tag for cells it must not run


def skip_reason(source, profile):
    """Why a code cell is not run in `profile` (`#| eval: false` anywhere; `#| gpu` off the gpu profile), else None."""
    d = cell_directives(source)
    if str(d.get("eval", "")).lower() == "false":
        return "eval: false"
    if "gpu" in d and profile != "gpu":
        return "gpu cell"
    return None


USES = re.compile(r"^(uses [^\n]+|wrote results/[^\n]+)$", re.M)


def used_by(path) -> list[str]:
    """What an executed chapter says it used and wrote: its output lines `uses ROLE: PATH (...)` (the weights or runs
    behind a table) and `wrote results/...` (the results files it rewrote)."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    text = "\n".join("".join(o.get("text", "")) for c in nb.get("cells", []) if c.get("cell_type") == "code"
                     for o in c.get("outputs", []) if o.get("output_type") == "stream")
    return USES.findall(text)


def execute_notebook(path, profile, timeout=3600, failed_dir=None, root=ROOT):
    """Step 2: execute one notebook in place in `profile`; returns seconds; raises SystemExit naming it on failure."""
    import nbformat
    from nbconvert.preprocessors import ExecutePreprocessor, CellExecutionError
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    skipped = []
    for cell in nb.cells:  # cells nbdev_test would not run either keep their committed outputs
        if cell.cell_type == "code" and skip_reason(cell.source, profile):
            cell.metadata.setdefault("tags", []).append(SKIP_TAG)
            skipped.append(cell)
    if skipped:
        print(f"[execute] {path.name}: {len(skipped)} cell(s) not run: "
              + ", ".join(sorted({skip_reason(c.source, profile) for c in skipped})), flush=True)
    ep = ExecutePreprocessor(timeout=timeout, kernel_name="python3", startup_timeout=300,
                             skip_cells_with_tag=SKIP_TAG)
    saved = dict(os.environ)
    os.environ.update(book_env(profile, root))  # the kernel inherits this process's environment
    t0 = time.perf_counter()
    try:
        ep.preprocess(nb, {"metadata": {"path": str(path.parent)}})
    except (CellExecutionError, Exception) as e:  # a timeout or a dead kernel stops the build too
        dt = time.perf_counter() - t0
        where = ""
        if failed_dir is not None:
            failed_dir = Path(failed_dir)
            failed_dir.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, failed_dir / path.name)
            where = f"\n  the partly executed notebook is at {failed_dir / path.name}"
        msg = re.sub(r"\x1b\[[0-9;]*m", "", str(e))  # no terminal colours in the message
        if len(msg) > 6000:
            msg = msg[:1500] + "\n...\n" + msg[-4000:]
        raise SystemExit(f"\nbuild_book: notebook {path.name} FAILED after {dt:.1f} s "
                         f"(profile {profile}): {type(e).__name__}\n{msg}{where}\n"
                         f"  the committed {path} was left unchanged") from None
    finally:
        os.environ.clear()
        os.environ.update(saved)
    dt = time.perf_counter() - t0
    for cell in skipped:
        cell.metadata["tags"].remove(SKIP_TAG)
        if not cell.metadata["tags"]:
            del cell.metadata["tags"]
    nbformat.write(nb, path)
    return dt


_XLA_BANNER = re.compile(r"^(\*{10,}|\[Compiling module .*\] Very slow compile\?.*|E\d{4} .*slow_operation_alarm.*)\n?", re.M)


def strip_compiler_banners(path):
    """Drop XLA's "Very slow compile?" banner (its rows of stars, its slow-operation alarms) from the stderr outputs of a notebook: compiler
    noise about the machine that ran it, not part of what a cell shows. Outputs left empty are removed."""
    nb = json.loads(Path(path).read_text())
    changed = False
    for cell in nb["cells"]:
        kept = []
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream" and o.get("name") == "stderr":
                text = "".join(o["text"])
                new = _XLA_BANNER.sub("", text)
                if new != text:
                    changed = True
                    if not new.strip():
                        continue
                    o["text"] = new.splitlines(keepends=True)
            kept.append(o)
        if "outputs" in cell:
            cell["outputs"] = kept
    if changed:
        Path(path).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return changed


def clean_notebook(path, root=ROOT):
    """`nbdev_clean --fname path` (keeps outputs, strips execution noise) and XLA's compile banners; a missing nbdev
    only warns."""
    strip_compiler_banners(path)
    tool = _tool("nbdev_clean")
    if tool is None:
        print("[clean] nbdev_clean not found: notebooks left as executed", flush=True)
        return
    r = subprocess.run([tool, "--fname", str(path)], cwd=root, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"build_book: nbdev_clean failed on {path}:\n{r.stdout}{r.stderr}")


# ----------------------------------------------------------------------------- rendering
_DIRECTIVE = re.compile(r"^\s*#\|\s*(.*)$")


def cell_directives(source):
    """The `#| ...` lines at the top of a code cell, as a dict (`hide` -> True, `echo: false` -> 'false')."""
    out = {}
    for line in source.splitlines():
        m = _DIRECTIVE.match(line)
        if not m:
            if line.strip() == "":
                continue
            break
        body = m.group(1).strip()
        if ":" in body:
            k, v = body.split(":", 1)
            out[k.strip()] = v.strip()
        elif body:
            k, *rest = body.split(None, 1)
            out[k] = rest[0] if rest else True
    return out


def strip_directives(source):
    """The code of a cell without its leading `#|` lines (what a reader should see)."""
    lines = source.splitlines()
    i = 0
    while i < len(lines) and (_DIRECTIVE.match(lines[i]) or not lines[i].strip()):
        i += 1
    return "\n".join(lines[i:])


FOLD_LINES = 40  # exported cells longer than this are folded (a summary line names what they define)


def fold_summary(source):
    """For a long exported cell, the line a folded cell shows (e.g. `Code: load_torch, StateDictError (58 lines)`); else None."""
    d = cell_directives(source)
    if not any(k in d for k in ("export", "exports", "exporti")):
        return None
    code = strip_directives(source)
    n = len(code.splitlines())
    if n <= FOLD_LINES:
        return None
    names = re.findall(r"^(?:class|def)\s+(\w+)", code, flags=re.M)
    what = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "") if names else "exported code"
    return f"Code: {what} ({n} lines)"


def prepare_for_html(nb):
    """What nbdev/Quarto do to a notebook before showing it: drop `hide` cells and front matter, strip `#|` lines, honour `echo: false`."""
    keep = []
    for cell in nb.cells:
        src = cell.get("source", "")
        if cell.cell_type == "raw" and src.lstrip().startswith("---"):
            continue  # Quarto front matter
        if cell.cell_type == "code":
            d = cell_directives(src)
            if d.get("hide") is True or str(d.get("include", "")).lower() == "false" \
                    or "default_exp" in d and not cell.get("outputs"):
                continue
            fold = fold_summary(src)
            cell.source = strip_directives(src)
            if fold:
                cell.metadata["xb_fold"] = fold
            if str(d.get("echo", "")).lower() == "false":
                cell.metadata["transient"] = {"remove_source": True}
            if not cell.source.strip() and not cell.get("outputs"):
                continue
        keep.append(cell)
    nb.cells = keep
    return nb


def _nav_html(chapters, current):
    parts = ['<nav class="xb-sidebar" aria-label="Chapters">',
             '<a class="xb-title" href="index.html">xtts_book</a>']
    section, open_list = object(), False
    for c in chapters:
        if c.section != section:
            if open_list:
                parts.append("</ol>")
            if c.section:
                parts.append(f'<div class="xb-section">{html.escape(c.section)}</div>')
            parts.append("<ol>")
            open_list, section = True, c.section
        cls = ' class="xb-current"' if c is current else ""
        parts.append(f'<li><a href="{c.html}"{cls}>{html.escape(c.title)}</a></li>')
    if open_list:
        parts.append("</ol>")
    parts.append("</nav>")
    return "\n".join(parts)


def _pager_html(chapters, i):
    prev = chapters[i - 1] if i > 0 else None
    nxt = chapters[i + 1] if i + 1 < len(chapters) else None
    left = f'<a href="{prev.html}">&larr; {html.escape(prev.title)}</a>' if prev else "<span></span>"
    right = f'<a href="{nxt.html}">{html.escape(nxt.title)} &rarr;</a>' if nxt else "<span></span>"
    return f'<nav class="xb-pager">{left}{right}</nav>'


def decorate_page(body, chapters, i, css):
    """Add the stylesheet, the chapter sidebar and previous/next links to one nbconvert page; `.ipynb` links become `.html`."""
    names = {c.path.name: c.html for c in chapters}

    def relink(m):
        target, anchor = m.group(2), m.group(3) or ""
        return f'{m.group(1)}{names[target]}{anchor}"' if target in names else m.group(0)

    body = re.sub(r'(href=")(?:\./)?([\w\-.]+\.ipynb)(#[^"]*)?"', relink, body)
    head_add = f"<style>\n{css}\n</style>\n"
    body = body.replace("</head>", head_add + "</head>", 1)
    body = re.sub(r"<body([^>]*)>", lambda m: _body_open(m.group(1)) + "\n" + _nav_html(chapters, chapters[i]),
                  body, count=1)
    body = body.replace("</body>", _pager_html(chapters, i) + "\n</body>", 1)
    return body


def _body_open(attrs):
    if 'class="' in attrs:
        return "<body" + attrs.replace('class="', 'class="xb-page ', 1) + ">"
    return f'<body class="xb-page"{attrs}>'


# nbconvert's lab template, with long exported cells folded behind a <details> summary
FOLD_TEMPLATE = """{%- extends 'index.html.j2' -%}
{% block input_group -%}
{%- if cell.metadata.get('xb_fold') -%}
<details class="xb-fold"><summary>{{ cell.metadata.xb_fold | e }}</summary>
{{ super() }}
</details>
{%- else -%}
{{ super() }}
{%- endif -%}
{%- endblock input_group %}
"""


MATHJAX_CDN = "https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/latest.js?config=TeX-AMS_CHTML-full,Safe"


def local_mathjax(site):
    """Copy MathJax 2 from the `jupyter-server-mathjax` package (when installed) into `site/_mathjax` so equations
    render offline; returns the URL pages should load (nbconvert's CDN address when the package is missing)."""
    try:
        import jupyter_server_mathjax
    except ImportError:
        return MATHJAX_CDN
    src = Path(jupyter_server_mathjax.__file__).parent / "static"
    if not (src / "MathJax.js").exists():
        return MATHJAX_CDN
    dst = Path(site) / "_mathjax"
    if not (dst / "MathJax.js").exists():
        shutil.copytree(src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns("localization"))
    return "_mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"


def render_nbconvert(chapters, site, css_path=NBS / "styles.css"):
    """Step 3 without Quarto: each notebook to `site/<name>.html` (no execution), the front page as index.html."""
    import nbformat
    from nbconvert import HTMLExporter
    site = Path(site)
    site.mkdir(parents=True, exist_ok=True)
    css = Path(css_path).read_text(encoding="utf-8") if Path(css_path).exists() else ""
    from jinja2 import DictLoader
    exporter = HTMLExporter(template_name="lab", extra_loaders=[DictLoader({"xb_lab.html.j2": FOLD_TEMPLATE})],
                            template_file="xb_lab.html.j2")
    exporter.embed_images = True  # markdown images too become data: URIs
    exporter.exclude_input_prompt = True   # no "In [ ]:" (nbdev_clean drops execution counts anyway)
    exporter.exclude_output_prompt = True
    exporter.mathjax_url = local_mathjax(site)
    written = []
    for i, c in enumerate(chapters):
        nb = prepare_for_html(nbformat.read(c.path, as_version=4))
        body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": c.title,
                                                                          "path": str(c.path.parent)}})
        out = site / c.html
        out.write_text(decorate_page(body, chapters, i, css), encoding="utf-8")
        written.append(out)
    if not any(c.html == "index.html" for c in chapters):  # no front page: a plain contents page
        items = "\n".join(f'<li><a href="{c.html}">{html.escape(c.title)}</a></li>' for c in chapters)
        (site / "index.html").write_text(
            f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>xtts_book</title>"
            f"<style>{css}</style></head><body><h1>xtts_book</h1><ol>{items}</ol></body></html>",
            encoding="utf-8")
        written.append(site / "index.html")
    return written


NBDEV_DIRECTIVES = {"export", "exports", "exporti", "export_", "hide", "default_exp", "hide_input",
                    "hide_output", "collapse_output", "collapse_show", "notest", "slow", "gpu", "eval",
                    "skip_exec", "skip_showdoc", "include"}


def quarto_cell(source):
    """`(keep, source)` for Quarto: nbdev-only `#|` lines removed (Quarto reads `#|` lines as YAML options), hidden cells dropped."""
    d = cell_directives(source)
    if d.get("hide") is True or "default_exp" in d and len(d) == 1 and not strip_directives(source).strip():
        return False, source
    lines, out, head = source.splitlines(), [], True
    fold = fold_summary(source)
    if fold and "code-fold" not in d:
        out += ["#| code-fold: true", "#| code-summary: " + json.dumps(fold)]
    for line in lines:
        m = _DIRECTIVE.match(line) if head else None
        if m:
            body = m.group(1).strip()
            key = body.split(":", 1)[0].strip() if ":" in body else body.split(None, 1)[0] if body else ""
            if ":" in body and key not in NBDEV_DIRECTIVES:
                out.append(f"#| {body}")          # a Quarto cell option: keep it
            elif key == "hide_input" or body == "echo: false":
                out.append("#| echo: false")
            continue
        if line.strip():
            head = False
        out.append(line)
    return True, "\n".join(out)


def front_matter(nb, extra=None):
    """nbdev's title convention made Quarto front matter: the first `# Title` and `> description` become a raw YAML cell."""
    import nbformat
    import yaml
    meta = dict(extra or {})
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        lines = cell.source.splitlines()
        if lines and re.match(r"^#\s+\S", lines[0]):
            meta.setdefault("title", re.sub(r"^#\s+", "", lines[0]).strip())
            rest = lines[1:]
            if rest and rest[0].startswith(">"):
                meta.setdefault("description", rest[0].lstrip("> ").strip())
                rest = rest[1:]
            cell.source = "\n".join(rest).strip()
        break
    nb.cells = [c for c in nb.cells if not (c.cell_type == "markdown" and not c.source.strip())]
    raw = nbformat.v4.new_raw_cell("---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---")
    nb.cells.insert(0, raw)
    return nb


def stage_for_quarto(chapters, proc=ROOT / "_proc", root=ROOT):
    """What nbdev_docs does before Quarto: copy the project to `proc` (gitignored) with each notebook prepared
    (front matter from the H1 title, nbdev directives removed, hidden cells dropped); returns `proc`."""
    import nbformat
    root, proc = Path(root), Path(proc)
    if proc.exists():
        shutil.rmtree(proc)
    shutil.copytree(root / "nbs", proc / "nbs", ignore=shutil.ignore_patterns(".ipynb_checkpoints", "*.ipynb"))
    shutil.copy2(root / "_quarto.yml", proc / "_quarto.yml")
    for c in chapters:
        nb = nbformat.read(c.path, as_version=4)
        cells = []
        for cell in nb.cells:
            if cell.cell_type == "raw" and cell.source.lstrip().startswith("---"):
                continue  # front matter is rebuilt below
            if cell.cell_type == "code":
                keep, cell.source = quarto_cell(cell.source)
                if not keep:
                    continue
            cells.append(cell)
        nb.cells = cells
        extra = {"aliases": ["/index.html"]} if c.name == "index" else None  # the site's root opens the front page
        nbformat.write(front_matter(nb, extra), proc / "nbs" / c.path.name)
    return proc


def render_quarto(chapters, site, root=ROOT):
    """Step 3 with Quarto: stage the notebooks (like nbdev_docs), `quarto render` them (no execution), copy the site to `site`."""
    proc = stage_for_quarto(chapters, root / "_proc", root)
    cmd = [shutil.which("quarto"), "render", str(proc), "--no-execute"]
    print("[render] " + " ".join(cmd), flush=True)
    r = subprocess.run(cmd, cwd=proc)
    if r.returncode != 0:
        raise SystemExit(f"build_book: quarto render failed (exit {r.returncode})")
    import yaml
    out = (yaml.safe_load((proc / "_quarto.yml").read_text()).get("project") or {}).get("output-dir", "_site")
    site = Path(site)
    if site.exists():
        shutil.rmtree(site)
    shutil.copytree(proc / out, site)


# ----------------------------------------------------------------------------- README
README_HEADER = ("<!-- Generated from nbs/index.ipynb by `python tools/build_book.py --readme`: "
                 "edit the notebook, not this file. -->\n\n")


def readme_from_index(index=NBS / "index.ipynb"):
    """README.md's text: the front page's markdown cells and the markdown its code cells print (the results
    table), with chapter links pointing into nbs/."""
    nb = json.loads(Path(index).read_text(encoding="utf-8"))
    parts = []
    for c in nb["cells"]:
        if c.get("cell_type") == "markdown":
            parts.append("".join(c.get("source", [])).strip())
        elif c.get("cell_type") == "code":
            for o in c.get("outputs", []):
                md = (o.get("data") or {}).get("text/markdown")
                if md:
                    parts.append(("".join(md) if isinstance(md, list) else md).strip())
    text = "\n\n".join(p for p in parts if p)
    text = re.sub(r"\]\((?:\./)?([\w\-]+\.ipynb)(#[^)]*)?\)", lambda m: f"](nbs/{m.group(1)}{m.group(2) or ''})", text)
    return README_HEADER + text + "\n"


def write_readme(root=ROOT):
    (Path(root) / "README.md").write_text(readme_from_index(Path(root) / "nbs" / "index.ipynb"), encoding="utf-8")
    print(f"[readme] wrote {Path(root) / 'README.md'} from nbs/index.ipynb", flush=True)


# ----------------------------------------------------------------------------- main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default=os.environ.get("XTTS_BOOK_PROFILE", "cpu"),
                    choices=["ci", "cpu", "gpu"], help="profile the chapters execute in (default cpu)")
    ap.add_argument("--site", default="_site", help="output folder of the rendered site (default _site)")
    ap.add_argument("--only", action="append", default=[], metavar="NAME",
                    help="execute only this notebook (stem, e.g. 07_vqvae; repeat or comma-separate); all are rendered")
    ap.add_argument("--no-execute", action="store_true", help="render the committed notebooks as they are")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per cell before a notebook fails (default 3600)")
    ap.add_argument("--renderer", choices=["auto", "quarto", "nbconvert"], default="auto",
                    help="auto: quarto when it is on PATH, else nbconvert")
    ap.add_argument("--no-check", action="store_true", help="skip the browser check of the rendered site")
    ap.add_argument("--readme", action="store_true", help="only write README.md from nbs/index.ipynb, then stop")
    args = ap.parse_args(argv)

    if args.readme:
        write_readme()
        return 0

    t_all = time.perf_counter()
    site = Path(args.site)
    if not site.is_absolute():
        site = (Path.cwd() / site).resolve()
    chapters = chapter_order(ROOT)
    if not chapters:
        raise SystemExit(f"build_book: no notebooks in {NBS}")
    print(f"[book] {len(chapters)} pages: " + ", ".join(c.name for c in chapters), flush=True)

    if not args.no_execute:
        todo = select(chapters, args.only)
        build_corpus(args.profile)
        times, uses = [], {}
        for c in todo:
            print(f"[execute] {c.path.name} (profile {args.profile}) ...", flush=True)
            dt = execute_notebook(c.path, args.profile, timeout=args.timeout, failed_dir=site.parent / "_failed")
            clean_notebook(c.path)
            times.append((c.name, dt))
            uses[c.name] = used_by(c.path)
            print(f"[execute] {c.path.name}: {dt:.1f} s", flush=True)
        if any(c.name == "index" for c in todo):
            write_readme()  # README.md is the front page's text, results table included
        for name, lines in uses.items():                # which weights and results each chapter used
            for line in lines:
                print(f"[uses] {name}: {line}", flush=True)
        if times:
            print("[execute] times: " + ", ".join(f"{n} {t:.0f} s" for n, t in times)
                  + f"; total {sum(t for _, t in times):.0f} s", flush=True)
    else:
        print("[execute] skipped (--no-execute): rendering the committed notebooks", flush=True)

    quarto = shutil.which("quarto")
    renderer = args.renderer
    if renderer == "auto":
        renderer = "quarto" if quarto else "nbconvert"
        why = (f"quarto found at {quarto}" if quarto else
               "quarto is not on PATH (install it from quarto.org, or `pip install quarto-cli`, to get the full site)")
    else:
        why = f"--renderer {renderer}"
        if renderer == "quarto" and not quarto:
            raise SystemExit("build_book: --renderer quarto but quarto is not on PATH")
    print(f"[render] renderer: {renderer} ({why})", flush=True)
    if renderer == "quarto":
        render_quarto(chapters, site)
    else:
        pages = render_nbconvert(chapters, site)
        print(f"[render] {len(pages)} pages written to {site} (nbconvert HTML, no execution; "
              f"front page {site / 'index.html'})", flush=True)

    rc = 0
    if not args.no_check:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import check_site
        if check_site.find_chromium() is None:
            print("[check] skipped: no Chromium found (apt-get install -y chromium)", flush=True)
        else:
            rc = check_site.main([str(site)])
    print(f"[book] done in {time.perf_counter() - t_all:.0f} s: {site / 'index.html'}", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())

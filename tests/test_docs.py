"""The documentation runs: every fenced code block of README.md and docs/*.md, and every link.

Each block is one test case, named by its file, its index in the file and its first line, so
that a failure names the block:

* ```python blocks run as a script in a fresh interpreter (this one's), ```bash blocks with
  ``bash -euo pipefail``; both in an empty temporary folder, with ``IRNBENCH_HOME`` in another
  temporary folder, the hub offline, one OpenMP thread (unless ``OMP_NUM_THREADS`` is set) and
  this interpreter's ``bin`` first on ``PATH`` (so ``irnbench`` is the one under test).
* ```toml blocks must parse.
* ```text blocks are printed output or commands too long to run here: never run.
* A block whose fence is preceded, on the line just before it, by ``<!-- needs: download -->``,
  ``<!-- needs: gpu -->`` or ``<!-- quickstart -->`` is skipped (the quick-start block is run
  by ``.ci/run`` through ``scripts/readme-command.sh``).

Any other language, or a fence without one, fails: every block is either run or declared text.
Relative links must point to files that exist and, for ``.md`` targets, to headings that exist
(GitHub's heading anchors).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: no tomllib
    tomllib = None

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SKIP_MARKERS = ("<!-- needs: download -->", "<!-- needs: gpu -->", "<!-- quickstart -->")
RUN_LANGUAGES = ("python", "bash")
LANGUAGES = (*RUN_LANGUAGES, "toml", "text")
#: Seconds one block may take (the whole file is meant to stay near a minute on 2 cores).
BLOCK_TIMEOUT = 180
README_MAX_LINES = 250
_FENCE = re.compile(r"^(\s*)```(.*)$")


@dataclass(frozen=True)
class Block:
    path: Path
    index: int  #: 0-based position among the file's fenced blocks
    line: int  #: 1-based line of the opening fence
    language: str
    code: str
    marker: str  #: the line just before the fence (stripped)

    @property
    def rel(self) -> str:
        return self.path.relative_to(ROOT).as_posix()

    @property
    def id(self) -> str:
        first = next((ln.strip() for ln in self.code.splitlines() if ln.strip()), "")
        first = re.sub(r"[^\w.,:=+/-]+", "_", first)[:40].strip("_")
        return f"{self.rel}-block{self.index}-L{self.line}-{self.language or 'none'}-{first}"


def fenced_blocks(path: Path) -> list[Block]:
    """Every fenced code block of a Markdown file, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, info = m.group(1), m.group(2).strip()
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not re.match(rf"^{re.escape(indent)}```\s*$", lines[i]):
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        if i >= len(lines):
            raise AssertionError(f"{path}:{start + 1}: unclosed code fence")
        marker = lines[start - 1].strip() if start > 0 else ""
        language = info.split()[0] if info else ""
        blocks.append(Block(path, len(blocks), start + 1, language, "\n".join(body) + "\n",
                            marker))
        i += 1
    return blocks


ALL_BLOCKS = [b for p in DOC_FILES for b in fenced_blocks(p)]
RUNNABLE = [b for b in ALL_BLOCKS
            if b.language in RUN_LANGUAGES + ("toml",) and b.marker not in SKIP_MARKERS]


def test_doc_files_found():
    assert (ROOT / "README.md") in DOC_FILES
    assert len(DOC_FILES) > 1, "docs/*.md not found"


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=lambda b: b.id)
def test_block_has_a_known_language(block: Block):
    assert block.language in LANGUAGES, (
        f"{block.rel}:{block.line}: fence language {block.language!r}; use one of "
        f"{', '.join(LANGUAGES)} (text for printed output and commands not run here)"
    )


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    home = tmp_path / "irnbench_home"
    home.mkdir()
    # One intra-op thread: on a busy 2-core machine two OpenMP threads per process can make a
    # small IRN pass 30× slower (spin-waiting for a core), and these blocks need no speed.
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(
        IRNBENCH_HOME=str(home),
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        PYTHONUNBUFFERED="1",
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
    )
    return env


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda b: b.id)
def test_block_runs(block: Block, tmp_path: Path):
    if block.language == "toml":
        if tomllib is None:
            pytest.skip("tomllib needs Python 3.11")
        tomllib.loads(block.code)
        return
    work = tmp_path / "work"
    work.mkdir()
    script = tmp_path / ("block.py" if block.language == "python" else "block.sh")
    script.write_text(block.code, encoding="utf-8")
    cmd = ([sys.executable, str(script)] if block.language == "python"
           else ["bash", "-euo", "pipefail", str(script)])
    try:
        proc = subprocess.run(cmd, cwd=work, env=_env(tmp_path), capture_output=True,
                              text=True, timeout=BLOCK_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{block.rel}:{block.line}: block ran over {BLOCK_TIMEOUT} s\n"
                    f"{exc.stdout or ''}\n{exc.stderr or ''}")
    assert proc.returncode == 0, (
        f"{block.rel}:{block.line}: {block.language} block exited {proc.returncode}\n"
        f"--- code ---\n{block.code}--- stdout ---\n{proc.stdout[-4000:]}\n"
        f"--- stderr ---\n{proc.stderr[-4000:]}"
    )


# -- links ------------------------------------------------------------------------------------
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_CODE_SPAN = re.compile(r"`+[^`]*`+")


def _prose(path: Path) -> str:
    """The file without its fenced blocks and code spans (links there are not links)."""
    out, fence = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line):
            fence = not fence
            continue
        if not fence:
            out.append(_CODE_SPAN.sub("", line))
    return "\n".join(out)


def github_anchors(path: Path) -> set[str]:
    """The heading anchors GitHub makes for a Markdown file (lower case, punctuation dropped,
    spaces to '-', repeats numbered), plus explicit ``<a id|name="...">`` anchors."""
    seen: dict[str, int] = {}
    anchors: set[str] = set()
    for line in _prose_with_code_spans(path).splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", m.group(1))
            slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            anchors.add(slug if n == 0 else f"{slug}-{n}")
        anchors.update(re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", line))
    return anchors


def _prose_with_code_spans(path: Path) -> str:
    out, fence = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line):
            fence = not fence
            continue
        if not fence:
            out.append(line)
    return "\n".join(out)


def _links(path: Path) -> list[str]:
    return _LINK.findall(_prose(path))


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(path: Path):
    broken = []
    for target in _links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            broken.append(f"{target} (no such file: {dest.relative_to(ROOT)})"
                          if dest.is_relative_to(ROOT) else f"{target} (outside the repository)")
            continue
        if anchor and dest.suffix == ".md" and anchor not in github_anchors(dest):
            broken.append(f"{target} (no heading #{anchor} in {dest.relative_to(ROOT)})")
    assert not broken, f"{path.relative_to(ROOT)}: broken links:\n  " + "\n  ".join(broken)


# -- the README's shape -------------------------------------------------------------------------
def test_readme_is_a_users_guide_length():
    n = len((ROOT / "README.md").read_text(encoding="utf-8").splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines (at most {README_MAX_LINES})"


def test_readme_quickstart_block_has_two_commands():
    """``scripts/readme-command.sh N`` runs line N of the block after ``<!-- quickstart -->``."""
    blocks = [b for b in fenced_blocks(ROOT / "README.md") if b.marker == "<!-- quickstart -->"]
    assert len(blocks) == 1 and blocks[0].language == "bash"
    commands = [ln for ln in blocks[0].code.splitlines() if ln and not ln.startswith("#")]
    assert len(commands) == 2
    assert "irnbench run" in commands[0] and "tox" in commands[1]

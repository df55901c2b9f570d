"""benchmarks/results/ stays findable: a folder per topic, every file named in its topic's README,
whose first line names the current file; and every `benchmarks/results/...` path the code and
docs cite exists."""

import glob
import itertools
import os
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
CITING = {".md", ".py", ".ipynb", ".sh", ".yaml", ".toml"}
"""Files whose `benchmarks/results/...` paths must exist (the consoles, `*.log`, keep the paths of their day)."""
SKIP_DIRS = {"__pycache__", "node_modules", "site-packages", "build", "dist"}
CITED = re.compile(r"benchmarks/results(?:/[\w.*{},-]+)*/?")
CURRENT = re.compile(r"current: (.*)$", re.IGNORECASE)
LINK = re.compile(r"\]\(([^)\s#]+)\)|`(\.\./[^`\s]+)`")


def unindexed(results: Path) -> list[str]:
    """Files under `results` that no index names: each file of a topic folder (sub-folders such as
    `history/` included) by its path from the topic folder, in backticks or a link, in the topic's
    README.md; each topic by `topic/` in the top README.md; nothing else at the top."""
    problems = []
    top = (results / "README.md").read_text() if (results / "README.md").exists() else ""
    for entry in sorted(results.iterdir()):
        if entry.is_file():
            if entry.name != "README.md":
                problems.append(f"{entry.name}: not in a topic folder")
            continue
        if f"`{entry.name}/`" not in top:
            problems.append(f"{entry.name}/: not in {results.name}/README.md")
        readme = entry / "README.md"
        if not readme.exists():
            problems.append(f"{entry.name}/: no README.md")
            continue
        text = readme.read_text()
        for path in sorted(p for p in entry.rglob("*") if p.is_file() and p != readme):
            name = path.relative_to(entry).as_posix()
            if f"`{name}`" not in text and f"({name})" not in text:
                problems.append(f"{entry.name}/{name}: not named in {entry.name}/README.md")
    return problems


def current_files(topic: Path) -> list[str]:
    """The files the first line of a topic's README names as current (backticked after `current:`)."""
    first = (topic / "README.md").read_text().splitlines()[0]
    match = CURRENT.search(first)
    return re.findall(r"`([^`]+)`", match.group(1)) if match else []


def _expand(pattern: str) -> list[str]:
    """`a_{x,y}.b` -> `a_x.b`, `a_y.b`."""
    parts = re.split(r"\{([^{}]*)\}", pattern)
    choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
    return ["".join(c) for c in itertools.product(*choices)]


def _sources(repo: Path):
    """The code and docs under `repo`, not descending into hidden folders (.git, .venv) or build output."""
    for folder, dirs, files in os.walk(repo):
        dirs[:] = [d for d in dirs if not (d.startswith(".") or d in SKIP_DIRS or d.endswith(".egg-info"))]
        yield from (Path(folder, f) for f in files if Path(f).suffix in CITING)


def stale_citations(repo: Path) -> list[str]:
    """`benchmarks/results/...` paths in the repository's code and docs that match no file or folder."""
    problems = []
    for path in sorted(_sources(repo)):
        rel = path.relative_to(repo)
        for cited in set(CITED.findall(path.read_text(errors="replace"))):
            cited = cited.rstrip(".,")
            if not all(glob.glob(str(repo / p)) for p in _expand(cited)):
                problems.append(f"{rel}: {cited}")
    return problems


def broken_links(results: Path) -> list[str]:
    """Relative links (`](x)`, and backticked `../x`) in the Markdown under `results` that resolve to nothing."""
    problems = []
    for md in sorted(results.rglob("*.md")):
        for link in itertools.chain.from_iterable(LINK.findall(md.read_text())):
            if link and "://" not in link and not (md.parent / link).exists():
                problems.append(f"{md.relative_to(results)}: {link}")
    return problems


def test_every_committed_file_is_named_in_its_topic_readme():
    assert unindexed(RESULTS) == []


def test_each_topic_readme_names_its_current_files_first():
    topics = [d for d in RESULTS.iterdir() if d.is_dir()]
    assert len(topics) >= 8
    for topic in topics:
        names = current_files(topic)
        assert names, f"{topic.name}/README.md: its first line names no current file"
        for name in names:
            assert (topic / name).is_file() and not name.startswith("history/"), f"{topic.name}: {name}"


def test_every_cited_results_path_exists():
    assert stale_citations(REPO) == []


def test_links_between_results_resolve():
    assert broken_links(RESULTS) == []


def test_the_checks_find_what_is_missing(tmp_path):
    results = tmp_path / "benchmarks" / "results"
    (results / "warm" / "history").mkdir(parents=True)
    (results / "cold").mkdir()
    (results / "README.md").write_text("| [`warm/`](warm/README.md) | ... |\n")
    (results / "stray.md").write_text("x")
    (results / "warm" / "README.md").write_text("# Warm, current: `new.md`\n\n`new.md`; [`old`](history/old.md)\n")
    for name in ("new.md", "history/old.md", "history/older.md", "new.log"):
        (results / "warm" / name).write_text("see [this](../gone.md)\n")
    (results / "warm" / "new.md").write_text("see [this](../gone.md), `../warm/new.md` and [old](history/old.md)\n")
    (results / "cold" / "README.md").write_text("Nothing current.\n")
    assert unindexed(results) == [
        "cold/: not in results/README.md",
        "stray.md: not in a topic folder",
        "warm/history/older.md: not named in warm/README.md",
        "warm/new.log: not named in warm/README.md",
    ]
    assert current_files(results / "warm") == ["new.md"] and current_files(results / "cold") == []
    assert broken_links(results) == [f"warm/{n}: ../gone.md" for n in ("history/old.md", "history/older.md", "new.md")]
    cite = "benchmarks/" + "results"  # not spelt out: this file's own citations are checked too
    (tmp_path / "docs.md").write_text(f"`{cite}/warm/new.md`, {cite}/warm/{{new,gone}}.md.\n")
    (tmp_path / "code.py").write_text(f'P = "{cite}/warm/history/*.md"  # {cite}/cold/*.parquet\n')
    (tmp_path / "run.log").write_text(f"{cite}/gone.md\n")  # consoles are not checked
    assert stale_citations(tmp_path) == [f"code.py: {cite}/cold/*.parquet", f"docs.md: {cite}/warm/{{new,gone}}.md"]

"""The README is the front door and docs/ the manual: the README stays small, its links resolve,
every command the README and the docs show exists, and the configuration page's tree is conf/'s.
(Links between docs pages, their anchors and the included result files are checked by
``make docs``, which builds the site with ``--strict``.)"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CONF, ROOT

README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
README_MAX_BYTES = 12 * 1024


def fenced_lines(text: str) -> list[str]:
    """The lines of a page's fenced shell blocks (```bash, ```sh, ```console), continuations joined."""
    lines = []
    for block in re.findall(r"```(?:bash|sh|console)\n(.*?)```", text, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        lines += [line.strip().removeprefix("$ ") for line in joined.splitlines() if line.strip()]
    return [line for line in lines if not line.startswith("#")]


def make_targets() -> set[str]:
    return set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))


def job_names() -> set[str]:
    from hybrid.commands import JOBS

    return set(JOBS)


def module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a parent package that does not exist
        return False


def unknown_command(line: str) -> str | None:
    """Why the command on ``line`` does not exist in this checkout, or ``None`` if it does (or is
    no command of this project's: ``pip``, ``wandb sync``, ...)."""
    words = shlex.split(line.split(" # ")[0], comments=True)
    while words and ("=" in words[0] and not words[0].startswith("-")):  # FOO=bar before the command
        words = words[1:]
    if not words:
        return None
    program, rest = words[0], words[1:]
    if program in ("sudo",) and rest:
        program, rest = rest[0], rest[1:]
    if program.endswith("hybrid"):
        return None if rest and rest[0] in job_names() | {"--help"} else f"no job {rest[:1]}"
    if program == "make":
        targets = [w for w in rest if not w.startswith("-") and "=" not in w]
        missing = [t for t in targets if t not in make_targets()]
        return f"no make target {missing}" if missing else None
    if program in ("python", "python3", "torchrun", "bash") or program.endswith("/python"):
        if rest[:1] == ["-m"] and len(rest) > 1:  # python -m MODULE (train.py -m is a multirun)
            return None if module_exists(rest[1]) else f"no module {rest[1]}"
        scripts = [w for w in rest if w.endswith((".py", ".sh"))]
        missing = [s for s in scripts if not (ROOT / s).is_file()]
        return f"no script {missing}" if missing else None
    return None


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_every_command_shown_exists(page):
    wrong = [(line, why) for line in fenced_lines(page.read_text()) if (why := unknown_command(line))]
    assert not wrong, wrong


def test_the_command_check_catches_what_does_not_exist():
    assert unknown_command("hybrid trian experiment=quickstart")
    assert unknown_command("make quickstrat")
    assert unknown_command("python -m hybrid.nope x=1")
    assert unknown_command("python bench/nope.py --rounds 2")
    assert unknown_command("hybrid train experiment=quickstart") is None
    assert unknown_command("torchrun --nproc_per_node=2 train.py trainer=ddp") is None


def test_the_readme_is_a_front_door():
    assert README.stat().st_size <= README_MAX_BYTES, f"README.md is {README.stat().st_size} bytes"


def test_every_readme_link_resolves():
    text = README.read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    local = [link.split("#")[0] for link in links if not re.match(r"[a-z]+://", link)]
    assert local, "the README links into docs/"
    missing = [link for link in local if link and not (ROOT / link).exists()]
    assert not missing, missing
    pages = {p.name for p in DOCS}
    assert {Path(link).name for link in local if link.startswith("docs/")} <= pages


def configuration_tree() -> str:
    text = (ROOT / "docs" / "configuration.md").read_text()
    found = re.search(r"```\nconf/\n(.*?)```", text, re.S)
    assert found, "docs/configuration.md has no conf/ tree"
    return found.group(1)


def test_the_configuration_tree_lists_every_config_file_group_and_option():
    tree = configuration_tree()
    named = set(re.findall(r"[\w-]+", tree))
    missing = [p.name for p in CONF.glob("*.yaml") if p.name not in tree]
    for group in (p for p in CONF.iterdir() if p.is_dir()):
        missing += [f"{group.name}/"] if f"{group.name}/" not in tree else []
        missing += [f"{group.name}/{o.stem}" for o in group.rglob("*.yaml") if o.stem not in named]
    assert not missing, f"the configuration page's tree lacks {missing}"


def test_the_configuration_page_lists_every_key_of_every_schema():
    """The page's key tables come from the schemas (docs/hooks/config_keys.py): every declared key
    is in them, with its default."""
    import sys

    sys.path.insert(0, str(ROOT / "docs" / "hooks"))
    try:
        import config_keys
    finally:
        sys.path.pop(0)
    tables = config_keys.key_tables()
    assert "| `lr` | `float` | `0.001` |" in tables and "| `scheduler.warmup_epochs` | `float` | `1.0` |" in tables
    assert "| `emb_dim` | `int` | `24` |" in tables and "| `video.fps` |" in tables
    assert "<!-- config-keys -->" in (ROOT / "docs" / "configuration.md").read_text()


@pytest.mark.slow
def test_the_site_ships_pages_not_its_build_hook_and_wraps_wide_code(tmp_path):
    """mkdocs build (strict) into a temporary folder: no Python source in the site (the hook that
    generates the configuration tables stays the builder's); code blocks wrap (the extra CSS)."""
    site = tmp_path / "site"
    built = subprocess.run(
        [str(Path(sys.executable).parent / "mkdocs"), "build", "--strict", "-d", str(site)], cwd=ROOT,
        capture_output=True, text=True, timeout=600, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    assert not list(site.rglob("*.py")), list(site.rglob("*.py"))
    css = (site / "stylesheets" / "extra.css").read_text()
    assert "white-space: pre-wrap" in css
    assert 'href="stylesheets/extra.css"' in (site / "index.html").read_text()

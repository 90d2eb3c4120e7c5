"""The README and docs/: every link leads somewhere, every command they name exists, every repository
path they name is there, and every section the README ever had is still somewhere."""

from __future__ import annotations

import argparse
import importlib.util
import re
from pathlib import Path

import pytest

from tools import readme

ROOT = Path(__file__).resolve().parents[2]
PAGES = readme.pages(ROOT)
#: Top-level entries of the repository whose paths the pages name; paths under the ones the
#: tools write (.local/, dist/, test-output/) are made by running them, not kept in git.
KEPT: tuple[str, ...] = ("agent", "bench", "cli", "container", "docs", "events", "functions")
KEPT += ("local", "portal", "statemachines", "tests", "tools", ".ci")
#: Where each section of the README as it was before docs/ held the reference went: the page,
#: and the heading it is under there.
SECTIONS = {
    "The three commands": ("README.md", "The first five minutes"),
    "Benchmark": ("docs/benchmarks.md", "Benchmarks"),
    "The desktop lifecycle": ("docs/lifecycle.md", "The desktop lifecycle"),
    "Deploying to an AWS account": ("docs/deploying.md", "Deploying to an AWS account"),
    "Security and operations": ("docs/security.md", "Security and operations"),
    "Parameters": ("docs/parameters.md", "Parameters"),
    "How a desktop is made": ("docs/workflows.md", "How a desktop is made"),
    "idle_session": ("docs/workflows.md", "idle_session"),
    "provision_session": ("docs/workflows.md", "provision_session"),
    "release_image": ("docs/workflows.md", "release_image"),
    "sweep_fleet": ("docs/workflows.md", "sweep_fleet"),
    "The local stack": ("docs/local-stack.md", "The local stack"),
    "API": ("docs/api.md", "API"),
    "The portal": ("README.md", "The portal"),
    "The command-line client": ("README.md", "The command-line client"),
    "Events": ("docs/api.md", "Events"),
    "Layout": ("README.md", "A short map"),
}


def _page_id(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def _split_fences(text: str) -> tuple[str, list[str]]:
    """The page's text outside fenced code blocks, and the blocks' lines."""
    outside: list[str] = []
    fenced: list[str] = []
    for index, part in enumerate(re.split(r"^```[^\n]*\n", text, flags=re.MULTILINE)):
        after = part
        if index % 2:  # inside a fence: up to its closing fence
            block, _, after = part.partition("```")
            fenced += block.splitlines()
        outside.append(after)
    return "\n".join(outside), fenced


def _prose_and_code(text: str) -> tuple[str, list[str]]:
    """The page's text outside code, and its code: each fenced block's lines and each span."""
    outside, fenced = _split_fences(text)
    return re.sub(r"`[^`\n]+`", " ", outside), fenced + re.findall(r"`([^`\n]+)`", outside)


def _headings(text: str) -> list[str]:
    outside, _ = _split_fences(text)
    return [line.lstrip("#").strip() for line in outside.splitlines() if re.match(r"#{1,6} ", line)]


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    heading = re.sub(r"[`*_]", "", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", heading).replace(" ", "-")


def _commands(page: Path) -> list[str]:
    """Each command the page's code names: its lines and spans, split at ``&&``, ``;``, ``|``."""
    _, code = _prose_and_code(page.read_text(encoding="utf-8"))
    pieces: list[str] = []
    for snippet in code:
        pieces += [piece.strip() for piece in re.split(r"&&|;|\|", snippet.split(" # ")[0])]
    return [piece for piece in pieces if piece]


def _make_targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-z][a-z0-9-]*):", makefile, flags=re.MULTILINE))


def _cli_parser() -> argparse.ArgumentParser:
    from dcvfleet_cli.main import build_parser

    return build_parser()


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps its subcommands in a private attribute
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_the_readme_starts_with_the_first_five_minutes() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    headings = _headings(text)
    first = headings.index("The first five minutes")
    assert first == 1  # right after the title
    assert headings[first + 1 : first + 4] == [
        "1. `make demo`",
        "2. `make local`, then the portal",
        "3. `make test`",
    ]
    two = text[text.index("### 2. ") : text.index("### 3. ")]
    for needed in ("portal_url", "`demo`", "`admin`", ".local/stack.json"):
        assert needed in two, f"step 2 of the README does not name {needed}"


@pytest.mark.parametrize(("old", "where"), SECTIONS.items(), ids=list(SECTIONS))
def test_every_section_the_readme_had_is_still_somewhere(old: str, where: tuple[str, str]) -> None:
    page, heading = where
    assert heading in _headings((ROOT / page).read_text(encoding="utf-8")), (
        f"the README's old section {old!r} should be under {heading!r} in {page}"
    )


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_link_leads_to_a_page_and_heading_that_exist(page: Path) -> None:
    prose, _ = _prose_and_code(page.read_text(encoding="utf-8"))
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", prose):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:: not this repository's
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md":
            slugs = {_slug(h) for h in _headings(resolved.read_text(encoding="utf-8"))}
            if anchor not in slugs:
                broken.append(f"{target}: no heading #{anchor} in {resolved.name}")
    assert broken == []


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_repository_path_named_exists(page: Path) -> None:
    _, code = _prose_and_code(page.read_text(encoding="utf-8"))
    missing = []
    for span in code:
        for path in re.findall(r"(?:^|\s)((?:\.ci|[a-z]+)/[\w./*<>{}-]*)", span):
            if path.split("/")[0] not in KEPT or re.search(r"[<{]", path):
                continue
            if not any(ROOT.glob(path.rstrip("/"))):
                missing.append(path)
    assert missing == []


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_make_target_named_exists(page: Path) -> None:
    targets = _make_targets()
    named = {
        word
        for command in _commands(page)
        if command.startswith("make ")
        for word in command.split()[1:]
        if re.fullmatch(r"[a-z][a-z0-9-]*", word)  # not VAR=value, nor an option
    }
    assert named - targets == set()


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_python_module_and_script_named_exists(page: Path) -> None:
    missing = []
    for command in _commands(page):
        words = command.split()
        if not words or not re.search(r"(^|/)python3?$", words[0]):
            continue
        if words[1:2] == ["-m"]:
            module = words[2]
            top = module.split(".")[0]
            on_hosts = (ROOT / "agent" / top).is_dir()  # the agent runs from agent/ on a host
            if importlib.util.find_spec(module) is None and not on_hosts:
                missing.append(module)
        elif len(words) > 1 and words[1].endswith(".py") and not (ROOT / words[1]).exists():
            missing.append(words[1])
    assert missing == []


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_dcvfleet_command_named_is_one_the_cli_has(page: Path) -> None:
    unknown = []
    for command in _commands(page):
        words = command.split()
        if not words or not re.search(r"(^|/)dcvfleet$", words[0]):
            continue
        parser = _cli_parser()
        rest = words[1:]
        while (choices := _subcommands(parser)) and rest:
            word = rest.pop(0)
            if word.startswith("-"):
                option = parser._option_string_actions.get(word)
                if option is None:
                    unknown.append(f"{command}: no option {word!r}")
                    break
                if option.nargs != 0 and rest:
                    rest.pop(0)  # its value
                continue
            if word not in choices:
                unknown.append(f"{command}: no command {word!r}")
                break
            parser = choices[word]
    assert unknown == []

"""PowerShell cannot run here, so its syntax is checked by parsing (tools/pslint.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("pslint", ROOT / "tools" / "pslint.py")
assert _spec is not None
assert _spec.loader is not None
pslint = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pslint)


def test_the_windows_install_script_and_user_data_parse() -> None:
    assert pslint.main([]) == 0


def test_the_user_data_is_the_templates_powershell_block() -> None:
    script = pslint.windows_user_data(ROOT / "template.yaml")
    assert "install.ps1" in script
    assert "<powershell>" not in script
    assert "${" not in script


def test_a_syntax_error_is_reported_with_its_position() -> None:
    assert pslint.errors('if ($ready) {\n    Write-Host "ok"\n') != []
    assert pslint.errors('if ($ready) {\n    Write-Host "ok"\n}\n') == []
    problems = pslint.errors('$x = @{ a = 1\nWrite-Host "b"\n')
    assert problems
    assert all(":" in p for p in problems)


def test_main_fails_on_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.ps1"
    broken.write_text("function Install-Agent {\n  param([string]$Path\n}\n")
    assert pslint.main([str(broken)]) == 1

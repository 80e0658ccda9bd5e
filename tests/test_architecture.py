"""The import rules of docs/architecture.md hold (.importlinter): core imports no app, sync reaches connectors
only through its registry, the domain apps import no connector, and no package has an import circle."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_it_keeps_every_import_contract():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_a_broken_rule_is_reported(tmp_path):
    """The check can fail: a config forbidding what the project really does (connectors -> sync) breaks."""
    config = tmp_path / "contracts.ini"
    config.write_text(
        "[importlinter]\nroot_packages =\n    sync\n    connectors\n\n"
        "[importlinter:contract:x]\nname = connectors may not use the engine\ntype = forbidden\n"
        "source_modules =\n    connectors\nforbidden_modules =\n    sync\n"
    )
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache", "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "BROKEN" in result.stdout

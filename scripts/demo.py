"""`make demo`: repair a Trillian/Kaniko-shaped image on a throwaway local registry.

Starts a real docker-registry on a free loopback port, pushes an image shaped like Trillian's
``db_server:v1.6.0`` (an OCI manifest whose last layer kept a Docker media type), then runs
``check`` → ``convert --dry-run`` → ``convert`` → ``check`` and shows skopeo failing before
and succeeding after. The registry and its storage are removed at the end.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import seed  # noqa: E402 - the demo reuses the test suite's independent seeder
from tests.support.registry import registry_factory_at  # noqa: E402

REPO = "google/trillian/db_server"
TAG = "v1.6.0"


def run(*args: str, expect: int | None = None) -> int:
    print(f"\n$ {shlex.join(args)}", flush=True)
    code = subprocess.run(args, stdin=subprocess.DEVNULL).returncode
    print(f"[exit {code}]", flush=True)
    if expect is not None and code != expect:
        raise SystemExit(f"demo: expected exit {expect}, got {code}")
    return code


def main() -> None:
    missing = [t for t in ("docker-registry", "skopeo") if shutil.which(t) is None]
    if missing:
        raise SystemExit(f"demo needs {', '.join(missing)}: apt-get install -y {' '.join(missing)}")
    tool = [sys.executable, "-m", "oci_normalize"]
    with (
        tempfile.TemporaryDirectory(prefix="oci-normalize-demo-") as tmp,
        registry_factory_at(Path(tmp)) as start,
    ):
        reg = start()
        ref = f"{reg.host}/{REPO}:{TAG}"
        print(f"# throwaway registry at {reg.url}; pushing a Kaniko-shaped image as {ref}")
        seed.push_mixed_kaniko(reg.url, REPO, TAG, layers=4, seed="trillian")
        archive = Path(tmp) / "db_server.tar"
        print("\n# the original bug: skopeo cannot turn the mixed manifest into a Docker archive")
        run(
            "skopeo",
            "copy",
            "-q",
            "--src-tls-verify=false",
            f"docker://{ref}",
            f"docker-archive:{archive}",
            expect=1,
        )
        run(*tool, "check", ref, expect=1)
        run(*tool, "convert", "--dry-run", ref, expect=0)
        run(*tool, "convert", ref, expect=0)
        run(*tool, "check", ref, expect=0)
        print("\n# and now the peer is happy")
        run(
            "skopeo",
            "copy",
            "-q",
            "--src-tls-verify=false",
            f"docker://{ref}",
            f"docker-archive:{archive}",
            expect=0,
        )
    print("\ndemo: done (registry stopped, storage removed)")


if __name__ == "__main__":
    main()

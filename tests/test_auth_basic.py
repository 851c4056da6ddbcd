"""Basic auth (htpasswd) against the real registry, through the CLI as a user runs it.

Every credential source a user may already have is exercised: a temporary ``DOCKER_CONFIG``, a
credential helper script on PATH, ``--password-stdin``, a containers auth file. Wrong or missing
credentials give one clear line and change nothing. Every output is checked for the secrets.
A blob redirected to "object storage" (a second server) must arrive there without credentials.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from oci_normalize import api
from oci_normalize.http.auth import Credential
from tests.support import secretguard, seed
from tests.support.cli import cli_process
from tests.support.faultproxy import FaultProxy, Rule
from tests.support.registry import RunningRegistry, registry_factory_at

pytestmark = pytest.mark.registry

USER = "carol"
PASSWORD = "carol-basic-pw-2468"
secretguard.register_basic(USER, PASSWORD)


@dataclass
class Setup:
    open: RunningRegistry  # same storage, no auth: seeding and checking
    secured: RunningRegistry  # htpasswd
    plain: RunningRegistry  # another registry, no auth: a copy destination
    base: Path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    base = tmp_path_factory.mktemp("basic-auth")
    with registry_factory_at(base / "registries") as factory:
        open_reg = factory()
        secured = factory(
            htpasswd={USER: PASSWORD},
            extra_config={"storage": {"filesystem": {"rootdirectory": str(open_reg.storage_dir)}}},
        )
        plain = factory()
        layout = seed.build_layout(base, layers=2, seed="basic")
        for tag in ("v1", "inplace-ok", "wrong", "missing", "redirect"):
            seed.push_docker_v2s2(layout, f"{open_reg.host}/team/app:{tag}")
        yield Setup(open_reg, secured, plain, base)


def user_env(tmp_path: Path) -> dict[str, str]:
    """A clean environment: own HOME, no credential variables, fake helpers first on PATH."""
    home = tmp_path / "home"
    (tmp_path / "bin").mkdir(exist_ok=True)
    home.mkdir(exist_ok=True)
    drop = ("DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "OCI_NORMALIZE_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["HOME"] = str(home)
    env["PATH"] = f"{tmp_path / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def b64auth() -> str:
    return base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


def test_docker_config_auths(setup: Setup, tmp_path: Path) -> None:
    env = user_env(tmp_path)
    config_dir = tmp_path / "docker"
    config_dir.mkdir()
    (config_dir / "config.json").write_text(
        json.dumps({"auths": {setup.secured.host: {"auth": b64auth()}}})
    )
    env["DOCKER_CONFIG"] = str(config_dir)
    proc = cli_process("check", "--json", f"{setup.secured.host}/team/app:v1", env=env)
    assert proc.returncode == 1, proc.stderr  # 1: Docker media types found
    assert json.loads(proc.stdout)["results"][0]["oci"] is False


def test_credential_helper_on_path(setup: Setup, tmp_path: Path) -> None:
    env = user_env(tmp_path)
    helper = tmp_path / "bin" / "docker-credential-testhelper"
    answer = json.dumps({"ServerURL": setup.secured.host, "Username": USER, "Secret": PASSWORD})
    helper.write_text(
        "#!/bin/sh\n"
        '[ "$1" = get ] || exit 2\n'
        f'[ "$(cat)" = "{setup.secured.host}" ] || {{ echo "credentials not found"; exit 1; }}\n'
        f"echo '{answer}'\n"
    )
    helper.chmod(helper.stat().st_mode | stat.S_IEXEC)
    docker_dir = Path(env["HOME"]) / ".docker"
    docker_dir.mkdir()
    (docker_dir / "config.json").write_text(
        json.dumps({"credHelpers": {setup.secured.host: "testhelper"}})
    )
    proc = cli_process("check", f"{setup.secured.host}/team/app:v1", env=env)
    assert proc.returncode == 1, proc.stderr


def test_password_stdin_convert_in_place(setup: Setup, tmp_path: Path) -> None:
    env = user_env(tmp_path)
    ref = f"{setup.secured.host}/team/app:inplace-ok"
    before = seed.head_manifest(setup.open.url, "team/app", "inplace-ok")
    proc = cli_process(
        "convert",
        "--json",
        "--username",
        USER,
        "--password-stdin",
        ref,
        stdin=PASSWORD + "\n",
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "converted" and result["old_digest"] == before
    assert seed.head_manifest(setup.open.url, "team/app", "inplace-ok") == result["new_digest"]


def test_containers_auth_file(setup: Setup, tmp_path: Path) -> None:
    env = user_env(tmp_path)
    auth_file = tmp_path / "auth.json"
    auth_file.write_text(json.dumps({"auths": {setup.secured.host: {"auth": b64auth()}}}))
    env["REGISTRY_AUTH_FILE"] = str(auth_file)
    proc = cli_process("check", f"{setup.secured.host}/team/app:v1", env=env)
    assert proc.returncode == 1, proc.stderr


def test_wrong_password_is_a_clear_error_and_changes_nothing(setup: Setup, tmp_path: Path) -> None:
    env = user_env(tmp_path)
    env["OCI_NORMALIZE_USERNAME"] = USER
    env["OCI_NORMALIZE_PASSWORD"] = "wrong-" + PASSWORD
    secretguard.register(env["OCI_NORMALIZE_PASSWORD"])
    before = seed.head_manifest(setup.open.url, "team/app", "wrong")
    proc = cli_process("convert", "--json", f"{setup.secured.host}/team/app:wrong", env=env)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert "unauthorized" in line and "refused credentials from $OCI_NORMALIZE_USERNAME" in line
    assert json.loads(proc.stdout)["status"] == "error"
    assert seed.head_manifest(setup.open.url, "team/app", "wrong") == before


def test_missing_credentials_say_where_they_were_looked_for(setup: Setup, tmp_path: Path) -> None:
    env = user_env(tmp_path)
    before = seed.head_manifest(setup.open.url, "team/app", "missing")
    proc = cli_process("convert", f"{setup.secured.host}/team/app:missing", env=env)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert "none were found" in line and ".docker/config.json" in line and "auth.json" in line
    assert seed.head_manifest(setup.open.url, "team/app", "missing") == before


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--username", USER], "", "--password-stdin"),
        (["--password-stdin"], PASSWORD, "needs --username"),
    ],
)
def test_credential_flags_misused(
    setup: Setup, tmp_path: Path, args: list[str], stdin: str, message: str
) -> None:
    ref = f"{setup.secured.host}/team/app:v1"
    proc = cli_process("check", *args, ref, stdin=stdin, env=user_env(tmp_path))
    assert proc.returncode == 2 and message in proc.stderr


def test_blob_redirected_to_object_storage_carries_no_credentials(setup: Setup) -> None:
    """A cross-registry copy reads blobs; the source redirects them to another server."""
    with (
        FaultProxy(
            setup.secured.host, upstream_auth=(USER, PASSWORD), strip_prefix="/storage"
        ) as storage,
        FaultProxy(setup.secured.host) as front,
    ):
        front.add(
            Rule(
                "redirect",
                method="GET",
                path=r"/blobs/sha256:",
                times=100,
                target=f"http://{storage.host}/storage",
            )
        )
        cred = Credential(username=USER, password=PASSWORD, source="test")
        c = api.Client(credentials=lambda r: cred if r == front.host else Credential())
        result = api.convert(
            f"{front.host}/team/app:redirect", f"{setup.plain.host}/copied/app:v1", client=c
        )
        assert result.pushed_blobs == 3
        redirected = [s for s in front.seen if s.action == "redirect"]
        assert len(redirected) == 3 and all(s.authorization for s in redirected)
        assert len(storage.seen) == 3
        assert not any(s.authorization for s in storage.seen)

"""What each command imports: a list of modules, not a time (issue 19, start-up).

Each case runs the real entry point (``python -m oci_normalize ARGS``) in a fresh interpreter and
reads ``sys.modules`` once the command is done. ``--version`` loads no HTTP, convert or result
model stack; ``check`` of a registry that cannot be reached builds no model (no pydantic); a
registry reference never loads the batch stack, the archive and layout stores, the schema1
rebuild or rich (only ``--help`` and the batch progress bar print with rich).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Final

import pytest

from oci_normalize.cli import app as cli_app
from tests.support import seed
from tests.support.registry import RunningRegistry, free_port

ROOT: Final = Path(__file__).resolve().parents[1]

#: Runs the CLI as ``python -m oci_normalize`` does, then writes the loaded modules to argv[1].
PROBE: Final = """
import json, runpy, sys
out, sys.argv = sys.argv[1], ["oci-normalize", *sys.argv[2:]]
try:
    runpy.run_module("oci_normalize", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
else:
    code = 0
with open(out, "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""

#: Only ``--help`` and batch's progress bar print with rich; pydantic only builds results.
RICH: Final = ("rich",)
PYDANTIC: Final = ("pydantic", "pydantic_core")
#: The batch stack (targets, run, journal, report, rollback, migrate) and what batch prints.
BATCH: Final = ("oci_normalize.batch.", "oci_normalize.cli.batch")
#: The stores a registry reference never uses, and the schema1 rebuild (only for schema1 trees).
LOCAL_STORES: Final = (
    "oci_normalize.store.archive",
    "oci_normalize.store.ociarchive",
    "oci_normalize.store.tarmembers",
    "oci_normalize.store.layout",
)
SCHEMA1: Final = ("oci_normalize.convert.schema1",)
#: Only a Docker config file with credentials needs the docker package (none in these tests).
DOCKER: Final = ("docker",)
#: What printing the version never needs: HTTP, the stores, the convert stack, the API.
NETWORK: Final = (
    "requests",
    "urllib3",
    "oci_normalize.http.transport",
    "oci_normalize.http.credentials",
    "oci_normalize.store.registry",
    "oci_normalize.convert.planner",
    "oci_normalize.convert.normalize",
    "oci_normalize.convert.pipeline",
    "oci_normalize.store.client",
    "oci_normalize.api",
)
#: ``serve``'s command and package: only ``serve`` (and the whole app, for help) loads them.
SERVE: Final = ("oci_normalize.serve", "oci_normalize.cli.serve")
REGISTRY_REF: Final = (*BATCH, *LOCAL_STORES, *SCHEMA1, *RICH, *DOCKER, *SERVE)
#: What plans and writes: ``check`` loads it only once it has read a tree (to list referrers).
PLANNING: Final = (
    "oci_normalize.convert.pipeline",
    "oci_normalize.convert.planner",
    "oci_normalize.convert.push",
    "oci_normalize.convert.hooks",
    "oci_normalize.convert.diff",
)


@dataclass(frozen=True)
class Ran:
    code: object
    modules: frozenset[str]

    def matching(self, names: Iterable[str]) -> list[str]:
        """Loaded modules that are one of ``names`` or, for a name ending in '.', below it."""
        out = []
        for module in sorted(self.modules):
            for name in names:
                if name.endswith("."):
                    hit = module.startswith(name)
                else:
                    hit = module == name or module.startswith(name + ".")
                if hit:
                    out.append(module)
                    break
        return out


def run_cli(tmp_path: Path, *args: str) -> Ran:
    """The CLI with ``args`` in a fresh interpreter, HOME empty (no credential files)."""
    out = tmp_path / "modules.json"
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "REGISTRY_AUTH"))}
    env.pop("XDG_RUNTIME_DIR", None)
    env["HOME"] = str(home)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(out), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert out.exists(), proc.stderr
    doc = json.loads(out.read_text())
    return Ran(code=doc["code"], modules=frozenset(doc["modules"]))


def unreachable() -> str:
    return f"127.0.0.1:{free_port()}/nobody/home:1"


def test_the_probe_sees_what_a_command_loads(tmp_path: Path) -> None:
    # The control: a docker-archive loads the archive store; the probe must see it.
    ran = run_cli(tmp_path, "check", f"docker-archive:{tmp_path / 'none.tar'}")
    assert ran.code == 2
    assert ran.matching(["oci_normalize.store.archive"]) == ["oci_normalize.store.archive"]


PACKAGE_NAMES: Final = """
import sys, types
import oci_normalize as o
assert "oci_normalize.api" not in sys.modules
import oci_normalize.convert.planner  # as the CLI does before it needs the API
from oci_normalize import convert
from oci_normalize.api import convert as api_convert
assert convert is api_convert and o.convert is api_convert, convert
print(sorted(n for n in o.__all__ if isinstance(getattr(o, n), types.ModuleType)), o.__version__)
"""


def test_the_package_names_load_on_first_use() -> None:
    # convert is a function and a subpackage: the package attribute must stay the function.
    proc = subprocess.run(
        [sys.executable, "-c", PACKAGE_NAMES], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["[]", metadata.version("oci-normalize")]


def test_version_loads_no_network_convert_or_model_stack(tmp_path: Path) -> None:
    ran = run_cli(tmp_path, "--version")
    assert ran.code == 0
    assert "typer" in ran.modules  # the probe ran the CLI
    assert ran.matching((*NETWORK, *REGISTRY_REF, *PYDANTIC)) == []


def test_check_unreachable_builds_no_model(tmp_path: Path) -> None:
    ran = run_cli(tmp_path, "check", "--retries", "0", "--connect-timeout", "2", unreachable())
    assert ran.code == 2
    assert "oci_normalize.store.registry" in ran.modules  # it did try the registry
    assert ran.matching((*REGISTRY_REF, *PYDANTIC, *PLANNING)) == []


def test_check_unreachable_json_builds_its_error_result(tmp_path: Path) -> None:
    # The --json error line is a model: pydantic is loaded then, and only then.
    ran = run_cli(tmp_path, "check", "--json", "--retries", "0", unreachable())
    assert ran.code == 2
    assert "pydantic" in ran.modules
    assert ran.matching(REGISTRY_REF) == []


@pytest.mark.registry
def test_check_and_convert_registry_ref_load_only_the_registry_path(
    tmp_path: Path, registry: RunningRegistry
) -> None:
    layout = seed.build_layout(tmp_path, layers=1, seed="imports")
    ref = f"{registry.host}/imports/v2s2:v1"
    seed.push_docker_v2s2(layout, ref)
    checked = run_cli(tmp_path, "check", ref)
    assert checked.code == 1  # Docker types found: the whole tree was read
    assert checked.matching(REGISTRY_REF) == []
    assert "oci_normalize.convert.planner" in checked.modules  # its referrers were listed
    converted = run_cli(tmp_path, "convert", "--dry-run", ref)
    assert converted.code == 0
    assert "oci_normalize.convert.pipeline" in converted.modules
    assert converted.matching(REGISTRY_REF) == []


def test_a_command_builds_only_itself_and_the_rest_gets_the_whole_app() -> None:
    # typer builds every registered command's options at each start: a command pays for its own.
    one = cli_app._app_for(["check", "--retries", "0", "host/repo:tag"])
    assert [c.callback.__name__ for c in one.registered_commands if c.callback] == ["check"]
    assert one.registered_callback is cli_app.app.registered_callback  # --version still works
    for args in ([], ["--help"], ["--version", "check"], ["chek", "x"], ["-h"]):
        assert cli_app._app_for(args) is cli_app.app, args
    served = cli_app._app_for(["serve", "--help"])
    assert [c.name for c in served.registered_commands] == ["serve"]
    names = [c.name or c.callback.__name__ for c in cli_app.app.registered_commands if c.callback]
    assert names == ["check", "convert", "batch", "rollback", "serve"]  # serve last, once


def test_one_command_app_prints_and_fails_as_the_whole_app(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli_app.run(["check", "--help"]) == 0
    assert "Usage: oci-normalize check [OPTIONS]" in capsys.readouterr().out
    assert cli_app.run(["check"]) == 2  # a missing argument is still a usage error
    assert "Missing argument" in capsys.readouterr().err
    assert cli_app.run(["--version", "convert"]) == 0
    assert capsys.readouterr().out.startswith("oci-normalize ")
    assert cli_app.run(["chek"]) == 2
    assert "Did you mean 'check'?" in capsys.readouterr().err


#: A registry-to-registry convert with the background preload switched off: whether pydantic
#: is loaded when the first write (POST or PUT) leaves, and once the result is built.
FIRST_WRITE: Final = """
import json, socket, sys
import oci_normalize.api as api
api.preload_result_models = lambda: None  # the result's own import is then the only one
seen = {}
send = socket.socket.sendall
def sendall(self, data, *args):
    if "write" not in seen and bytes(data[:5]) in (b"POST ", b"PUT /"):
        seen["write"] = "pydantic" in sys.modules
    return send(self, data, *args)
socket.socket.sendall = sendall
result = api.convert(sys.argv[1], sys.argv[2])
print(json.dumps({"first_write": seen.get("write"), "end": "pydantic" in sys.modules,
                  "status": result.status, "blobs": result.pushed_blobs + result.mounted_blobs}))
"""


@pytest.mark.registry
def test_convert_reads_plans_and_writes_before_it_loads_pydantic(
    tmp_path: Path, registry: RunningRegistry
) -> None:
    # The planner's outcome is plain data until a result is asked for: the models' import is
    # not on the path to the first write (it overlaps the writes, see the next test).
    layout = seed.build_layout(tmp_path, layers=2, seed="first-write")
    src = f"{registry.host}/imports/first:v1"
    seed.push_docker_v2s2(layout, src)
    proc = subprocess.run(
        [sys.executable, "-c", FIRST_WRITE, src, f"{registry.host}/imports/copied:v1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc == {"first_write": False, "end": True, "status": "converted", "blobs": 3}


PRELOAD: Final = """
import sys, threading
from oci_normalize.results import preload_result_models
assert "oci_normalize.result_models" not in sys.modules
preload_result_models()
loaders = [t for t in threading.enumerate() if t.name == "preload-results"]
assert len(loaders) == 1 and not loaders[0].daemon, loaders
from oci_normalize.result_models import ConvertResult  # waits for the thread's import
assert ConvertResult.__module__ == "oci_normalize.result_models"
loaders[0].join()
preload_result_models()  # loaded: no second thread
assert not [t for t in threading.enumerate() if t.name == "preload-results"]
print("ok")
"""


def test_preload_loads_the_models_once_on_a_thread_the_process_waits_for() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", PRELOAD], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert (proc.returncode, proc.stdout.strip(), proc.stderr) == (0, "ok", "")

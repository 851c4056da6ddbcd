"""Conversions through a fault-injecting proxy: they complete, and no tag ever points at a tree
with missing parts. Also measures what a retry costs in requests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from oci_normalize import api
from oci_normalize.errors import NotFoundError, RateLimitedError, RegistryError
from oci_normalize.options import ClientOptions, RetryPolicy
from oci_normalize.reference import Reference
from oci_normalize.store.registry import Registry
from tests.support import seed
from tests.support.faultproxy import FaultProxy, Rule
from tests.support.registry import RunningRegistry, registry_factory_at

pytestmark = pytest.mark.registry

FAST = RetryPolicy(attempts=4, base_s=0.05, cap_s=0.2, total_s=15)
OPTIONS = ClientOptions(read_timeout=1.0, connect_timeout=1.0, retry=FAST)
MANIFEST_GET = r"/manifests/"
CHILD_PUT = r"/manifests/sha256:"


@dataclass
class Setup:
    source: RunningRegistry
    dest: RunningRegistry
    src_proxy: FaultProxy
    dest_proxy: FaultProxy
    list_body: bytes


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    base = tmp_path_factory.mktemp("faults")
    with registry_factory_at(base / "registries") as factory:
        source, dest = factory(), factory()
        seed.push_docker_list(source.url, "src/list", "seed", base)
        body, _, _ = seed.get_manifest(source.url, "src/list", "seed")
        with FaultProxy(source.host) as src_proxy, FaultProxy(dest.host) as dest_proxy:
            yield Setup(source, dest, src_proxy, dest_proxy, body)


@pytest.fixture(autouse=True)
def clean_rules(setup: Setup) -> None:
    setup.src_proxy.clear()
    setup.dest_proxy.clear()


def retag(setup: Setup, tag: str) -> str:
    return seed.put_manifest(setup.source.url, "src/list", tag, setup.list_body, seed.DOCKER_LIST)


def assert_tree_complete(url: str, repo: str, ref: str) -> None:
    """Every manifest and blob under ``ref`` is present (checked without oci_normalize)."""
    body, _, _ = seed.get_manifest(url, repo, ref)
    doc = json.loads(body)
    for child in doc.get("manifests", []):
        assert_tree_complete(url, repo, child["digest"])
    for blob in [doc["config"], *doc["layers"]] if "config" in doc else []:
        resp = requests.head(f"{url}/v2/{repo}/blobs/{blob['digest']}", timeout=10)
        assert resp.status_code == 200, f"{repo}@{blob['digest']} missing"


def test_in_place_conversion_survives_faults_and_counts_each_retry(setup: Setup) -> None:
    retag(setup, "clean")
    retag(setup, "faulty")
    clean = api.convert(
        f"{setup.src_proxy.host}/src/list:clean", client=api.Client(options=OPTIONS)
    )
    assert clean.status == "converted"

    setup.src_proxy.add(
        Rule("status", method="GET", path=MANIFEST_GET, status=503),
        Rule("slow", method="GET", path=MANIFEST_GET, delay=1.5),  # past the 1 s read timeout
        Rule("status", method="HEAD", path=MANIFEST_GET, status=429, headers={"Retry-After": "1"}),
        Rule("reset", method="PUT", path=CHILD_PUT),  # dropped before the registry saw it
        Rule("lose", method="PUT", path=CHILD_PUT),  # stored, but the answer never came
        Rule("lose", method="PUT", path=r"/manifests/faulty$"),  # the tag moved, answer lost
    )
    client = api.Client(options=OPTIONS)
    result = api.convert(f"{setup.src_proxy.host}/src/list:faulty", client=client)

    assert result.status == "converted" and result.new_digest == clean.new_digest
    assert seed.head_manifest(setup.source.url, "src/list", "faulty") == result.new_digest
    assert_tree_complete(setup.source.url, "src/list", "faulty")
    assert all(rule.fired == 1 for rule in setup.src_proxy.rules)
    reg = client.registry(Reference.parse(f"{setup.src_proxy.host}/src/list:faulty"))
    assert isinstance(reg, Registry)
    faults = len(setup.src_proxy.rules)
    assert reg.retries == faults
    assert result.requests == clean.requests + faults  # one request per fault, no more
    print(f"clean run: {clean.requests} requests; {faults} faults: {result.requests} requests")


def test_a_clean_run_sends_no_extra_request(setup: Setup) -> None:
    retag(setup, "plain")
    client = api.Client(options=OPTIONS)
    result = api.convert(f"{setup.src_proxy.host}/src/list:plain", client=client)
    reg = client.registry(Reference.parse(f"{setup.src_proxy.host}/src/list:plain"))
    assert isinstance(reg, Registry) and reg.retries == 0
    assert result.requests == len(setup.src_proxy.seen)


def test_copy_to_another_registry_survives_upload_faults(setup: Setup) -> None:
    retag(setup, "copy")
    setup.src_proxy.add(Rule("reset", method="GET", path=r"/blobs/sha256:"))
    setup.dest_proxy.add(
        Rule("reset", method="POST", path=r"/blobs/uploads/$"),
        Rule("lose", method="PUT", path=r"/blobs/uploads/"),  # upload done, answer lost
        Rule("status", method="PUT", path=r"/blobs/uploads/", status=502),  # whole session again
        Rule("status", method="HEAD", path=r"/blobs/sha256:", status=503, times=2),
    )
    client = api.Client(options=OPTIONS)
    result = api.convert(
        f"{setup.src_proxy.host}/src/list:copy",
        f"{setup.dest_proxy.host}/dst/list:v1",
        client=client,
    )
    assert result.status == "converted"
    assert seed.head_manifest(setup.dest.url, "dst/list", "v1") == result.new_digest
    assert_tree_complete(setup.dest.url, "dst/list", "v1")
    assert all(rule.fired == rule.times for rule in setup.dest_proxy.rules)
    assert setup.src_proxy.rules[0].fired == 1


def test_persistent_failure_fails_clearly_and_leaves_the_tag_alone(setup: Setup) -> None:
    before = retag(setup, "stuck")
    setup.src_proxy.add(Rule("status", method="PUT", path=r"/manifests/", status=503, times=1000))
    with pytest.raises(RegistryError, match=r"gave up after 4 tries"):
        api.convert(f"{setup.src_proxy.host}/src/list:stuck", client=api.Client(options=OPTIONS))
    assert seed.head_manifest(setup.source.url, "src/list", "stuck") == before
    # Bounded: 4 tries per manifest. The two children already exist (earlier tests converted
    # the same list), so the HEAD after each lost-looking PUT finds them and the push goes on;
    # the tag never moves: 3 manifests x 4 tries.
    assert setup.src_proxy.rules[0].fired == 3 * 4


def test_lost_tag_put_failing_on_retry_is_rechecked_and_succeeds(setup: Setup) -> None:
    retag(setup, "recheck")
    setup.src_proxy.add(
        Rule("lose", method="PUT", path=r"/manifests/recheck$"),
        Rule("status", method="PUT", path=r"/manifests/recheck$", status=503, times=1000),
    )
    result = api.convert(
        f"{setup.src_proxy.host}/src/list:recheck", client=api.Client(options=OPTIONS)
    )
    assert seed.head_manifest(setup.source.url, "src/list", "recheck") == result.new_digest


def test_rate_limited_after_retries_is_a_clear_error(setup: Setup) -> None:
    retag(setup, "limited")
    setup.src_proxy.add(
        Rule(
            "status",
            method="GET",
            path=MANIFEST_GET,
            status=429,
            times=1000,
            headers={"Retry-After": "0"},
        )
    )
    with pytest.raises(RateLimitedError, match=r"rate limited .*gave up after 4 tries|gave up"):
        api.check(f"{setup.src_proxy.host}/src/list:limited", client=api.Client(options=OPTIONS))


def test_a_final_4xx_is_not_retried(setup: Setup) -> None:
    with pytest.raises(NotFoundError, match="not found"):
        api.check(f"{setup.src_proxy.host}/src/list:nope", client=api.Client(options=OPTIONS))
    assert len(setup.src_proxy.seen) == 1

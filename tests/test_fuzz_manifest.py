"""Property tests of manifest JSON through the codec and the pure normalizer.

Whatever a registry serves, only the tool's own errors escape; and normalizing the output again
changes nothing (habit 4: the core is pure and idempotent).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from oci_normalize import mediatypes as mt
from oci_normalize.convert.normalize import find_docker_types, normalize
from oci_normalize.digest import Digest
from oci_normalize.errors import OciNormalizeError
from oci_normalize.manifest import (
    descriptors,
    effective_media_type,
    parse_body,
    serialize,
    signed_payload,
)
from oci_normalize.models import Node, Plan

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

digest = st.text("0123456789abcdef", min_size=64, max_size=64).map(lambda h: f"sha256:{h}")
scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.text(max_size=12))
json_value = st.recursive(
    scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
strange = st.sampled_from(["", "text/plain", "application/x-odd", mt.DOCKER_PLUGIN_CONFIG])
config_type = st.one_of(st.sampled_from([mt.DOCKER_CONFIG, mt.OCI_CONFIG, mt.OCI_EMPTY]), strange)
layer_type = st.one_of(
    st.sampled_from(
        [
            mt.DOCKER_LAYER_GZIP,
            mt.DOCKER_LAYER_TAR,
            mt.DOCKER_FOREIGN_GZIP,
            mt.OCI_LAYER_GZIP,
            mt.OCI_LAYER_TAR,
            mt.OCI_ND_LAYER_GZIP,
        ]
    ),
    strange,
)
extras = st.dictionaries(
    st.sampled_from(["annotations", "urls", "x-vendor", "artifactType", "platform"]),
    json_value,
    max_size=2,
)


def descriptor(types: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda t, d, s, e: {"mediaType": t, "digest": d, "size": s, **e},
        types,
        digest,
        st.integers(0, 2**40),
        extras,
    )


image_body = st.builds(
    lambda declared, config, layers, e: {
        "schemaVersion": 2,
        **({"mediaType": declared} if declared else {}),
        "config": config,
        "layers": layers,
        **e,
    },
    st.sampled_from([None, mt.DOCKER_MANIFEST, mt.OCI_MANIFEST]),
    descriptor(config_type),
    st.lists(descriptor(layer_type), max_size=3),
    st.dictionaries(
        st.sampled_from(["annotations", "x-vendor", "subject"]), json_value, max_size=2
    ),
)


def _node(body: dict[str, Any], content_type: str, path: str = "@") -> Node:
    data = serialize(body)
    mtype = effective_media_type(data, content_type)
    return Node(digest=Digest.of(data), media_type=mtype, data=data, path=path)


def _renormalized(plan: Plan, root: Node) -> Plan:
    """The plan's output as a tree, normalized again."""
    by_old = {p.old_digest: p for p in plan.nodes}

    def rebuild(node: Node) -> Node:
        planned = by_old[node.digest]
        return Node(
            digest=planned.new_digest,
            media_type=planned.new_media_type,
            data=planned.new_data,
            path=node.path,
            children=tuple(rebuild(c) for c in node.children),
        )

    return normalize(rebuild(root))


def _check_idempotent(root: Node) -> None:
    try:
        plan = normalize(root)
    except OciNormalizeError:
        return
    again = _renormalized(plan, root)
    assert not again.changed, [n.path for n in again.changed]
    assert again.root.new_data == plan.root.new_data
    assert not _convertible_docker_types_left(again)


def _convertible_docker_types_left(plan: Plan) -> list[str]:
    """Paths of output manifests still typed Docker although the table has an OCI twin."""
    return [
        node.path
        for node in plan.nodes
        if mt.is_docker(node.new_media_type) and mt.oci_twin(node.new_media_type)
    ]


@FUZZ
@given(image_body, st.sampled_from(["", mt.DOCKER_MANIFEST, mt.OCI_MANIFEST, "text/plain"]))
def test_image_manifests_normalize_once_and_for_all(body: dict[str, Any], ctype: str) -> None:
    root = _node(body, ctype)
    with contextlib.suppress(OciNormalizeError):
        find_docker_types(root)
    _check_idempotent(root)


@FUZZ
@given(
    st.lists(image_body, min_size=1, max_size=3),
    st.sampled_from([None, mt.DOCKER_LIST, mt.OCI_INDEX]),
    st.lists(st.sampled_from([mt.DOCKER_MANIFEST, mt.OCI_MANIFEST, ""]), min_size=3, max_size=3),
    st.lists(descriptor(strange), max_size=2),
)
def test_indexes_normalize_once_and_for_all(
    children: list[dict[str, Any]],
    declared: str | None,
    entry_types: list[str],
    odd_entries: list[dict[str, Any]],
) -> None:
    kids = [
        _node(body, t or mt.OCI_MANIFEST, f"manifests[{i}]")
        for i, (body, t) in enumerate(zip(children, entry_types, strict=False))
    ]
    entries: list[dict[str, Any]] = [
        {"mediaType": t or k.media_type, "digest": str(k.digest), "size": len(k.data)}
        for k, t in zip(kids, entry_types, strict=False)
    ]
    index = {
        "schemaVersion": 2,
        **({"mediaType": declared} if declared else {}),
        "manifests": entries + odd_entries,
    }
    data = serialize(index)
    unique = tuple({k.digest: k for k in kids}.values())
    root = Node(
        digest=Digest.of(data),
        media_type=effective_media_type(data, mt.OCI_INDEX),
        data=data,
        children=unique,
    )
    _check_idempotent(root)


@FUZZ
@given(st.one_of(st.binary(max_size=200), json_value.map(lambda v: json.dumps(v).encode())))
@example(b"[" * 100_000 + b"]" * 100_000)
@example(b'{"a":' * 5000 + b"1" + b"}" * 5000)
@example(b'{"size": 1' + b"0" * 5000 + b"}")
@example(b'{"schemaVersion":1,"signatures":[{"protected":"!!!"}]}')
def test_any_bytes_through_the_codec_raise_only_our_errors(data: bytes) -> None:
    for ctype in ("", mt.DOCKER_SCHEMA1_SIGNED, mt.OCI_INDEX, mt.DOCKER_MANIFEST):
        mtype = effective_media_type(data, ctype)
        with contextlib.suppress(OciNormalizeError):
            signed_payload(data, "fuzz")
        try:
            body = parse_body(data, "fuzz")
            descriptors(body, mtype, "fuzz")
            _check_idempotent(Node(digest=Digest.of(data), media_type=mtype, data=data))
        except OciNormalizeError:
            pass

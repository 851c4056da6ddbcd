"""Every media-type string the tool knows, and the Docker → OCI table."""

from __future__ import annotations

from typing import Final

# OCI
OCI_INDEX: Final = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG: Final = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR: Final = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP: Final = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD: Final = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_ND_LAYER_TAR: Final = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_ND_LAYER_GZIP: Final = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_EMPTY: Final = "application/vnd.oci.empty.v1+json"

# Docker
DOCKER_LIST: Final = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST: Final = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_SCHEMA1: Final = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED: Final = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_CONFIG: Final = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_TAR: Final = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP: Final = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_ZSTD: Final = "application/vnd.docker.image.rootfs.diff.tar.zstd"
DOCKER_FOREIGN_TAR: Final = "application/vnd.docker.image.rootfs.foreign.diff.tar"
DOCKER_FOREIGN_GZIP: Final = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_PLUGIN_CONFIG: Final = "application/vnd.docker.plugin.v1+json"

#: What early Docker Hub pushes typed a v2s2 image's config as; still an image config there.
OCTET_STREAM: Final = "application/octet-stream"
#: The deprecated OCI artifact manifest (image-spec 1.1 release candidates): never an image.
OCI_ARTIFACT_MANIFEST: Final = "application/vnd.oci.artifact.manifest.v1+json"

DOCKER_PREFIX: Final = "application/vnd.docker."
OCI_PREFIX: Final = "application/vnd.oci."

#: The conversion table. Anything Docker that is not a key here has no OCI twin.
DOCKER_TO_OCI: Final[dict[str, str]] = {
    DOCKER_LIST: OCI_INDEX,
    DOCKER_MANIFEST: OCI_MANIFEST,
    DOCKER_CONFIG: OCI_CONFIG,
    DOCKER_LAYER_GZIP: OCI_LAYER_GZIP,
    DOCKER_LAYER_TAR: OCI_LAYER_TAR,
    DOCKER_LAYER_ZSTD: OCI_LAYER_ZSTD,
    DOCKER_FOREIGN_GZIP: OCI_ND_LAYER_GZIP,
    DOCKER_FOREIGN_TAR: OCI_ND_LAYER_TAR,
}

#: Config types that make a manifest an image; any other config type makes it an artifact.
IMAGE_CONFIG_TYPES: Final = frozenset({OCI_CONFIG, DOCKER_CONFIG})

#: Artifacts seen in registries, by config or layer type: what ``check`` calls them.
ARTIFACT_NAMES: Final[dict[str, str]] = {
    DOCKER_PLUGIN_CONFIG: "Docker plugin",
    "application/vnd.cncf.helm.config.v1+json": "Helm chart",
    "application/vnd.cncf.helm.chart.content.v1.tar+gzip": "Helm chart",
    "application/vnd.dev.cosign.simplesigning.v1+json": "cosign signature",
    "application/vnd.dev.sigstore.bundle.v0.3+json": "sigstore bundle",
    "application/vnd.dsse.envelope.v1+json": "in-toto attestation",
    "application/vnd.in-toto+json": "in-toto attestation",
    "application/vnd.cncf.notary.signature": "Notary signature",
    "application/spdx+json": "SBOM (SPDX)",
    "text/spdx": "SBOM (SPDX)",
    "text/spdx+json": "SBOM (SPDX)",
    "application/vnd.cyclonedx+json": "SBOM (CycloneDX)",
    "application/vnd.cyclonedx+xml": "SBOM (CycloneDX)",
    "application/vnd.wasm.config.v0+json": "WASM module",
    "application/vnd.wasm.config.v1+json": "WASM module",
    "application/vnd.module.wasm.config.v1+json": "WASM module",
    "application/wasm": "WASM module",
    "application/vnd.sylabs.sif.config.v1+json": "Singularity image",
    "application/vnd.sylabs.sif.layer.v1.sif": "Singularity image",
    OCI_EMPTY: "OCI artifact (empty config)",
}

#: Types whose conversion deserves a warning even though it succeeds.
FOREIGN: Final = frozenset({DOCKER_FOREIGN_GZIP, DOCKER_FOREIGN_TAR})

INDEX_TYPES: Final = frozenset({OCI_INDEX, DOCKER_LIST})
IMAGE_MANIFEST_TYPES: Final = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
SCHEMA1_TYPES: Final = frozenset({DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED})
MANIFEST_TYPES: Final = INDEX_TYPES | IMAGE_MANIFEST_TYPES | SCHEMA1_TYPES

#: Known OCI types that need no warning when seen in a descriptor.
KNOWN_OCI: Final = frozenset(
    {
        OCI_INDEX,
        OCI_MANIFEST,
        OCI_CONFIG,
        OCI_LAYER_TAR,
        OCI_LAYER_GZIP,
        OCI_LAYER_ZSTD,
        OCI_ND_LAYER_TAR,
        OCI_ND_LAYER_GZIP,
        OCI_EMPTY,
    }
)

#: The Accept header for manifest GET/HEAD: every manifest type, OCI first.
MANIFEST_ACCEPT: Final = ", ".join(
    [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST, DOCKER_SCHEMA1_SIGNED, DOCKER_SCHEMA1]
)


def base(media_type: str) -> str:
    """The media type without parameters or surrounding space, lower-cased."""
    return media_type.split(";", 1)[0].strip().lower()


def is_docker(media_type: str) -> bool:
    return base(media_type).startswith(DOCKER_PREFIX)


def is_index(media_type: str) -> bool:
    return base(media_type) in INDEX_TYPES


def is_image_manifest(media_type: str) -> bool:
    return base(media_type) in IMAGE_MANIFEST_TYPES


def is_schema1(media_type: str) -> bool:
    return base(media_type) in SCHEMA1_TYPES


def is_manifest(media_type: str) -> bool:
    """Any type fetched from the manifests endpoint (index, image manifest, schema1)."""
    return base(media_type) in MANIFEST_TYPES


def oci_twin(media_type: str) -> str | None:
    """The OCI equivalent of a Docker type, or None when the table has none."""
    return DOCKER_TO_OCI.get(base(media_type))


def is_image_config(manifest_type: str, config_type: str) -> bool:
    """True when a manifest's config descriptor type makes it an image.

    A Docker v2s2 image manifest's config is an image config whatever it declares: early
    Docker Hub pushes typed it ``application/octet-stream``. Everywhere else the type decides.
    """
    ctype = base(config_type)
    if ctype in IMAGE_CONFIG_TYPES:
        return True
    return base(manifest_type) == DOCKER_MANIFEST and ctype == OCTET_STREAM


def config_twin(manifest_type: str, config_type: str) -> str | None:
    """The OCI type a config descriptor becomes (the octet-stream rule included), else None."""
    if base(manifest_type) == DOCKER_MANIFEST and base(config_type) == OCTET_STREAM:
        return OCI_CONFIG
    return oci_twin(config_type)


def artifact_name(media_type: str) -> str:
    """A reader's name for an artifact type ("Helm chart"), else the type itself."""
    return ARTIFACT_NAMES.get(base(media_type), f"artifact {base(media_type)!r}")

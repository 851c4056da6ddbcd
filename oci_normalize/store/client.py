"""The :class:`Client`: one pooled HTTP session, and one store per location (registry per host,
layout, OCI archive, docker-archive), shared by every call that is given it.

The layout and archive stores, and the in-place referrer cache, are imported when first used: a
command on a registry reference does not load them (start-up is a large share of a short run).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from oci_normalize.http import adapter
from oci_normalize.http import env as httpenv
from oci_normalize.http.auth import ANONYMOUS, Credential
from oci_normalize.options import DEFAULT_CLIENT_OPTIONS, ClientOptions
from oci_normalize.reference import LayoutRef, Location, OciArchiveRef, Reference
from oci_normalize.store.base import RegistryStore, Store
from oci_normalize.store.blobhomes import BlobHomes
from oci_normalize.store.referrers import Referrers
from oci_normalize.store.registry import Registry

if TYPE_CHECKING:
    from oci_normalize.store.archive import ArchiveStore
    from oci_normalize.store.layout import Layout
    from oci_normalize.store.ociarchive import OciArchiveStore

CredentialLookup = Callable[[str], Credential]


def _anonymous(_registry: str) -> Credential:
    return ANONYMOUS


class Client:
    """Registry clients per host sharing one pooled session; safe to share between threads."""

    def __init__(
        self,
        *,
        options: ClientOptions = DEFAULT_CLIENT_OPTIONS,
        credentials: CredentialLookup = _anonymous,
        pool_size: int = 16,
    ) -> None:
        self.options = options
        self._credentials = credentials
        self._session = httpenv.new_session()
        adapter.mount(self._session, pool_size=pool_size)
        self._registries: dict[str, RegistryStore] = {}
        self._layouts: dict[str, Layout] = {}
        self._archives: dict[str, ArchiveStore] = {}
        self._oci_archives: dict[str, OciArchiveStore] = {}
        self._lock = threading.Lock()
        #: Tag lists and referrers-API support, read once per repository / registry.
        self.referrers = Referrers()
        #: Which repositories of each destination registry hold a blob (mount, don't upload).
        self.blob_homes = BlobHomes()

    def registry(self, ref: Reference) -> RegistryStore:
        """The store for ``ref``'s registry: a client of it, made on first use (or the store
        :meth:`mount` put in its place)."""
        with self._lock:
            reg = self._registries.get(ref.registry)
            if reg is None:
                reg = Registry(
                    ref,
                    options=self.options,
                    credential=self._credentials(ref.registry),
                    session=self._session,
                )
                self._registries[ref.registry] = reg
            return reg

    def view(self) -> Client:
        """This client's connections, tokens and stores, with empty per-run memory (tag lists,
        referrers-API support): a long-lived service starts each item from what the registry
        holds now, not from what it held at an earlier item."""
        other = copy.copy(self)
        other.referrers = Referrers()
        return other

    def mount(self, registry: str, store: RegistryStore) -> None:
        """Serve ``registry`` (``HOST[:PORT]``) from ``store`` instead of the network: the seam
        that runs the planner, the writer and the batch runner in process (an in-memory store
        in tests). Mount before the first use of that registry."""
        with self._lock:
            self._registries[registry] = store

    def store(self, loc: Location) -> Store:
        """The store holding ``loc``: a registry client, a layout, or an archive (read-only)."""
        if isinstance(loc, Reference):
            return self.registry(loc)
        with self._lock:
            if isinstance(loc, LayoutRef):
                from oci_normalize.store.layout import Layout

                layout = self._layouts.get(loc.path)
                if layout is None:
                    layout = Layout(loc.path, max_manifest_bytes=self.options.max_manifest_bytes)
                    self._layouts[loc.path] = layout
                return layout
            if isinstance(loc, OciArchiveRef):  # one store per file, whatever the tag
                from oci_normalize.store.ociarchive import OciArchiveStore

                tarred = self._oci_archives.get(loc.store_name)
                if tarred is None:
                    tarred = OciArchiveStore(
                        loc, max_manifest_bytes=self.options.max_manifest_bytes
                    )
                    self._oci_archives[loc.store_name] = tarred
                return tarred
            from oci_normalize.store.archive import ArchiveStore

            key = str(loc)
            found = self._archives.get(key)
            if found is None:
                found = ArchiveStore(loc)
                self._archives[key] = found
            return found

    def release(self, loc: Location) -> None:
        """Drop an archive's converted copy (temp files); other stores hold nothing."""
        with self._lock:
            found = self._archives.pop(str(loc), None)
            tarred = self._oci_archives.pop(loc.store_name, None)
        if found is not None:
            found.close()
        if tarred is not None:
            tarred.close()

    @property
    def requests(self) -> int:
        with self._lock:
            stores: list[Store] = [*self._registries.values(), *self._layouts.values()]
            stores.extend(self._archives.values())
            stores.extend(self._oci_archives.values())
            return sum(s.requests for s in stores)

    def close(self) -> None:
        with self._lock:
            archives: list[ArchiveStore | OciArchiveStore] = list(self._archives.values())
            archives.extend(self._oci_archives.values())
            self._archives.clear()
            self._oci_archives.clear()
        for found in archives:
            found.close()
        self._session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

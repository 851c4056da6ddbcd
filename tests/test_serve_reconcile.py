"""The reconcile sweep in process against a real registry: batch's runner under serve's journal."""

from __future__ import annotations

from pathlib import Path

from oci_normalize import api
from oci_normalize.results import ALREADY_OCI, CONVERTED
from oci_normalize.serve.events import Scope
from oci_normalize.serve.logs import Logger
from oci_normalize.serve.metrics import Metrics
from oci_normalize.serve.reconcile import JOURNAL_FILE, Reconciler
from oci_normalize.serve.worker import Mode
from oci_normalize.serve.written import WrittenDigests
from tests.support import seed
from tests.support.notify import oci_pure
from tests.support.registry import RegistryFactory


class _Null:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        return None


def test_a_sweep_converts_the_scope_remembers_its_writes_and_rotates_its_journal(
    registry_factory: RegistryFactory, tmp_path: Path
) -> None:
    reg = registry_factory()
    seed.push_mixed_kaniko(reg.url, "team/app", "1")
    seed.push_mixed_kaniko(reg.url, "other/app", "1", seed="other")
    seed.push_mixed_kaniko(reg.url, "mirror/team/app", "1", seed="mirror")
    written = WrittenDigests()
    metrics = Metrics()
    with api.Client() as client:
        reconciler = Reconciler(
            client,
            mode=Mode(registry=reg.host),
            scope=Scope(registry=reg.host, repos=("team/*", "mirror/*"), exclude_prefix="mirror"),
            state=tmp_path,
            concurrency=2,
            written=written,
            metrics=metrics,
            log=Logger(stream=_Null()),  # type: ignore[arg-type]
            max_journal=1,
        )
        first = reconciler.sweep()
        assert (first.references, dict(first.statuses)) == (1, {CONVERTED: 1})
        assert len(written) == 1  # the digest the sweep wrote: its own event costs one GET
        assert metrics.converted._value.get() == 1
        assert oci_pure(reg.url, "team/app", "1")
        assert not oci_pure(reg.url, "other/app", "1")  # outside --repo
        assert not oci_pure(reg.url, "mirror/team/app", "1")  # serve's own --to prefix
        journal = tmp_path / JOURNAL_FILE
        assert journal.stat().st_size > 0
        second = reconciler.sweep()
        assert (second.references, dict(second.statuses)) == (1, {ALREADY_OCI: 1})
        assert (tmp_path / (JOURNAL_FILE + ".1")).is_file()  # past max_journal: set aside

"""``batch … --to HOST[:PORT][/PREFIX]``: where each source repository goes.

Repository ``R`` of the source goes to ``HOST/PREFIX/R`` with the same tags. The rest of a
migration is the batch run with this destination handed to the one planner
(:mod:`oci_normalize.convert.planner`): the same reads, rules and writer as in place.
"""

from __future__ import annotations

from dataclasses import dataclass

from oci_normalize.batch.targets import registry_reference
from oci_normalize.errors import InvalidReferenceError
from oci_normalize.reference import Reference


@dataclass(frozen=True)
class Destination:
    """``HOST[:PORT][/PREFIX]``: where ``--to`` puts each source repository."""

    registry: str
    prefix: str = ""

    @classmethod
    def parse(cls, text: str) -> Destination:
        host, _, prefix = text.partition("/")
        prefix = prefix.strip("/")
        probe = registry_reference(host)
        if prefix:
            try:
                Reference.parse(f"{probe.registry}/{prefix}/x")
            except InvalidReferenceError as exc:
                raise InvalidReferenceError(
                    f"--to {text!r}: bad repository prefix {prefix!r}"
                ) from exc
        return cls(probe.registry, prefix)

    def of(self, ref: Reference) -> Reference:
        repository = f"{self.prefix}/{ref.repository}" if self.prefix else ref.repository
        return Reference(registry=self.registry, repository=repository, tag=ref.tag)

    def __str__(self) -> str:
        return f"{self.registry}/{self.prefix}" if self.prefix else self.registry

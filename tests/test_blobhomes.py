"""Blob homes bounded to the blobs used last: the same answers while they fit, bounded after."""

from __future__ import annotations

import pytest

from oci_normalize.batch.blobhomes import RecentBlobHomes
from oci_normalize.convert.push import BlobHomes
from oci_normalize.digest import Digest

D = [Digest.of(b"%d" % i) for i in range(10)]


@pytest.mark.parametrize("homes", [BlobHomes(), RecentBlobHomes()], ids=["all", "recent"])
def test_answers_like_blob_homes_while_everything_fits(homes: BlobHomes) -> None:
    assert homes.claim("r", D[0]) is homes.claim("r", D[0])
    assert homes.claim("r", D[0]) is not homes.claim("other", D[0])
    homes.note("r", "team/a", D[0])
    homes.note("r", "team/b", D[0])
    assert homes.holds("r", "team/a", D[0]) and not homes.holds("r", "team/c", D[0])
    assert homes.elsewhere("r", "team/c", D[0]) in ("team/a", "team/b")
    assert homes.elsewhere("r", "team/a", D[1]) is None
    homes.note("r", "team/a", D[1])
    assert homes.elsewhere("r", "team/a", D[1]) is None  # only here
    assert not homes.holds("other", "team/a", D[0])


def test_forgets_the_blobs_used_longest_ago() -> None:
    homes = RecentBlobHomes(max_blobs=3)
    for d in D[:3]:
        homes.note("r", "team/a", d)
    homes.claim("r", D[0])  # used again: now the most recent
    homes.note("r", "team/a", D[3])  # one too many: D[1] goes
    assert [homes.holds("r", "team/a", d) for d in D[:4]] == [True, False, True, True]


def test_keeps_the_repositories_that_wrote_a_blob_last() -> None:
    homes = RecentBlobHomes(max_homes=2)
    for repo in ("a", "b", "c", "a"):
        homes.note("r", repo, D[0])
    assert [homes.holds("r", repo, D[0]) for repo in "abc"] == [True, False, True]
    assert homes.elsewhere("r", "a", D[0]) == "c"
    assert homes.elsewhere("r", "z", D[0]) == "a"  # the latest first

"""Names the dead-code finder (vulture, run by `make lint`) cannot see being used.

Only names a framework or library reads go here, each under a comment saying who reads it, and
the few eager library helpers the CLI no longer calls (it streams) but library callers and
their tests do. Anything else vulture reports is dead: delete it.
"""

# pydantic reads the class attribute model_config of every result model
model_config  # noqa
# pydantic serialises every field of RefResult / ReferrerOut into the --json lines
same_digest  # noqa
new_subject  # noqa
replaced_digest  # noqa
# typer reads a wrapped command's signature through this attribute
__signature__  # noqa
# typer calls the app callback (--version) before any command
_root  # noqa
# requests.Session reads it
trust_env  # noqa
# urllib3 reads these to build the deadline-aware connections (http/deadline.py)
ConnectionCls  # noqa
pool_classes_by_scheme  # noqa
# requests' HTTPAdapter.send calls build_response; Response.encoding and .connection are what
# requests' own build_response sets (http/adapter.py); urllib3 calls a container's dispose_func
build_response  # noqa
encoding  # noqa
connection  # noqa
dispose_func  # noqa
# tarfile writes TarInfo.mtime into the member header (ociarchive.py)
mtime  # noqa
# Python calls a module's __getattr__ / __dir__ for names it does not hold (PEP 562: the package,
# results and models load what they re-export on first use)
__getattr__  # noqa
__dir__  # noqa
# eager library helpers beside the streaming ones the CLI uses (batch summaries, targets and
# the catalog as one list); tested in test_tally, test_targets and test_listing
summarize  # noqa
from_registry  # noqa
catalog  # noqa
# the eager journal reader and its undo chains, beside the on-disk MoveIndex rollback uses;
# tested in test_journal and test_fuzz_local
read_journal  # noqa
undo_chains  # noqa

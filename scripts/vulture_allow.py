"""Names the dead-code finder (vulture, run by `make lint`) cannot see being used.

Only names a framework or library reads go here, each under a comment saying who reads it.
Anything else vulture reports is dead: delete it.
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
# requests' own slot for a response body, filled by the transport's capped read
_content  # noqa
# tarfile writes TarInfo.mtime into the member header (ociarchive.py)
mtime  # noqa
# the list-shaped forms of the streaming batch pieces, kept for callers that hold a list
# (tests, the API): batch/run.py, batch/targets.py, and the whole catalog in one call
summarize  # noqa
from_registry  # noqa
catalog  # noqa

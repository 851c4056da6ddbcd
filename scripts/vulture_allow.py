"""Names the dead-code finder (vulture, run by `make lint`) cannot see being used.

Each line names what reads it. Anything else vulture reports is dead: delete it.
"""

# pydantic reads these class attributes
model_config  # noqa
# batch JSON lines and reports serialise every field of RefResult / ReferrerOut
same_digest  # noqa
new_subject  # noqa
# typer reads a wrapped command's signature through this attribute
__signature__  # noqa
# requests.Session reads it
trust_env  # noqa
# the tests count token fetches through it
token_requests  # noqa
# PushStats counts blobs that needed no upload; kept beside uploaded/mounted for debugging
blobs_present  # noqa
blobs_skipped  # noqa

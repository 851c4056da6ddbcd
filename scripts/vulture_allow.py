"""Names the dead-code finder (vulture, run by `make lint`) cannot see being used.

Each line names what reads it. Anything else vulture reports is dead: delete it.
"""

# pydantic reads these class attributes
model_config  # noqa
# batch JSON lines and reports serialise every field of RefResult / ReferrerOut
same_digest  # noqa
new_subject  # noqa
replaced_digest  # noqa
# typer reads a wrapped command's signature through this attribute
__signature__  # noqa
# requests.Session reads it
trust_env  # noqa
# the tests count token fetches through it
token_requests  # noqa
# PushStats counts blobs that needed no upload; kept beside uploaded/mounted for debugging
blobs_present  # noqa
blobs_skipped  # noqa
# urllib3 reads these to build the deadline-aware connections (http/deadline.py)
ConnectionCls  # noqa
pool_classes_by_scheme  # noqa
# requests' own slot for a response body, filled by the transport's capped read
_content  # noqa
# the digest a signed schema1 body is known by; the tests build fixtures with it
jws_payload  # noqa

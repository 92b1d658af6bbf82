"""clipedit: turn S3 uploads into Kling O3 video-to-video edits.

Layout (dependencies point downwards only):
- ``domain``: job lifecycle, edit specs, keys and prompt references. Pure Python, no AWS SDK, no HTTP.
- ``ports``: the small interfaces the use cases need (job store, object store, provider, ...).
- ``usecases``: submit and finalize, written against the ports.
- ``adapters``: DynamoDB, S3, Step Functions, EventBridge, Secrets Manager and the Kling HTTP API.
- ``config`` and ``wiring``: typed settings read once from the environment, and the composition root.
"""

from clipedit import dataclass_code as _dataclass_code

# Before any module defines a dataclass: use the methods compiled into the layer at build time,
# where there is such a table (see dataclass_code; ~0.7 ms a class at a cold start otherwise).
_dataclass_code.install()

"""moto's server, with DynamoDB's item writes made atomic as DynamoDB's are.

moto checks a write's condition expression and then writes, with nothing in
between to stop a second request thread doing the same: under concurrent
conditional writes on one item, several can "win" (seen here: 3 of 8 writers
with the same expected version). Real DynamoDB never lets that happen, and the
bridge's exactly-once guarantees (create claims, pair leases, per-write claims
fenced by the link's version, the shared Autotask budget) rest on it. So the
emulator the tests run against must keep that promise too: every item write
goes through one lock. Reads stay concurrent.

Usage: python moto_server_atomic.py [moto_server arguments]
"""

import functools
import sys
import threading

from moto import server
from moto.dynamodb.models import DynamoDBBackend

_ITEM_WRITES = threading.Lock()


def _atomic(method):
    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with _ITEM_WRITES:
            return method(self, *args, **kwargs)

    return locked


for _name in (
    "put_item",
    "update_item",
    "delete_item",
    "transact_write_items",
    "batch_write_item",
):
    setattr(DynamoDBBackend, _name, _atomic(getattr(DynamoDBBackend, _name)))


if __name__ == "__main__":
    server.main(sys.argv[1:])
